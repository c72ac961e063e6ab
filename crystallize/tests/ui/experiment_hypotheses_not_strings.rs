use crystallize::prelude::*;

#[experiment(hypotheses = ["dolphin.win < baseline.win", dolphin.rounds > 3])]
fn coin(ctx: &mut Ctx) {
    ctx.record("heads", ctx.rng().random_bool(0.5));
}

crystallize::main!();
