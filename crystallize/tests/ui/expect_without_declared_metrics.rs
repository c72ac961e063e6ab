use crystallize::prelude::*;

#[experiment(params(temperature = 0.7))]
fn game(ctx: &mut Ctx) {
    ctx.record("win", ctx.rng().random_bool(0.5));
}

#[treatment(game, set(temperature = 1.2), expect(win > baseline.win))]
fn hot() {}

crystallize::main!();
