use crystallize::prelude::*;

#[experiment(params(temperature = 0.7))]
fn social_deception(ctx: &mut Ctx) {
    let _ = ctx;
}

#[treatment(social_deceptoin, set(temperature = 1.2))]
fn hot() {}

crystallize::main!();
