use crystallize::prelude::*;

#[derive(Params)]
struct GameParams {
    #[param(default = 300)]
    players: u8,
}

fn main() {}
