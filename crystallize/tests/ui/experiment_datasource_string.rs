use crystallize::prelude::*;

#[datasource]
fn table() -> u32 {
    6
}

#[experiment(datasource = "table")]
fn game(players: u32) {
    let _ = players;
}

crystallize::main!();
