use crystallize::prelude::*;

#[experiment(timeout = "5x")]
fn coin(ctx: &mut Ctx) {
    ctx.record("heads", true);
}

crystallize::main!();
