use crystallize::prelude::*;

#[step(limit = 3)]
fn ask(x: u32) -> u32 {
    x * 2
}

crystallize::main!();
