use crystallize::prelude::*;

#[step(retries = 2)]
fn score(x: u32) -> u32 {
    x * 2
}

#[step(retries = 2)]
async fn ask(x: u32) {
    let _ = x;
}

crystallize::main!();
