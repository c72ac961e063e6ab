use crystallize::prelude::*;

#[experiment]
fn coin(ctx: &mut Ctx) {
    ctx.record("heads", true);
}

// `coin` is an experiment, not a datasource.
#[experiment(datasource = coin)]
fn game(input: (), ctx: &mut Ctx) {
    ctx.record("unit", input == ());
}

crystallize::main!();
