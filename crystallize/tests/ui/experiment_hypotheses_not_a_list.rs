use crystallize::prelude::*;

#[experiment(hypotheses = "dolphin.win < baseline.win")]
fn coin(ctx: &mut Ctx) {
    ctx.record("heads", ctx.rng().random_bool(0.5));
}

crystallize::main!();
