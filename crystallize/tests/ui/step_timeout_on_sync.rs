use crystallize::prelude::*;

#[step(timeout = "30s")]
fn score(x: u32) -> u32 {
    x * 2
}

crystallize::main!();
