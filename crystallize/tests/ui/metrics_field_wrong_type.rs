use crystallize::prelude::*;

#[derive(Metrics)]
struct GameMetrics {
    win: bool,
    winner: String,
    scores: Vec<f64>,
}

fn main() {}
