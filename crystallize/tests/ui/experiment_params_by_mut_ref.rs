use crystallize::prelude::*;

#[derive(Params)]
pub struct GameParams {
    #[param(default = 0.7)]
    pub temperature: f64,
}

#[experiment]
fn game(params: &mut GameParams, ctx: &mut Ctx) {
    ctx.record("temperature", params.temperature);
}

crystallize::main!();
