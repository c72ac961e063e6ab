use crystallize::prelude::*;

#[step]
async fn fetch(url: &str) -> usize {
    url.len()
}

crystallize::main!();
