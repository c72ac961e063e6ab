use crystallize::prelude::*;

#[experiment(params(temperature = 0.7))]
fn game(ctx: &mut Ctx) {
    let _: f64 = ctx.param("temperature");
}

#[treatment(game, set = 1.2)]
fn hot() {}

crystallize::main!();
