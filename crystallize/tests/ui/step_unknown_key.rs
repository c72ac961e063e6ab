use crystallize::prelude::*;

#[step(limits = "x")]
async fn ask(x: u32) -> u32 {
    x * 2
}

crystallize::main!();
