use std::rc::Rc;

use crystallize::prelude::*;

async fn pause() {}

#[experiment]
async fn coin(ctx: &mut Ctx) {
    let shared = Rc::new(true);
    pause().await;
    ctx.record("heads", *shared);
}

crystallize::main!();
