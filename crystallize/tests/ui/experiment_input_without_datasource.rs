use crystallize::prelude::*;

pub struct Config {
    pub players: u32,
}

#[experiment(replicates = 3)]
fn game(config: Config, ctx: &mut Ctx) {
    ctx.record("players", config.players);
}

crystallize::main!();
