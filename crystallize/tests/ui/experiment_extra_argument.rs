use crystallize::prelude::*;

#[datasource]
fn table() -> u32 {
    6
}

#[experiment(datasource = table)]
fn game(players: u32, ctx: &mut Ctx, rounds: u32) {
    ctx.record("players", players + rounds);
}

crystallize::main!();
