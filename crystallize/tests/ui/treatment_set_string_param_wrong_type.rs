use crystallize::prelude::*;

#[experiment(params(model = "llama3:8b"))]
fn game(ctx: &mut Ctx) {
    let _ = ctx;
}

#[treatment(game, set(model = 3))]
fn numbered() {}

crystallize::main!();
