use crystallize::prelude::*;

#[experiment(seed = "42")]
fn coin(ctx: &mut Ctx) {
    ctx.record("heads", ctx.rng().random_bool(0.5));
}

crystallize::main!();
