use crystallize::prelude::*;

#[derive(Params)]
struct GameParams {
    #[param(default = 0.7)]
    temperature: f64,
    models: Vec<String>,
}

fn main() {}
