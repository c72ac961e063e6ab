use crystallize::prelude::*;

#[experiment(params(temperature: f64 = "hot"))]
fn coin(ctx: &mut Ctx) {
    let _ = ctx;
}

crystallize::main!();
