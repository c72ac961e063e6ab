use crystallize::prelude::*;

#[datasource]
fn llama_table() -> u32 {
    6
}

#[experiment(datasource(llama_table))]
fn game(players: u32, ctx: &mut Ctx) {
    ctx.record("players", players);
}

crystallize::main!();
