use crystallize::prelude::*;

pub struct GameParams {
    pub temperature: f64,
}

#[experiment]
fn game(params: &GameParams, ctx: &mut Ctx) {
    ctx.record("temperature", params.temperature);
}

crystallize::main!();
