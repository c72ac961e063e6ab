use crystallize::prelude::*;

#[step(limit = "")]
async fn ask(x: u32) -> u32 {
    x * 2
}

crystallize::main!();
