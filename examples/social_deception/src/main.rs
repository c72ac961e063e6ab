//! A social-deduction game between language-model-like players, run as a crystallize experiment.
//!
//! The story of the seed: "run baseline, then run with Dolphin models". Everything is simulated
//! offline: each player's "model" name maps to a behaviour (how often it hallucinates an
//! accusation, how well it reads others). Aligned players try to vote out the deceivers before
//! the deceivers reach parity.
//!
//! ```text
//! cargo run -p social_deception -- list
//! cargo run -p social_deception -- run --replicates 4
//! cargo run -p social_deception -- debug dolphin
//! cargo run -p social_deception -- run --treatment dolphin_spoilers --set think_ms=50
//! FOLLOW_CONDITION=dolphin cargo run -p social_deception -- run --set think_ms=200   # live events
//! cargo run -p social_deception -- watch     # in another terminal, while a run goes
//! ```

mod game;

use crystallize::observe::{Event, Observer, UnitKey};
use crystallize::prelude::*;
use game::{GameConfig, GameLog, GameParams, Player, Role};

const LLAMA: &str = "llama3:8b";
const DOLPHIN: &str = "dolphin-llama3:latest";

/// Seats six players, two of them deceivers; the hallucination-prone seats get `model`.
fn seat_players(model: &str) -> GameConfig {
    let players = (0..6)
        .map(|seat| Player {
            name: format!("player{seat}"),
            model: if seat % 2 == 0 { model.to_owned() } else { LLAMA.to_owned() },
            role: if seat < 2 { Role::Deceiver } else { Role::Aligned },
        })
        .collect();
    GameConfig { players, max_rounds: 8, spoilers: false }
}

/// The baseline table: every player runs a llama-like model.
#[datasource]
fn llama_table() -> GameConfig {
    seat_players(LLAMA)
}

/// Half the seats run a dolphin-like model, which hallucinates accusations more often.
#[datasource]
fn dolphin_table() -> GameConfig {
    seat_players(DOLPHIN)
}

/// A user-written observer: prints every event of one condition while the run goes, the
/// condition named by the environment variable `FOLLOW_CONDITION` (`FOLLOW_CONDITION=dolphin`).
/// Every hook of `Observer` does nothing by default; this one implements `event` only. It is
/// called from the run's output thread, so it needs no locks, and it prints through
/// `crystallize::console`, so the progress display stays intact.
struct FollowCondition(Option<String>);

impl FollowCondition {
    fn from_env() -> FollowCondition {
        FollowCondition(std::env::var("FOLLOW_CONDITION").ok().filter(|c| !c.is_empty()))
    }
}

impl Observer for FollowCondition {
    fn event(&mut self, unit: &UnitKey, event: &Event) {
        if self.0.as_deref() == Some(&*unit.condition) {
            let line = format!("[{} #{}] {} {}", unit.condition, unit.replicate, event.name, event.payload);
            crystallize::observe::line(line);
        }
    }
}

/// What one game measures: the experiment's declared metrics. A hypothesis about any other
/// metric is rejected before a unit runs.
#[derive(Metrics)]
pub struct GameMetrics {
    /// Whether the aligned side won (recorded as 0 or 1).
    pub win: bool,
    /// Rounds played.
    pub rounds: u32,
    /// Accusations made at random.
    pub hallucinations: u32,
}

/// One game: deal, then rounds of discussion and votes until a side wins.
#[experiment(
    datasource = llama_table,
    replicates = 10,
    seed = 42,
    hypotheses = ["dolphin.win < baseline.win"],
    observers = [FollowCondition::from_env()]
)]
fn social_deception(config: GameConfig, params: &GameParams, ctx: &mut Ctx) -> GameMetrics {
    // A unit that ends the whole process, for the store's crash tests (tests/e2e/damage.rs).
    if std::env::var_os("SOCIAL_DECEPTION_EXIT_IN_UNIT").is_some() {
        std::process::exit(0);
    }
    if params.crash_on_replicate == Some(ctx.replicate()) {
        panic!("simulated crash in replicate {} (set by --set crash_on_replicate)", ctx.replicate());
    }
    let log: GameLog = game::play(&config, params, ctx);
    if params.transcript {
        // Lands in <run>/artifacts/<condition>/<replicate>/transcript.txt.
        if let Err(error) = ctx.write_artifact("transcript.txt", log.transcript.join("\n") + "\n") {
            panic!("{error}");
        }
    }
    GameMetrics { win: log.aligned_won, rounds: log.rounds, hallucinations: log.hallucinations }
}

/// Swap the table for dolphin-like players.
#[treatment(social_deception, datasource = dolphin_table)]
fn dolphin() {}

/// Dolphin-like players, spoilers on (aligned players get a hint), and a hotter temperature.
#[treatment(social_deception, datasource = dolphin_table, set(temperature = 1.2))]
fn dolphin_spoilers(config: &mut GameConfig) {
    config.spoilers = true;
}

crystallize::main!();
