use crystallize::prelude::*;

#[derive(Metrics)]
pub struct GameMetrics {
    pub win: bool,
}

#[experiment(expect = "hot.win > baseline.win")]
fn game(ctx: &mut Ctx) -> GameMetrics {
    GameMetrics { win: ctx.rng().random_bool(0.5) }
}

crystallize::main!();
