//! Every async shape, in one program: `async fn` experiments (with and without datasource,
//! params and context), `#[step] async fn` (free and methods, with and without a limit), a sync
//! step with a limit, and the run attributes. It must compile without warnings and register
//! what it says.

#![deny(warnings)]

use std::time::Duration;

use crystallize::__private::Experiment;
use crystallize::prelude::*;
use crystallize::__private::internals::Registry;
use crystallize::__private::StepEntry;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Duel {
    pub rounds: u32,
}

#[datasource]
fn duel() -> Duel {
    Duel { rounds: 3 }
}

#[derive(Clone, Debug, Params)]
pub struct ArenaParams {
    #[param(default = 2)]
    pub delay_ms: u64,
}

#[derive(Metrics)]
pub struct ArenaMetrics {
    pub score: u32,
    pub win: bool,
}

#[step(limit = "server")]
async fn ask(question: &str, delay_ms: u64) -> Result<usize, String> {
    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    if question.is_empty() {
        return Err("empty question".into());
    }
    Ok(question.len())
}

#[step(limit = "gpu-0")]
fn judge(answer: usize) -> bool {
    answer % 2 == 0
}

#[step]
async fn pause() {}

/// `?` inside the step's body converts the error to the function's own.
#[step]
async fn parse(text: &str) -> Result<u32, String> {
    pause().await;
    let number: u32 = text.parse().map_err(|error: std::num::ParseIntError| error.to_string())?;
    Ok(number)
}

#[step]
async fn parse_io(text: &str) -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
    let number: u32 = text.parse()?;
    Ok(number)
}

pub struct Player {
    pub bonus: u32,
}

impl Player {
    #[step(limit = "server")]
    async fn answer(&self, round: u32) -> u32 {
        pause().await;
        round + self.bonus
    }

    #[step]
    pub async fn bump(&mut self) {
        self.bonus += 1;
    }

    /// A method with a deadline, retries and a limit: `&mut self` kept across attempts, an owned
    /// argument cloned for each, `?` and `return` inside the body.
    #[step(limit = "server", timeout = "30s", retries = 2)]
    async fn retort(&mut self, line: String, ctx: &mut Ctx) -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
        pause().await;
        if line.is_empty() {
            return Ok(self.bonus);
        }
        let number: u32 = line.parse()?;
        self.bonus += number;
        Ok(self.bonus + ctx.rng().random_range(0..1))
    }
}

/// A sync step with retries, taking the context and a borrowed argument.
#[step(retries = 1)]
fn settle(text: &str, ctx: &mut Ctx) -> Result<u32, crystallize::results::Failure> {
    let number: u32 = text.parse().map_err(crystallize::results::Failure::retryable)?;
    Ok(number + ctx.rng().random_range(0..1))
}

/// Datasource, typed params, declared metrics, every run attribute.
#[experiment(
    datasource = duel,
    jobs = 16,
    timeout = "2min",
    retries = 3,
    limits(server = 2, "gpu-0" = 1),
    smoke_test = false
)]
async fn arena(duel: Duel, params: &ArenaParams, ctx: &mut Ctx) -> Result<ArenaMetrics, String> {
    let mut player = Player { bonus: parse("0").await? + parse_io("0").await.map_err(|e| e.to_string())? };
    player.bump().await;
    let mut score = player.retort("1".to_owned(), ctx).await.map_err(|e| e.to_string())?;
    score += settle("2", ctx).map_err(|e| e.to_string())?;
    for round in 0..duel.rounds {
        let length = ask("What is 2 + 2?", params.delay_ms).await?;
        score += player.answer(round).await + u32::from(judge(length));
        ctx.emit("round", json!({ "round": round }));
    }
    Ok(ArenaMetrics { score, win: ctx.rng().random_bool(0.5) })
}

/// Input by reference, the params of `params(...)`, no context.
#[experiment(datasource = duel, params(rounds: u32 = 1), smoke_test = false)]
async fn by_ref(duel: &Duel, params: &ByRefParams) -> Result<(), String> {
    pause().await;
    if duel.rounds < params.rounds {
        return Err("too few rounds".into());
    }
    Ok(())
}

/// No datasource, the context only, recording with `ctx.record`.
#[experiment(timeout = "500ms", smoke_test = false)]
async fn coin(ctx: &mut Ctx) {
    pause().await;
    ctx.record("heads", ctx.rng().random_bool(0.5));
}

/// Nothing at all.
#[experiment(smoke_test = false)]
async fn nothing() {}

fn main() {
    assert!(arena::ASYNC && by_ref::ASYNC && coin::ASYNC && nothing::ASYNC);
    let registry = Registry::collect().unwrap_or_else(|error| panic!("inconsistent registry: {error}"));
    let entry = |name: &str| registry.experiment(Some(name)).unwrap_or_else(|error| panic!("{error}")).entry;

    let run = entry("arena").run;
    assert_eq!((run.jobs, run.timeout_ms, run.retries), (Some(16), Some(120_000), Some(3)));
    assert_eq!(run.limits, [("server", 2), ("gpu-0", 1)]);
    assert_eq!(entry("arena").metrics, Some(&["score", "win"][..]));
    let run = entry("coin").run;
    assert_eq!((run.jobs, run.timeout_ms, run.retries, run.limits), (None, Some(500), None, &[][..]));
    let run = entry("nothing").run;
    assert_eq!((run.jobs, run.timeout_ms, run.retries, run.limits.len()), (None, None, None, 0));

    let mut limits: Vec<(&str, Option<&str>)> =
        crystallize::__private::inventory::iter::<StepEntry>.into_iter().map(|step| (step.0.name, step.0.limit)).collect();
    limits.sort();
    assert_eq!(
        limits,
        [
            ("answer", Some("server")),
            ("ask", Some("server")),
            ("bump", None),
            ("judge", Some("gpu-0")),
            ("parse", None),
            ("parse_io", None),
            ("pause", None),
            ("retort", Some("server")),
            ("settle", None),
        ]
    );

    // Outside a unit the sync `run` of an async experiment refuses, naming the async runner.
    let mut ctx = Ctx::standalone(1);
    let refused = coin::run((), &mut ctx);
    assert!(refused.is_err_and(|message| message.message().contains("async runner")));
}
