use crystallize::prelude::*;

#[experiment(params(temperature = 0.7))]
fn game(ctx: &mut Ctx) {
    let _: f64 = ctx.param("temperature");
}

#[treatment]
fn hot() {}

crystallize::main!();
