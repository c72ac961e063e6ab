use crystallize::prelude::*;

#[experiment(params(temperature: f64 = "hot"))]
fn coin(ctx: &mut Ctx) {
    let _: f64 = ctx.param("temperature");
}

crystallize::main!();
