use crystallize::prelude::*;

#[experiment]
async fn coin(ctx: &mut Ctx) {
    ctx.record("heads", true);
}

crystallize::main!();
