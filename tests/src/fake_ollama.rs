//! A fake Ollama server for tests: a real HTTP server on 127.0.0.1 that speaks the two endpoints
//! of Ollama's API a game needs, with a deterministic fake model behind them.
//!
//! ```no_run
//! use std::time::Duration;
//! use crystallize_tests::fake_ollama::{Behaviour, FakeOllama};
//!
//! let server = FakeOllama::start(Behaviour::default().latency(Duration::from_millis(5)).failure_rate(0.1));
//! // Point the program under test at it: OLLAMA_HOST=<server.url()>
//! println!("{}", server.url()); // http://127.0.0.1:PORT
//! assert_eq!(server.requests(), 0);
//! // ... dropping `server` stops it, and answers nothing more.
//! ```
//!
//! - `POST /api/chat` takes `{"model", "messages": [{"role", "content"}], "stream": false,
//!   "options": {"seed", "temperature"}}` and answers `{"model", "created_at", "message": {"role":
//!   "assistant", "content"}, "done": true, "eval_count"}`. Streaming is not simulated: a request
//!   without `"stream": false` gets a 400, as would any body that is not such a request.
//! - `GET /api/tags` lists the models of the [`Behaviour`] (`{"models": [{"name", ...}]}`).
//!
//! **The fake model.** A reply is a function of the model name, every message's content and
//! `options.seed` (hashed with FNV-1a, stable across Rust versions), so the same request always
//! gets the same reply, whatever the order or concurrency of requests. When the last message is
//! a multiple-choice arithmetic question (a line `What is 37 + 48?` and option lines `A) 85` to
//! `D) ...`), the model answers it: correctly with the probability [`skill`] gives its name
//! (lower for a name containing `dolphin`), otherwise with a wrong letter, and now and then with a
//! reply that names no letter at all. Any other prompt gets a short reply derived from the hash.
//!
//! **Faults** are decided per request by a hash of the request and of how many identical requests
//! came before it (its attempt number), so a retry of a failed request can succeed, and a test
//! sees the same faults on every run.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::json;

/// The models `GET /api/tags` lists unless [`Behaviour::models`] says otherwise.
pub const DEFAULT_MODELS: [&str; 3] = ["llama3:8b", "llama3.1:8b", "dolphin-llama3:latest"];

/// How the fake server behaves. Build it from [`Behaviour::default`] (no latency, no faults, the
/// [`DEFAULT_MODELS`]) with the builder methods.
#[derive(Clone, Debug)]
pub struct Behaviour {
    latency: Duration,
    failure_rate: f64,
    hang_rate: f64,
    malformed_rate: f64,
    hang_models: Vec<String>,
    models: Vec<String>,
}

impl Default for Behaviour {
    fn default() -> Behaviour {
        Behaviour {
            latency: Duration::ZERO,
            failure_rate: 0.0,
            hang_rate: 0.0,
            malformed_rate: 0.0,
            hang_models: Vec::new(),
            models: DEFAULT_MODELS.iter().map(|m| m.to_string()).collect(),
        }
    }
}

impl Behaviour {
    /// Every request waits this long before it is answered (or fails).
    pub fn latency(mut self, latency: Duration) -> Behaviour {
        self.latency = latency;
        self
    }

    /// The fraction (0 to 1) of chat requests answered with HTTP 500. 1.0 fails every one.
    pub fn failure_rate(mut self, rate: f64) -> Behaviour {
        self.failure_rate = rate;
        self
    }

    /// The fraction (0 to 1) of chat requests never answered (until the client gives up or the
    /// server stops), for timeout tests.
    pub fn hang_rate(mut self, rate: f64) -> Behaviour {
        self.hang_rate = rate;
        self
    }

    /// The fraction (0 to 1) of chat requests answered with 200 and a body that is not JSON.
    pub fn malformed_rate(mut self, rate: f64) -> Behaviour {
        self.malformed_rate = rate;
        self
    }

    /// Every chat request for `model` (exact name) hangs; may be given for several models.
    pub fn hang_model(mut self, model: impl Into<String>) -> Behaviour {
        self.hang_models.push(model.into());
        self
    }

    /// The models `GET /api/tags` lists. Chat requests for other models are answered anyway.
    pub fn models<I, S>(mut self, models: I) -> Behaviour
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.models = models.into_iter().map(Into::into).collect();
        self
    }
}

/// State shared by the handlers and the [`FakeOllama`] handle.
struct Shared {
    behaviour: Mutex<Behaviour>,
    requests: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    /// How many times each distinct chat request (by hash) has been seen: its next attempt number.
    attempts: Mutex<HashMap<u64, u64>>,
}

/// A running fake Ollama server; stops (dropping every open connection) when dropped.
pub struct FakeOllama {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeOllama {
    /// Starts a server on 127.0.0.1 at a free port, on its own runtime in a background thread, and
    /// returns once it accepts connections. Panics (this is test code) if it cannot.
    pub fn start(behaviour: Behaviour) -> FakeOllama {
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(behaviour),
            requests: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
            attempts: Mutex::new(HashMap::new()),
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<SocketAddr, String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new().route("/api/chat", post(chat)).route("/api/tags", get(tags)).with_state(shared.clone());
        let thread = std::thread::Builder::new()
            .name("fake-ollama".into())
            .spawn(move || {
                // One thread is enough: handlers only wait (latency, hangs), they never compute long.
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = ready_tx.send(Err(format!("could not build a tokio runtime: {error}")));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                        Ok(listener) => listener,
                        Err(error) => {
                            let _ = ready_tx.send(Err(format!("could not listen on 127.0.0.1:0: {error}")));
                            return;
                        }
                    };
                    let addr = listener.local_addr().map_err(|e| format!("no local address: {e}"));
                    let _ = ready_tx.send(addr);
                    // Served in a task, not awaited here: axum's graceful shutdown would wait for
                    // hanging requests forever. Dropping the runtime below cancels the task and
                    // every connection instead.
                    tokio::spawn(async move {
                        let _ = axum::serve(listener, app).await;
                    });
                    // A dropped sender (the handle is gone) also ends the wait.
                    let _ = stop_rx.await;
                });
            })
            .expect("could not spawn the fake Ollama thread");
        let addr = match ready_rx.recv() {
            Ok(Ok(addr)) => addr,
            Ok(Err(error)) => panic!("fake Ollama did not start: {error}"),
            Err(_) => panic!("fake Ollama did not start: its thread ended before listening"),
        };
        FakeOllama { addr, shared, stop: Some(stop_tx), thread: Some(thread) }
    }

    /// The base URL, `http://127.0.0.1:PORT`: what `OLLAMA_HOST` should be set to.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests seen so far, on both endpoints, answered or not.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Requests being handled right now (hanging ones included).
    pub fn in_flight(&self) -> u64 {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// The most requests that were being handled at the same moment since the server started.
    pub fn max_in_flight(&self) -> u64 {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Replaces the behaviour for requests arriving from now on (e.g. a failing server recovers).
    /// Attempt counters are kept.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.shared.behaviour.lock().unwrap_or_else(PoisonError::into_inner) = behaviour;
    }
}

impl Drop for FakeOllama {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Counts a request as in flight until dropped (also when the handler is cancelled).
struct InFlight(Arc<Shared>);

impl InFlight {
    fn enter(shared: &Arc<Shared>) -> InFlight {
        shared.requests.fetch_add(1, Ordering::SeqCst);
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Deserialize)]
struct ChatIn {
    model: String,
    messages: Vec<MessageIn>,
    /// Ollama streams unless told `false`; a missing field means `true`.
    stream: Option<bool>,
    #[serde(default)]
    options: OptionsIn,
}

#[derive(Deserialize)]
struct MessageIn {
    #[allow(dead_code)] // Required like Ollama requires it; the fake model reads contents only.
    role: String,
    content: String,
}

#[derive(Deserialize, Default)]
struct OptionsIn {
    seed: Option<u64>,
    #[allow(dead_code)] // Accepted so requests are checked; the fake model ignores it.
    temperature: Option<f64>,
}

fn error_response(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

async fn chat(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let _in_flight = InFlight::enter(&shared);
    let behaviour = shared.behaviour.lock().unwrap_or_else(PoisonError::into_inner).clone();
    if !behaviour.latency.is_zero() {
        tokio::time::sleep(behaviour.latency).await;
    }
    let request: ChatIn = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return error_response(StatusCode::BAD_REQUEST, format!("invalid chat request: {error}")),
    };
    if request.stream != Some(false) {
        return error_response(StatusCode::BAD_REQUEST, "fake Ollama answers only \"stream\": false".into());
    }
    let hash = request_hash(&request);
    let attempt = {
        let mut attempts = shared.attempts.lock().unwrap_or_else(PoisonError::into_inner);
        let counter = attempts.entry(hash).or_insert(0);
        *counter += 1;
        *counter - 1
    };
    let fault = mix(hash ^ mix(attempt.wrapping_add(1)));
    if behaviour.hang_models.contains(&request.model) || fraction(fault, 1) < behaviour.hang_rate {
        // Never answered; the InFlight guard is released when the connection or server goes.
        std::future::pending::<()>().await;
    }
    if fraction(fault, 2) < behaviour.failure_rate {
        let message = format!("fake Ollama: simulated failure (failure_rate {})", behaviour.failure_rate);
        return error_response(StatusCode::INTERNAL_SERVER_ERROR, message);
    }
    if fraction(fault, 3) < behaviour.malformed_rate {
        let cut = r#"{"model":"fake","message":{"role":"assistant","content":"trunc"#;
        return ([(header::CONTENT_TYPE, "application/json")], cut).into_response();
    }
    let content = reply(&request.model, request.messages.last().map_or("", |m| &m.content), hash);
    let eval_count = content.split_whitespace().count();
    axum::Json(json!({
        "model": request.model,
        // Fixed, so that responses are reproducible byte for byte.
        "created_at": "2024-01-01T00:00:00Z",
        "message": { "role": "assistant", "content": content },
        "done": true,
        "done_reason": "stop",
        "eval_count": eval_count,
    }))
    .into_response()
}

async fn tags(State(shared): State<Arc<Shared>>) -> Response {
    let _in_flight = InFlight::enter(&shared);
    let behaviour = shared.behaviour.lock().unwrap_or_else(PoisonError::into_inner).clone();
    if !behaviour.latency.is_zero() {
        tokio::time::sleep(behaviour.latency).await;
    }
    let models: Vec<_> = behaviour
        .models
        .iter()
        .map(|name| {
            json!({
                "name": name,
                "model": name,
                "modified_at": "2024-01-01T00:00:00Z",
                "size": 0,
                "digest": format!("{:016x}", fnv1a(FNV_OFFSET, name.as_bytes())),
            })
        })
        .collect();
    axum::Json(json!({ "models": models })).into_response()
}

/// The probability that `model` answers a quiz question correctly: 0.45 for a name containing
/// `dolphin`, 0.8 for any other.
pub fn skill(model: &str) -> f64 {
    if model.contains("dolphin") {
        0.45
    } else {
        0.8
    }
}

/// The probability that `model`'s reply to a quiz question names no option letter at all.
fn rambling(model: &str) -> f64 {
    if model.contains("dolphin") {
        0.1
    } else {
        0.03
    }
}

/// The fake model's reply to a request with hash `hash` whose last message is `prompt`.
fn reply(model: &str, prompt: &str, hash: u64) -> String {
    let Some((correct, options)) = solve_quiz(prompt) else {
        return format!("({model}) fake reply {hash:016x}");
    };
    if fraction(hash, 4) < rambling(model) {
        return "I am not sure, it could be several of them.".into();
    }
    let chosen = if fraction(hash, 5) < skill(model) {
        correct
    } else {
        // One of the three wrong options.
        let wrong: Vec<usize> = (0..4).filter(|&i| i != correct).collect();
        wrong[(mix(hash ^ 6) % 3) as usize]
    };
    let letter = char::from(b'A' + chosen as u8);
    // Replies in the shapes real models use, so the game's parser meets all of them.
    match fraction(hash, 7) {
        f if f < 0.5 => letter.to_string(),
        f if f < 0.75 => format!("{letter}) {}", options[chosen]),
        _ => format!("The answer is {letter}."),
    }
}

/// Finds `What is A OP B?` and the option lines `A) n` .. `D) n` in `prompt`: the index of the
/// option equal to the result, and the options. `None` unless exactly one option is right.
fn solve_quiz(prompt: &str) -> Option<(usize, [i64; 4])> {
    let start = prompt.find("What is ")? + "What is ".len();
    let end = start + prompt[start..].find('?')?;
    let words: Vec<&str> = prompt[start..end].split_whitespace().collect();
    let [a, op, b] = words.as_slice() else { return None };
    let (a, b): (i64, i64) = (a.parse().ok()?, b.parse().ok()?);
    let result = match *op {
        "+" => a.checked_add(b)?,
        "-" => a.checked_sub(b)?,
        "*" | "x" | "×" => a.checked_mul(b)?,
        _ => return None,
    };
    let mut options = [None; 4];
    for line in prompt.lines() {
        let line = line.trim();
        for (index, letter) in ['A', 'B', 'C', 'D'].into_iter().enumerate() {
            if let Some(value) = line.strip_prefix(letter).and_then(|rest| rest.strip_prefix(')')) {
                options[index] = value.trim().parse::<i64>().ok();
            }
        }
    }
    let options = [options[0]?, options[1]?, options[2]?, options[3]?];
    let mut right = options.iter().enumerate().filter(|(_, &v)| v == result).map(|(i, _)| i);
    let correct = right.next()?;
    right.next().is_none().then_some((correct, options))
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The hash of what decides a reply: model, every message's content (length-prefixed, so that
/// message boundaries count), and the seed.
fn request_hash(request: &ChatIn) -> u64 {
    let mut hash = fnv1a(FNV_OFFSET, request.model.as_bytes());
    for message in &request.messages {
        hash = fnv1a(hash, &(message.content.len() as u64).to_le_bytes());
        hash = fnv1a(hash, message.content.as_bytes());
    }
    let seed = request.options.seed.map_or([0xff; 9], |s| {
        let mut bytes = [0; 9];
        bytes[1..].copy_from_slice(&s.to_le_bytes());
        bytes
    });
    fnv1a(hash, &seed)
}

/// splitmix64's finaliser: spreads FNV's weak low bits over the whole word.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A number in [0, 1) drawn from `hash` for decision number `salt`.
fn fraction(hash: u64, salt: u64) -> f64 {
    (mix(hash ^ mix(salt)) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUIZ: &str = "Question 1: What is 37 + 48?\nA) 84\nB) 85\nC) 95\nD) 75\nAnswer with one letter.";

    #[test]
    fn solves_the_quiz_format() {
        assert_eq!(solve_quiz(QUIZ), Some((1, [84, 85, 95, 75])));
        assert_eq!(solve_quiz("What is 2 + 2?\nA) 4\nB) 4\nC) 1\nD) 2"), None, "two right options");
        assert_eq!(solve_quiz("hello"), None);
    }

    #[test]
    fn dolphin_answers_worse_over_many_questions() {
        let correct = |model: &str| {
            (0..2000u64)
                .filter(|&h| reply(model, QUIZ, mix(h)).starts_with('B') || reply(model, QUIZ, mix(h)).ends_with("B."))
                .count()
        };
        let (llama, dolphin) = (correct("llama3:8b"), correct("dolphin-llama3:latest"));
        assert!(llama > 1400 && dolphin < 1000, "llama {llama}, dolphin {dolphin} of 2000");
    }

    #[test]
    fn fractions_are_in_unit_interval() {
        assert!((0..10_000u64).map(|h| fraction(h, 3)).all(|f| (0.0..1.0).contains(&f)));
    }
}
