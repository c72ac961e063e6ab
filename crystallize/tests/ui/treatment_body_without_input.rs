use crystallize::prelude::*;

pub struct Config {
    pub spoilers: bool,
}

#[datasource]
fn llama_table() -> Config {
    Config { spoilers: false }
}

#[experiment(datasource = llama_table, params(temperature = 0.7))]
fn game(config: Config, ctx: &mut Ctx) {
    ctx.record("spoilers", config.spoilers);
}

// The body would never run: there is no input to mutate.
#[treatment(game, set(temperature = 1.2))]
fn spoilers() {
    println!("spoilers on");
}

crystallize::main!();
