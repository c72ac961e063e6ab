use crystallize::prelude::*;

const HOT: f64 = 1.2;

#[experiment(params(temperature = 0.7))]
fn game(ctx: &mut Ctx) {
    let _ = ctx;
}

#[treatment(game, set(temperature = HOT))]
fn hot() {}

crystallize::main!();
