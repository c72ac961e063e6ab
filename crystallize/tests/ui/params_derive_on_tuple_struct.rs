use crystallize::prelude::*;

#[derive(Params)]
struct GameParams(f64, u64);

fn main() {}
