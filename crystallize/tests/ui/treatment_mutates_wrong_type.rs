use crystallize::prelude::*;

pub struct Config {
    pub players: u32,
}

pub struct Rules {
    pub spoilers: bool,
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
fn spoilers(rules: &mut Rules) {
    rules.spoilers = true;
}

crystallize::main!();
