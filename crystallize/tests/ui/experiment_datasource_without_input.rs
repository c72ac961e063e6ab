use crystallize::prelude::*;

pub struct Config {
    pub players: u32,
}

#[datasource]
fn table() -> Config {
    Config { players: 6 }
}

#[experiment(datasource = table)]
fn game(ctx: &mut Ctx) {
    ctx.record("players", 6);
}

crystallize::main!();
