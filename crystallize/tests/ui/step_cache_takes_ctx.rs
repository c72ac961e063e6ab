use crystallize::prelude::*;

// A hit does not run the body: what it would record or draw from the context would be missing.
#[step(cache)]
fn roll(sides: u32, ctx: &mut Ctx) -> u32 {
    ctx.rng().random_range(1..=sides)
}

crystallize::main!();
