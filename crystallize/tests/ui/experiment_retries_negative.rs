use crystallize::prelude::*;

#[experiment(retries = -1)]
fn coin(ctx: &mut Ctx) {
    ctx.record("heads", true);
}

crystallize::main!();
