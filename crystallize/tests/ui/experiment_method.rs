use crystallize::prelude::*;

pub struct Game;

impl Game {
    #[experiment]
    fn play(&self, ctx: &mut Ctx) {
        ctx.record("heads", true);
    }
}

crystallize::main!();
