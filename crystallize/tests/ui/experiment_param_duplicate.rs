use crystallize::prelude::*;

#[experiment(params(temperature = 0.7, think_ms = 0, temperature = 1.0))]
fn coin(ctx: &mut Ctx) {
    let _ = ctx;
}

crystallize::main!();
