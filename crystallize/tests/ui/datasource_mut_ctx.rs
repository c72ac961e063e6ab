use crystallize::prelude::*;

#[datasource]
fn table(ctx: &mut Ctx) -> u64 {
    ctx.seed()
}

crystallize::main!();
