use crystallize::prelude::*;

#[derive(Metrics)]
pub struct GameMetrics {
    pub win: bool,
}

#[experiment(params(temperature = 0.7))]
fn game(ctx: &mut Ctx) -> GameMetrics {
    GameMetrics { win: ctx.rng().random_bool(0.5) }
}

#[treatment(game, set(temperature = 1.2), expect(win == baseline.win))]
fn hot() {}

#[treatment(game, set(temperature = 1.2), expect(win => baseline.win))]
fn cold() {}

crystallize::main!();
