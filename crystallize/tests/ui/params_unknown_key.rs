use crystallize::prelude::*;

#[derive(Params)]
struct GameParams {
    #[param(defualt = 0.7)]
    temperature: f64,
}

fn main() {}
