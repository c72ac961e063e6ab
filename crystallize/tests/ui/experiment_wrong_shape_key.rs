use crystallize::prelude::*;

// `params` is a list, not a value.
#[experiment(params = 0.7)]
fn coin(ctx: &mut Ctx) {
    ctx.record("heads", ctx.rng().random_bool(0.5));
}

crystallize::main!();
