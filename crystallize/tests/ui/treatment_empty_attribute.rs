use crystallize::prelude::*;

#[experiment(params(temperature = 0.7))]
fn game(ctx: &mut Ctx) {
    let _ = ctx;
}

#[treatment]
fn hot() {}

crystallize::main!();
