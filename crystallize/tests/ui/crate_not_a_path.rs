use crystallize::prelude::*;

#[experiment(crate = 5, smoke_test = false)]
fn coin(ctx: &mut Ctx) {
    ctx.record("heads", true);
}

#[derive(Metrics)]
#[crystallize(crate = 5)]
pub struct CoinMetrics {
    pub heads: bool,
}

crystallize::main!();
