//! The I/O-bound comparison: units that wait on a server, as language-model games do. Each unit
//! makes [`CALLS`] requests in a row to a real HTTP server on 127.0.0.1 that answers every
//! request after [`LATENCY`]. The same work runs twice, side by side in one process:
//!
//! - `io_async`, an `async fn` experiment: units are tasks on crystallize's tokio runtime, `jobs`
//!   of them in flight, each awaiting an async `reqwest` client;
//! - `io_threads`, the same experiment written as a sync `fn` with a blocking client: the
//!   thread-based runner, one worker thread per unit in flight.
//!
//! With `jobs` units in flight the ideal wall time is `units × CALLS × LATENCY / jobs`. Memory per
//! unit in flight is marginal: each side runs in a fresh process once with `jobs` in flight and
//! once with one, and the difference of their peak resident sets (VmHWM) is divided by `jobs - 1`,
//! so that what every run has (the runtime, the server, the binary) cancels out.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crystallize::__private::internals::{execute, Plan, Registry, RunOptions};
use crystallize::prelude::*;

/// Requests per unit.
pub const CALLS: u32 = 3;
/// How long the server takes to answer each request.
pub const LATENCY: Duration = Duration::from_millis(100);

/// The server's address, set once before either experiment runs. (Both experiments opt out of
/// `cargo test`'s smoke tests: they need the server `crystallize-bench io` starts.)
static URL: OnceLock<String> = OnceLock::new();

fn url() -> &'static str {
    URL.get().map(String::as_str).unwrap_or("http://127.0.0.1:9/")
}

fn async_client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(reqwest::Client::new)
}

fn blocking_client() -> &'static reqwest::blocking::Client {
    static CLIENT: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    CLIENT.get_or_init(reqwest::blocking::Client::new)
}

/// Which server endpoint a condition calls (the two conditions differ only by the path).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Endpoint {
    /// The request path.
    pub path: String,
}

#[datasource]
fn endpoint() -> Endpoint {
    Endpoint { path: "answer".into() }
}

#[experiment(datasource = endpoint, replicates = 10, seed = 7, smoke_test = false)]
async fn io_async(input: Endpoint, ctx: &mut Ctx) {
    let mut bytes = 0usize;
    for _ in 0..CALLS {
        let response = async_client().get(format!("{}{}", url(), input.path)).send().await;
        let body = match response {
            Ok(response) => response.bytes().await.map(|b| b.len()).unwrap_or(0),
            Err(error) => panic!("the bench server did not answer: {error}"),
        };
        bytes += body;
    }
    ctx.record("bytes", bytes as f64);
}

#[treatment(io_async)]
fn other_async(input: &mut Endpoint) {
    input.path = "other".into();
}

#[experiment(datasource = endpoint, replicates = 10, seed = 7, smoke_test = false)]
fn io_threads(input: Endpoint, ctx: &mut Ctx) {
    let mut bytes = 0usize;
    for _ in 0..CALLS {
        let response = blocking_client().get(format!("{}{}", url(), input.path)).send();
        let body = match response {
            Ok(response) => response.bytes().map(|b| b.len()).unwrap_or(0),
            Err(error) => panic!("the bench server did not answer: {error}"),
        };
        bytes += body;
    }
    ctx.record("bytes", bytes as f64);
}

#[treatment(io_threads)]
fn other_threads(input: &mut Endpoint) {
    input.path = "other".into();
}

/// Starts the server on its own thread and runtime, for the rest of the process.
pub fn start_server() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port on 127.0.0.1");
            let address = listener.local_addr().expect("the bound address");
            let app = axum::Router::new().route(
                "/{path}",
                axum::routing::get(|| async {
                    tokio::time::sleep(LATENCY).await;
                    "forty-two"
                }),
            );
            let _ = tx.send(format!("http://{address}/"));
            axum::serve(listener, app).await.expect("the server runs");
        });
    });
    let url = rx.recv().expect("the server started");
    let _ = URL.set(url);
}

/// Runs `units` units of `experiment` with `jobs` in flight; returns the wall time. Panics if a
/// unit failed: a comparison of failed runs would mean nothing.
pub fn measure(experiment: &str, units: u64, jobs: usize) -> Duration {
    let registry = Registry::collect().expect("the bench's experiments are registered");
    let found = registry.experiment(Some(experiment)).expect("an I/O experiment");
    let plan = Plan::new(found, &[], (units / 2).max(1), 7, &[]).expect("a valid plan");
    let started = Instant::now();
    let options = RunOptions { jobs, ..RunOptions::default() };
    let results = execute(&plan, &options, &mut []);
    let wall = started.elapsed();
    let failed = results.units.iter().filter(|u| !u.is_ok()).count();
    assert_eq!(failed, 0, "{experiment}: {failed} units failed");
    wall
}

/// The peak resident set of this process so far, in bytes (Linux; 0 elsewhere).
pub fn peak_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    kib * 1024
}
