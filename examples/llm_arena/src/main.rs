//! A quiz duel between two language models served by Ollama, run as a crystallize experiment.
//!
//! Each game asks both players the same multiple-choice arithmetic questions over HTTP
//! (`POST /api/chat`), scores their replies, and records who won. The baseline pits two
//! llama-like models against each other; the `dolphin` treatment gives player two
//! `dolphin-llama3:latest`.
//!
//! Against a real Ollama (`ollama serve`, by default at http://127.0.0.1:11434; set
//! `OLLAMA_HOST=host:port` for another):
//!
//! ```text
//! ollama pull llama3:8b && ollama pull llama3.1:8b && ollama pull dolphin-llama3:latest
//! cargo run -p llm_arena -- debug dolphin                 # one game, each round as it is played
//! cargo run -p llm_arena -- run --replicates 5 --jobs 2   # at most 2 requests in flight
//! cargo run -p llm_arena -- run --set player_b=mistral:7b --set rounds=10
//! OLLAMA_HOST=gpu-box:11434 cargo run -p llm_arena -- run --set timeout_secs=600
//! ```
//!
//! Every request carries the unit's seed as Ollama's `seed`, so a replicate replays the same game
//! on the same server and model versions. The experiment is an `async fn`: its games run as tasks
//! on the framework's runtime, `jobs = 16` of them at once, and each request goes through
//! `game::ask`, a `#[step(limit = "ollama")]`, so the server never sees more than
//! `limits(ollama = 4)` requests at once, whatever `--jobs` says. Keep that capacity at or below
//! the server's `OLLAMA_NUM_PARALLEL`, or the queued requests count against `timeout_secs`. A
//! failed request is retried `retries` times when worth it (connection, timeout, 5xx); a unit
//! whose game still fails is a failed unit, with the HTTP status and URL in its message, and
//! `run --resume` replays only the failed units.
//!
//! `game::ask` is also `cache(skip(client))`: every reply is kept in the store's step cache, keyed
//! by the model, the question, the sampling, the unit and the call's position, so running the
//! same games again (after changing `score`, say) asks the server nothing; `--cache off` or
//! `--refresh ask` asks again, and `cache stats` shows what is kept (see docs/CACHE.md).

mod game;
mod ollama;

use std::time::Duration;

use crystallize::prelude::*;
use crystallize::results::Failure;
use game::{Duel, Round, Sampling};
use ollama::OllamaClient;

const LLAMA_A: &str = "llama3:8b";
const LLAMA_B: &str = "llama3.1:8b";
const DOLPHIN: &str = "dolphin-llama3:latest";
const ROUNDS: u32 = 5;

/// The baseline: two llama-like models.
#[datasource]
fn llama_pair() -> Duel {
    Duel { player_a: LLAMA_A.into(), player_b: LLAMA_B.into(), rounds: ROUNDS }
}

/// Player two plays a dolphin-tuned model.
#[datasource]
fn dolphin_pair() -> Duel {
    Duel { player_a: LLAMA_A.into(), player_b: DOLPHIN.into(), rounds: ROUNDS }
}

/// The params of a game: sampling, and the client's retries and timeout per request.
#[derive(Clone, Debug, Params)]
pub struct ArenaParams {
    /// The sampling temperature of every request.
    #[param(default = 0.7)]
    pub temperature: f64,
    /// Retries of a request that failed in a way worth retrying.
    #[param(default = 2)]
    pub retries: u32,
    /// The deadline of one request, in seconds.
    #[param(default = 120)]
    pub timeout_secs: u64,
}

/// What a game measures.
#[derive(Metrics)]
pub struct ArenaMetrics {
    /// Whether player one scored strictly more.
    pub win: bool,
    /// Right answers of player one.
    pub score_a: u32,
    /// Right answers of player two.
    pub score_b: u32,
    /// Rounds played.
    pub rounds: u32,
    /// HTTP calls the answers took, retries included; an answer served from the step cache
    /// counts the calls of the run that asked it (a hit records that run's metrics exactly).
    pub calls: u32,
}

/// One game of `rounds` questions between `player_a` and `player_b`.
// No smoke tests: they would run a game in `cargo test` against whatever listens at OLLAMA_HOST.
// The e2e tests (tests/e2e/llm_arena.rs) run the binary against a fake server instead.
// `retries` and `timeout_secs` are the game's own, per request; when a request still fails in a
// way worth retrying, the unit fails as retryable, so `--retries N` replays the whole game.
#[experiment(
    datasource = llama_pair,
    replicates = 10,
    seed = 42,
    jobs = 16,
    limits(ollama = 4),
    hypotheses = ["dolphin.win > baseline.win"],
    smoke_test = false
)]
async fn llm_arena(duel: Duel, params: &ArenaParams, ctx: &mut Ctx) -> Result<ArenaMetrics, Failure> {
    if params.timeout_secs == 0 {
        // reqwest would time every request out at once; say so instead of failing each call.
        return Err("param timeout_secs = 0: a request needs at least 1 second (e.g. --set timeout_secs=120)".into());
    }
    let client = OllamaClient::from_env(Duration::from_secs(params.timeout_secs)).map_err(|e| e.to_string())?;
    let sampling = Sampling { seed: ctx.seed(), temperature: params.temperature, retries: params.retries };
    // Drawn before the game so that every condition of a replicate asks the same questions.
    let questions = {
        let mut rng = ctx.rng();
        (1..=duel.rounds).map(|n| game::make_question(&mut rng, n)).collect()
    };

    // The callback holds the context by `&mut` (a `move` of the reborrow), not by `&`: `Ctx` is
    // not `Sync`, and the game's future must stay `Send` to run on the async runner.
    let players = &duel;
    let events = &mut *ctx;
    let mut so_far = [0u32; 2];
    let played = game::play(&client, &duel, questions, &sampling, move |round| {
        so_far[0] += u32::from(round.a.correct);
        so_far[1] += u32::from(round.b.correct);
        events.emit(
            "round",
            json!({
                "round": round.question.number,
                "question": round.question.text,
                "options": round.question.options,
                "correct": letter(Some(round.question.correct)),
                "a": { "model": players.player_a, "reply": round.a.reply, "choice": letter(round.a.choice), "correct": round.a.correct },
                "b": { "model": players.player_b, "reply": round.b.reply, "choice": letter(round.b.choice), "correct": round.b.correct },
                "score": so_far,
            }),
        );
    })
    .await;
    let rounds = match played {
        Ok(rounds) => rounds,
        Err(error) => {
            let mut message = format!("{error} [Ollama at {}]", client.base());
            // An unknown model is a 404: say which models the server does have.
            if matches!(error.source, ollama::OllamaError::Status { status: 404, .. }) {
                if let Ok(models) = client.list_models().await {
                    message.push_str(&format!("; models on the server: {}", models.join(", ")));
                }
            }
            // A failure the server may not repeat (5xx, a dropped connection, a timeout) is worth
            // another game with the same seed: `--retries N` replays the unit.
            return Err(if error.source.is_retryable() { Failure::retryable(message) } else { Failure::new(message) });
        }
    };
    Ok(score(&rounds))
}

/// Scores a played game: a step of its own and not cached, so that a change to how games are
/// scored re-scores the replies the step cache kept, without asking the models again.
#[step]
fn score(rounds: &[Round]) -> ArenaMetrics {
    let right = |answers: &dyn Fn(&Round) -> bool| rounds.iter().filter(|round| answers(round)).count() as u32;
    let score_a = right(&|round| round.a.correct);
    let score_b = right(&|round| round.b.correct);
    ArenaMetrics {
        win: score_a > score_b,
        score_a,
        score_b,
        rounds: rounds.len() as u32,
        calls: rounds.iter().map(|round| round.a.calls + round.b.calls).sum(),
    }
}

/// The letter of an option index, `-` for none.
fn letter(choice: Option<usize>) -> String {
    match choice {
        Some(i) if i < 4 => char::from(b'A' + i as u8).to_string(),
        _ => "-".into(),
    }
}

/// Player two plays `dolphin-llama3:latest`.
#[treatment(llm_arena, datasource = dolphin_pair)]
fn dolphin() {}

/// Both players sample at a higher temperature.
#[treatment(llm_arena, set(temperature = 1.0))]
fn warm() {}

crystallize::main!();
