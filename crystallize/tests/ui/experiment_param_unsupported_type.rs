use crystallize::prelude::*;

#[experiment(params(models: Vec<String> = "llama"))]
fn coin(ctx: &mut Ctx) {
    let _ = ctx;
}

crystallize::main!();
