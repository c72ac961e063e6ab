use crystallize::prelude::*;

#[datasource]
fn table(players: u32) -> Vec<String> {
    vec!["llama3:8b".to_owned(); players as usize]
}

crystallize::main!();
