use crystallize::prelude::*;

#[datasource]
async fn table() -> u32 {
    6
}

#[experiment(datasource = table)]
fn game(players: u32, ctx: &mut Ctx) {
    ctx.record("players", players);
}

crystallize::main!();
