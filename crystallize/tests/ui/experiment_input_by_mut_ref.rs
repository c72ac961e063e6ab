use crystallize::prelude::*;

pub struct Config {
    pub players: u32,
}

#[datasource]
fn table() -> Config {
    Config { players: 6 }
}

#[experiment(datasource = table)]
fn game(config: &mut Config, ctx: &mut Ctx) {
    config.players += 1;
    ctx.record("players", config.players);
}

crystallize::main!();
