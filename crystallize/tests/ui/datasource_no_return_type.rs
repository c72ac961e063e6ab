use crystallize::prelude::*;

#[datasource]
fn table(ctx: &Ctx) {
    let _ = ctx.seed();
}

crystallize::main!();
