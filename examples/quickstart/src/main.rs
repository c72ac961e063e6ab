//! The on-ramp: a script you already have, one call away from replicates, seeds and a summary.
//!
//! ```text
//! cargo run -p quickstart
//! ```
//!
//! No attributes, no `main!`: `play_once` is an ordinary function of a config and the context.
//! See docs/FROM_SCRIPT_TO_EXPERIMENT.md for the steps from here to the attribute form.

use crystallize::prelude::*;

/// What differs between the configs.
#[derive(Clone, Debug)]
struct GameConfig {
    /// The model at the hallucination-prone seats.
    model: &'static str,
    /// How often that model accuses at random.
    hallucination_rate: f64,
}

/// One game: the aligned side wins unless too many of its votes are hallucinated.
fn play_once(config: GameConfig, ctx: &mut Ctx) {
    let mut rng = ctx.rng();
    let rounds = 8;
    let hallucinated = (0..rounds).filter(|_| rng.random_bool(config.hallucination_rate)).count();
    ctx.emit("game", json!({ "model": config.model, "hallucinated": hallucinated }));
    ctx.record("win", hallucinated < 3);
    ctx.record("hallucinations", hallucinated as f64);
}

fn main() -> Result<(), crystallize::Error> {
    let configs = [
        ("baseline", GameConfig { model: "llama3:8b", hallucination_rate: 0.15 }),
        ("dolphin", GameConfig { model: "dolphin-llama3:latest", hallucination_rate: 0.45 }),
    ];
    let results = crystallize::quick(play_once, configs, 20)?;
    println!("{results}");
    if results.failed() > 0 {
        eprintln!("{} units failed", results.failed());
        std::process::exit(1);
    }
    Ok(())
}
