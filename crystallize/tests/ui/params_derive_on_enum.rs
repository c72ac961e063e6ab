use crystallize::prelude::*;

#[derive(Params)]
enum GameParams {
    Hot,
    Cold,
}

fn main() {}
