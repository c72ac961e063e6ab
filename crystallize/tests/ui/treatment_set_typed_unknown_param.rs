use crystallize::prelude::*;

#[derive(Params)]
pub struct GameParams {
    #[param(default = 0.7)]
    pub temperature: f64,
    pub crash_on_replicate: Option<u64>,
}

#[experiment]
fn game(params: &GameParams, ctx: &mut Ctx) {
    ctx.record("temperature", params.temperature);
}

#[treatment(game, set(temprature = 1.2))]
fn hot() {}

#[treatment(game, set(crash_on_replicate = "third"))]
fn crashing() {}

crystallize::main!();
