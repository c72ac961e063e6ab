use crystallize::prelude::*;

#[experiment(params(temperature = 0.7, think_ms: u64 = 0))]
fn game(ctx: &mut Ctx) {
    let _ = ctx;
}

#[treatment(game, set(think_ms = -5))]
fn impatient() {}

crystallize::main!();
