use crystallize::prelude::*;

#[derive(Metrics)]
pub struct GameMetrics {
    pub win: bool,
    pub rounds: u32,
}

#[experiment(params(temperature = 0.7))]
fn game(ctx: &mut Ctx) -> GameMetrics {
    GameMetrics { win: ctx.rng().random_bool(0.5), rounds: 3 }
}

#[treatment(game, set(temperature = 1.2), expect(wn > baseline.win))]
fn hot() {}

crystallize::main!();
