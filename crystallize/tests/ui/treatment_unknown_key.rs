use crystallize::prelude::*;

#[datasource]
fn llama_table() -> u32 {
    6
}

#[datasource]
fn dolphin_table() -> u32 {
    4
}

#[experiment(datasource = llama_table)]
fn game(players: u32, ctx: &mut Ctx) {
    ctx.record("players", players);
}

#[treatment(game, datasorce = dolphin_table)]
fn dolphin() {}

crystallize::main!();
