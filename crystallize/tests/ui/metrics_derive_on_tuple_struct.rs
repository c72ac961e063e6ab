use crystallize::prelude::*;

#[derive(Metrics)]
struct GameMetrics(bool, u32);

fn main() {}
