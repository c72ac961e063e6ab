use crystallize::prelude::*;

#[experiment]
fn coin<T: Default>(ctx: &mut Ctx) {
    let _ = T::default();
    ctx.record("heads", true);
}

crystallize::main!();
