use crystallize::prelude::*;

#[step(name = "play a round")]
fn play(x: u32) -> u32 {
    x * 2
}

crystallize::main!();
