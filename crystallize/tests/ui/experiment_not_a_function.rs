use crystallize::prelude::*;

#[experiment]
struct Coin;

crystallize::main!();
