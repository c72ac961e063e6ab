use crystallize::prelude::*;

#[datasource]
fn table() -> String {
    "llama3:8b".to_owned()
}

// The experiment's own datasource produces a `String`, not a `u32`.
#[experiment(datasource = table)]
fn game(players: u32, ctx: &mut Ctx) {
    ctx.record("players", players);
}

crystallize::main!();
