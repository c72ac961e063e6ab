use crystallize::prelude::*;

#[experiment(params(players: u8 = 300))]
fn coin(ctx: &mut Ctx) {
    let _ = ctx;
}

crystallize::main!();
