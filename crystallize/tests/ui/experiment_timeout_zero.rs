use crystallize::prelude::*;

#[experiment(timeout = "0s")]
fn coin(ctx: &mut Ctx) {
    ctx.record("heads", true);
}

crystallize::main!();
