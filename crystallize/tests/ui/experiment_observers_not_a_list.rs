use crystallize::observe::Observer;
use crystallize::prelude::*;

pub struct Printer;

impl Observer for Printer {}

#[experiment(observers = Printer)]
fn coin(ctx: &mut Ctx) {
    ctx.record("heads", true);
}

crystallize::main!();
