use crystallize::prelude::*;

#[derive(Params)]
struct GameParams {
    #[param(default = 0.7)]
    temperature: f64,
    think_ms: u64,
}

fn main() {}
