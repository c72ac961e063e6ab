use crystallize::prelude::*;

#[experiment(seed = 1, replicates = 4, seed = 2)]
fn coin(ctx: &mut Ctx) {
    ctx.record("heads", ctx.rng().random_bool(0.5));
}

crystallize::main!();
