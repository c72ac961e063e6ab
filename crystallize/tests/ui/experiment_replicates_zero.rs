use crystallize::prelude::*;

#[experiment(replicates = 0)]
fn coin(ctx: &mut Ctx) {
    ctx.record("heads", ctx.rng().random_bool(0.5));
}

crystallize::main!();
