use crystallize::prelude::*;

// Does not implement `crystallize::observe::Observer`.
pub struct Printer;

#[experiment(observers = [Printer])]
fn coin(ctx: &mut Ctx) {
    ctx.record("heads", true);
}

crystallize::main!();
