use crystallize::prelude::*;

#[experiment(jobs = 0)]
async fn coin(ctx: &mut Ctx) {
    ctx.record("heads", true);
}

crystallize::main!();
