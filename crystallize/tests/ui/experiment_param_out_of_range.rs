use crystallize::prelude::*;

#[experiment(params(players: u8 = 300))]
fn coin(ctx: &mut Ctx) {
    let _: u8 = ctx.param("players");
}

crystallize::main!();
