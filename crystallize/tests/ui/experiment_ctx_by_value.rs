use crystallize::prelude::*;

#[experiment]
fn coin(ctx: Ctx) {
    ctx.record("heads", true);
}

crystallize::main!();
