use crystallize::prelude::*;

#[experiment(params(budget: u64 = 18446744073709551615))]
fn coin(ctx: &mut Ctx) {
    let _ = ctx;
}

crystallize::main!();
