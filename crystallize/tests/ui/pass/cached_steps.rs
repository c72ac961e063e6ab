//! Every shape of `#[step(cache)]`: sync and async, free and methods, whole outputs and
//! `Result`s (only `Ok` is stored; `?` converts errors as in any function), skipped
//! arguments, `shared`, `version`, with a limit. Must compile without warnings.

#![deny(warnings)]

use crystallize::prelude::*;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reply {
    pub text: String,
    pub calls: u32,
}

pub struct Client {
    pub base: String,
}

/// Calls of `double`'s body.
static DOUBLED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

#[step(cache)]
pub fn double(x: u64) -> u64 {
    DOUBLED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    if x == 0 {
        return 0;
    }
    x * 2
}

#[step(cache(shared, version = 3))]
pub fn parse(text: &str) -> Result<Vec<u32>, std::num::ParseIntError> {
    let mut numbers = Vec::new();
    for word in text.split(',') {
        numbers.push(word.trim().parse()?);
    }
    Ok(numbers)
}

#[step(limit = "server", cache(skip(client)))]
pub async fn ask(client: &Client, model: &str, question: &str) -> Result<Reply, String> {
    if model.is_empty() {
        return Err(format!("no model at {}", client.base));
    }
    Ok(Reply { text: format!("{question}?"), calls: 1 })
}

#[step(cache)]
pub async fn nothing() {}

#[derive(Serialize)]
pub struct Player {
    pub points: u32,
}

impl Player {
    #[step(cache)]
    pub fn score(&self, bonus: u32) -> u32 {
        self.points + bonus
    }

    #[step(cache(skip(self)))]
    pub async fn score_async(&self, bonus: u32) -> Option<u32> {
        Some(self.points + bonus)
    }
}

#[experiment(params(rounds: u64 = 2), limits(server = 1), smoke_test = false)]
async fn game(params: &GameParams, ctx: &mut Ctx) -> Result<(), String> {
    let client = Client { base: "http://localhost".into() };
    let reply = ask(&client, "llama", "2 + 2").await?;
    let player = Player { points: double(params.rounds) as u32 };
    let total = player.score(1) + player.score_async(2).await.unwrap_or(0);
    nothing().await;
    let parsed = parse("1, 2").map_err(|e| e.to_string())?;
    ctx.record("total", f64::from(total) + f64::from(reply.calls) + parsed.len() as f64);
    Ok(())
}

fn main() {
    // Outside a unit a cached step is a plain call.
    assert_eq!(double(2), 4);
    assert_eq!(Player { points: 1 }.score(2), 3);
    let store = tempfile::tempdir().expect("a temporary store");
    let run = || {
        let finished = crystallize::session::Session::named("game").store(store.path()).replicates(3).run();
        let finished = finished.expect("the run starts");
        assert_eq!(finished.results.failed(), 0);
        finished.results.units.iter().map(|u| u.metrics.get("total").copied()).collect::<Vec<_>>()
    };
    let before = DOUBLED.load(std::sync::atomic::Ordering::SeqCst);
    let first = run();
    let after_first = DOUBLED.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(after_first - before, 3, "one call per unit");
    assert_eq!(run(), first, "the same metrics from the cache");
    assert_eq!(DOUBLED.load(std::sync::atomic::Ordering::SeqCst), after_first, "no call: every one was a hit");
}
