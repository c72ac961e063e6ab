use crystallize::prelude::*;

// An experiment records its metrics; it returns `()` or `Result<(), E>`.
#[experiment]
fn coin(ctx: &mut Ctx) -> bool {
    ctx.rng().random_bool(0.5)
}

crystallize::main!();
