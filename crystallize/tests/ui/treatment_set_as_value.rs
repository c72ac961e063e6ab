use crystallize::prelude::*;

#[experiment(params(temperature = 0.7))]
fn game(ctx: &mut Ctx) {
    let _ = ctx;
}

#[treatment(game, set = 1.2)]
fn hot() {}

crystallize::main!();
