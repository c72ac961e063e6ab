use crystallize::prelude::*;

pub struct Config {
    pub players: u32,
}

#[datasource]
fn llama_table() -> Config {
    Config { players: 6 }
}

#[experiment(datasource = llama_table)]
fn game(config: Config, ctx: &mut Ctx) {
    ctx.record("players", config.players);
}

#[treatment(game)]
fn more_players(mut config: Config) {
    config.players += 2;
}

crystallize::main!();
