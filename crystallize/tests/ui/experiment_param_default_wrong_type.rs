use crystallize::prelude::*;

#[experiment(params(think_ms: u64 = -1))]
fn coin(ctx: &mut Ctx) {
    let _ = ctx;
}

crystallize::main!();
