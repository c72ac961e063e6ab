use crystallize::prelude::*;

#[datasource]
fn table() -> u32 {
    6
}

#[experiment(datasource = table)]
fn game(players: u32, ctx: &mut Ctx) {
    ctx.record("players", players);
}

#[treatment(game)]
async fn crowded(players: &mut u32) {
    *players = 12;
}

crystallize::main!();
