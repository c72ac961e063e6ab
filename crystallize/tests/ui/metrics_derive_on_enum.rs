use crystallize::prelude::*;

#[derive(Metrics)]
enum GameMetrics {
    Won,
    Lost,
}

fn main() {}
