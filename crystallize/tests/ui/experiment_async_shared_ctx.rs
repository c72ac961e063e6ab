use crystallize::prelude::*;

#[experiment]
async fn coin(ctx: &Ctx) {
    ctx.emit("flip", json!({}));
}

crystallize::main!();
