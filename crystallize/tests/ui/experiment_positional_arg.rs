use crystallize::prelude::*;

#[datasource]
fn table() -> u32 {
    6
}

// The datasource must be named with its key.
#[experiment(table)]
fn game(players: u32) {
    let _ = players;
}

crystallize::main!();
