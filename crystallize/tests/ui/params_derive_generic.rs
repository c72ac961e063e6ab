use crystallize::prelude::*;

#[derive(Params)]
struct GameParams<T> {
    #[param(default = 0.7)]
    temperature: T,
}

fn main() {}
