use crystallize::prelude::*;

pub struct Config {
    pub spoilers: bool,
}

// No datasource: the experiment has no input for a treatment to mutate.
#[experiment(params(temperature = 0.7))]
fn game(ctx: &mut Ctx) {
    let _ = ctx;
}

#[treatment(game)]
fn spoilers(config: &mut Config) {
    config.spoilers = true;
}

crystallize::main!();
