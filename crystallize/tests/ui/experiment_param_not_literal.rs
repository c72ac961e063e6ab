use crystallize::prelude::*;

const DEFAULT_TEMPERATURE: f64 = 0.7;

#[experiment(params(temperature = DEFAULT_TEMPERATURE))]
fn coin(ctx: &mut Ctx) {
    let _ = ctx;
}

crystallize::main!();
