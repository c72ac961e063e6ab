use crystallize::prelude::*;

pub struct Config {
    pub players: u32,
}

#[datasource]
fn llama_table() -> Config {
    Config { players: 6 }
}

#[datasource]
fn player_names() -> Vec<String> {
    vec!["dolphin".to_owned(); 6]
}

#[experiment(datasource = llama_table)]
fn game(config: Config, ctx: &mut Ctx) {
    ctx.record("players", config.players);
}

#[treatment(game, datasource = player_names)]
fn dolphin() {}

crystallize::main!();
