use crystallize::prelude::*;

#[derive(Params)]
pub struct GameParams {
    #[param(default = 0.7)]
    pub temperature: f64,
}

#[experiment(params = GameParams)]
fn game(ctx: &mut Ctx) {
    ctx.record("x", 1);
}

crystallize::main!();
