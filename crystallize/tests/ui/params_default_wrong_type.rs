use crystallize::prelude::*;

#[derive(Params)]
struct GameParams {
    #[param(default = "hot")]
    temperature: f64,
    #[param(default = -1)]
    think_ms: u64,
}

fn main() {}
