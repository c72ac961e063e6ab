use crystallize::prelude::*;

#[datasource]
fn llama_table() -> u32 {
    6
}

#[experiment(datasource = llama_table)]
fn game(players: u32, ctx: &mut Ctx) {
    ctx.record("players", players);
}

// A treatment's first parameter is the input it mutates.
#[treatment(game)]
fn reseat(ctx: &Ctx) {
    let _ = ctx.seed();
}

crystallize::main!();
