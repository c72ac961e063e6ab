use crystallize::prelude::*;

#[datasource(cached = true)]
fn table() -> u32 {
    6
}

crystallize::main!();
