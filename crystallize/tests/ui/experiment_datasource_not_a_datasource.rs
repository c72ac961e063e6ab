use crystallize::prelude::*;

// A plain function, without `#[datasource]`.
fn table() -> u32 {
    6
}

#[experiment(datasource = table)]
fn game(players: u32, ctx: &mut Ctx) {
    ctx.record("players", players);
}

crystallize::main!();
