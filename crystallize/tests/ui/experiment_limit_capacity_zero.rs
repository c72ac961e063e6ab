use crystallize::prelude::*;

#[experiment(limits(ollama = 0))]
async fn coin(ctx: &mut Ctx) {
    ctx.record("heads", true);
}

crystallize::main!();
