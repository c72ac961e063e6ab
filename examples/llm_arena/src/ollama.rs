//! An async client for Ollama's chat API (`POST /api/chat`, non-streaming) and model list
//! (`GET /api/tags`), on reqwest.
//!
//! reqwest is built without TLS: a local Ollama speaks plain http. For an Ollama behind https,
//! build with `--features rustls`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where Ollama listens unless `OLLAMA_HOST` says otherwise.
pub const DEFAULT_HOST: &str = "http://127.0.0.1:11434";

/// The port Ollama uses when `OLLAMA_HOST` names a host without one.
const DEFAULT_PORT: u16 = 11434;

/// One message of a chat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A message with role `system`.
    pub fn system(content: impl Into<String>) -> ChatMessage {
        ChatMessage { role: "system".into(), content: content.into() }
    }

    /// A message with role `user`.
    pub fn user(content: impl Into<String>) -> ChatMessage {
        ChatMessage { role: "user".into(), content: content.into() }
    }
}

/// Sampling options of a chat request (Ollama's `options`); unset ones are left to the model.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ChatOptions {
    /// The sampling seed: with the same seed, prompt and model, Ollama answers the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The sampling temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
}

/// The body of `POST /api/chat`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChatRequest {
    /// The model, e.g. `llama3:8b`.
    pub model: String,
    /// The conversation so far.
    pub messages: Vec<ChatMessage>,
    /// Always `false`: one JSON answer instead of a stream of chunks.
    pub stream: bool,
    /// Sampling options.
    pub options: ChatOptions,
}

impl ChatRequest {
    /// A non-streaming request of `messages` to `model`.
    pub fn new(model: impl Into<String>, messages: Vec<ChatMessage>, options: ChatOptions) -> ChatRequest {
        ChatRequest { model: model.into(), messages, stream: false, options }
    }
}

/// The answer of `POST /api/chat` with `"stream": false`. Fields Ollama adds are ignored.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ChatResponse {
    /// The model that answered.
    pub model: String,
    /// When, as Ollama formats it.
    #[serde(default)]
    pub created_at: String,
    /// The reply.
    pub message: ChatMessage,
    /// Whether generation finished (always true without streaming).
    #[serde(default)]
    pub done: bool,
    /// Tokens generated, when the server says.
    #[serde(default)]
    pub eval_count: Option<u64>,
}

#[derive(Deserialize)]
struct TagsResponse {
    models: Vec<TagEntry>,
}

#[derive(Deserialize)]
struct TagEntry {
    name: String,
}

/// Why a request to Ollama failed. Every message names the URL.
#[derive(Debug, thiserror::Error)]
pub enum OllamaError {
    /// `OLLAMA_HOST` (or the base URL given) is not a usable address.
    #[error("invalid Ollama address {value:?} (from {origin}): {reason}; expected e.g. http://127.0.0.1:11434 or 127.0.0.1:11434")]
    InvalidHost {
        /// The value as given.
        value: String,
        /// Where it came from (`OLLAMA_HOST`, an argument).
        origin: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// No connection could be made (server down, wrong port).
    #[error(
        "could not connect to Ollama at {url}: {detail} (is `ollama serve` running? set OLLAMA_HOST to its address)"
    )]
    Connect {
        /// The URL requested.
        url: String,
        /// The underlying error.
        detail: String,
    },
    /// No complete answer within the client's timeout.
    #[error("no answer from {url} within {timeout:?} (the model may still be loading or the server is overloaded)")]
    Timeout {
        /// The URL requested.
        url: String,
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// The connection broke during the exchange.
    #[error("request to {url} failed: {detail}")]
    Transport {
        /// The URL requested.
        url: String,
        /// The underlying error.
        detail: String,
    },
    /// The server answered with a status other than 2xx.
    #[error("HTTP {status} from {url}: {message}{hint}", hint = status_hint(*status, model))]
    Status {
        /// The URL requested.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// Ollama's `error` field, or the start of the body.
        message: String,
        /// The model requested, for the hint on a 404.
        model: Option<String>,
    },
    /// The server answered 2xx with a body that is not the expected JSON.
    #[error("malformed answer from {url}: {detail}; body starts with {body_start:?}")]
    Malformed {
        /// The URL requested.
        url: String,
        /// What did not parse.
        detail: String,
        /// The first characters of the body.
        body_start: String,
    },
}

fn status_hint(status: u16, model: &Option<String>) -> String {
    match (status, model) {
        (404, Some(model)) => format!(" (is the model pulled? `ollama pull {model}`)"),
        _ => String::new(),
    }
}

impl OllamaError {
    /// Whether the same request may succeed if sent again: connection problems, timeouts, 5xx,
    /// 408 and 429 may pass; a bad address, another 4xx (unknown model, bad request) or a body
    /// the client cannot read would fail the same way again.
    pub fn is_retryable(&self) -> bool {
        match self {
            OllamaError::Connect { .. } | OllamaError::Timeout { .. } | OllamaError::Transport { .. } => true,
            OllamaError::Status { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            OllamaError::InvalidHost { .. } | OllamaError::Malformed { .. } => false,
        }
    }
}

/// Turns an Ollama address as `OLLAMA_HOST` accepts it into a base URL without trailing slash:
/// a missing scheme means `http`, a missing port (with http) means 11434.
pub fn base_url(value: &str, origin: &'static str) -> Result<String, OllamaError> {
    let invalid = |reason: String| OllamaError::InvalidHost { value: value.to_owned(), origin, reason };
    let trimmed = value.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(invalid("it is empty".into()));
    }
    let with_scheme = if trimmed.contains("://") { trimmed.to_owned() } else { format!("http://{trimmed}") };
    let mut url = reqwest::Url::parse(&with_scheme).map_err(|e| invalid(e.to_string()))?;
    match url.scheme() {
        "http" => {
            if url.port().is_none() {
                // `set_port` fails only for URLs that cannot have a port, which an http URL can.
                url.set_port(Some(DEFAULT_PORT)).map_err(|()| invalid("it cannot have a port".into()))?;
            }
        }
        // Without TLS reqwest would fail each request with a vaguer error; say it up front.
        "https" if !cfg!(feature = "rustls") => {
            return Err(invalid("https needs llm_arena built with `--features rustls`".into()));
        }
        "https" => {}
        other => return Err(invalid(format!("scheme {other:?} is not http or https"))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host".into()));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// A client of one Ollama server.
#[derive(Clone, Debug)]
pub struct OllamaClient {
    base: String,
    timeout: Duration,
    http: reqwest::Client,
}

impl OllamaClient {
    /// A client of the server `OLLAMA_HOST` names (default [`DEFAULT_HOST`]), giving up on a
    /// request after `timeout`.
    pub fn from_env(timeout: Duration) -> Result<OllamaClient, OllamaError> {
        match std::env::var("OLLAMA_HOST") {
            Ok(value) if !value.trim().is_empty() => OllamaClient::new(&value, "OLLAMA_HOST", timeout),
            Ok(_) | Err(std::env::VarError::NotPresent) => OllamaClient::new(DEFAULT_HOST, "the default", timeout),
            Err(std::env::VarError::NotUnicode(raw)) => Err(OllamaError::InvalidHost {
                value: raw.to_string_lossy().into_owned(),
                origin: "OLLAMA_HOST",
                reason: "it is not valid UTF-8".into(),
            }),
        }
    }

    /// A client of the server at `address` (`http://host:port` or `host:port`); `origin` says
    /// where the address came from, for errors.
    pub fn new(address: &str, origin: &'static str, timeout: Duration) -> Result<OllamaClient, OllamaError> {
        let base = base_url(address, origin)?;
        let mut builder =
            reqwest::Client::builder().timeout(timeout).connect_timeout(timeout.min(Duration::from_secs(10)));
        // A proxy from HTTP_PROXY must not capture requests to this machine (tests, a local Ollama).
        let local = reqwest::Url::parse(&base)
            .ok()
            .and_then(|u| {
                u.host_str().map(|h| h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()))
            })
            .unwrap_or(false);
        if local {
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(|e| OllamaError::InvalidHost {
            value: address.to_owned(),
            origin,
            reason: format!("the HTTP client could not be built: {e}"),
        })?;
        Ok(OllamaClient { base, timeout, http })
    }

    /// The base URL, e.g. `http://127.0.0.1:11434`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends one chat request and returns the complete answer.
    pub async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, OllamaError> {
        let url = format!("{}/api/chat", self.base);
        let response = self.http.post(&url).json(request).send().await.map_err(|e| self.transport(&url, e))?;
        let body = self.read(&url, response, Some(&request.model)).await?;
        serde_json::from_str(&body).map_err(|e| malformed(&url, e, &body))
    }

    /// The names of the models the server has (`GET /api/tags`).
    pub async fn list_models(&self) -> Result<Vec<String>, OllamaError> {
        let url = format!("{}/api/tags", self.base);
        let response = self.http.get(&url).send().await.map_err(|e| self.transport(&url, e))?;
        let body = self.read(&url, response, None).await?;
        let tags: TagsResponse = serde_json::from_str(&body).map_err(|e| malformed(&url, e, &body))?;
        Ok(tags.models.into_iter().map(|m| m.name).collect())
    }

    /// The body of a 2xx answer, or the status error of another.
    async fn read(&self, url: &str, response: reqwest::Response, model: Option<&str>) -> Result<String, OllamaError> {
        let status = response.status();
        let body = response.text().await.map_err(|e| self.transport(url, e))?;
        if status.is_success() {
            return Ok(body);
        }
        #[derive(Deserialize)]
        struct ErrorBody {
            error: String,
        }
        let message = match serde_json::from_str::<ErrorBody>(&body) {
            Ok(parsed) => parsed.error,
            Err(_) if body.trim().is_empty() => status.canonical_reason().unwrap_or("no body").to_owned(),
            Err(_) => start_of(&body),
        };
        Err(OllamaError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
            message,
            model: model.map(str::to_owned),
        })
    }

    fn transport(&self, url: &str, error: reqwest::Error) -> OllamaError {
        let url = url.to_owned();
        // reqwest's Display stops at the outermost layer; the causes say what actually happened.
        let mut detail = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            detail = format!("{detail}: {cause}");
            source = cause.source();
        }
        if error.is_timeout() {
            OllamaError::Timeout { url, timeout: self.timeout }
        } else if error.is_connect() {
            OllamaError::Connect { url, detail }
        } else {
            OllamaError::Transport { url, detail }
        }
    }
}

fn malformed(url: &str, error: serde_json::Error, body: &str) -> OllamaError {
    OllamaError::Malformed { url: url.to_owned(), detail: error.to_string(), body_start: start_of(body) }
}

/// The first 200 characters of `body`, for messages.
fn start_of(body: &str) -> String {
    body.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crystallize_tests::fake_ollama::{Behaviour, FakeOllama, DEFAULT_MODELS};

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime").block_on(future)
    }

    fn request(model: &str, seed: u64) -> ChatRequest {
        let messages = vec![ChatMessage::user("What is 1 + 2?\nA) 3\nB) 4\nC) 5\nD) 6")];
        ChatRequest::new(model, messages, ChatOptions { seed: Some(seed), temperature: Some(0.7) })
    }

    #[test]
    fn addresses_as_ollama_accepts_them() {
        assert_eq!(base_url("127.0.0.1:11434", "t").expect("valid"), "http://127.0.0.1:11434");
        assert_eq!(base_url("localhost", "t").expect("valid"), "http://localhost:11434");
        assert_eq!(base_url("http://h:1/", "t").expect("valid"), "http://h:1");
        if cfg!(feature = "rustls") {
            assert_eq!(base_url("https://ollama.example", "t").expect("valid"), "https://ollama.example");
        } else {
            let error = base_url("https://ollama.example", "t").expect_err("no TLS in this build");
            assert!(error.to_string().contains("--features rustls"), "{error}");
        }
        let error = base_url("ftp://h", "OLLAMA_HOST").expect_err("not http");
        assert!(error.to_string().contains("OLLAMA_HOST") && error.to_string().contains("ftp"), "{error}");
        assert!(base_url("  ", "t").is_err());
    }

    #[test]
    fn same_request_same_reply_and_models_listed() {
        let server = FakeOllama::start(Behaviour::default());
        let client = OllamaClient::new(&server.url(), "test", Duration::from_secs(5)).expect("client");
        let (a, b, other, models) = block_on(async {
            let a = client.chat(&request("llama3:8b", 1)).await.expect("first reply");
            let b = client.chat(&request("llama3:8b", 1)).await.expect("second reply");
            let other = client.chat(&request("llama3:8b", 2)).await.expect("other seed");
            (a, b, other, client.list_models().await.expect("tags"))
        });
        assert_eq!(a, b);
        assert_eq!(a.model, "llama3:8b");
        assert!(a.done && a.eval_count.is_some());
        let _ = other; // A different seed may or may not change a four-way answer; it must parse.
        assert_eq!(models, DEFAULT_MODELS);
        assert_eq!(server.requests(), 4);
        assert_eq!(server.max_in_flight(), 1);
    }

    #[test]
    fn a_500_names_status_and_url_and_is_retryable_and_a_retry_can_pass() {
        let server = FakeOllama::start(Behaviour::default().failure_rate(0.5));
        let client = OllamaClient::new(&server.url(), "test", Duration::from_secs(5)).expect("client");
        // Bounded: with rate 0.5 some of 40 attempts fail and some pass (fixed by the hash).
        let results: Vec<_> = block_on(async {
            let mut results = Vec::new();
            for _ in 0..40 {
                results.push(client.chat(&request("llama3:8b", 7)).await);
            }
            results
        });
        let error = results.iter().find_map(|r| r.as_ref().err()).expect("some request failed");
        let text = error.to_string();
        assert!(text.contains("HTTP 500") && text.contains(&format!("{}/api/chat", server.url())), "{text}");
        assert!(error.is_retryable());
        assert!(results.iter().any(Result::is_ok), "the same request succeeded on some attempt");
    }

    #[test]
    fn malformed_hanging_and_absent_servers() {
        let server = FakeOllama::start(Behaviour::default().malformed_rate(1.0).hang_model("slow-model"));
        let client = OllamaClient::new(&server.url(), "test", Duration::from_millis(300)).expect("client");
        let (malformed, hung) = block_on(async {
            (client.chat(&request("llama3:8b", 1)).await, client.chat(&request("slow-model", 1)).await)
        });
        let malformed = malformed.expect_err("malformed body");
        assert!(matches!(malformed, OllamaError::Malformed { .. }) && !malformed.is_retryable(), "{malformed}");
        let hung = hung.expect_err("hanging model");
        assert!(matches!(hung, OllamaError::Timeout { .. }) && hung.is_retryable(), "{hung}");
        assert!(hung.to_string().contains(&server.url()), "{hung}");

        let url = server.url();
        drop(server);
        let client = OllamaClient::new(&url, "test", Duration::from_secs(2)).expect("client");
        let gone = block_on(client.chat(&request("llama3:8b", 1))).expect_err("server stopped");
        assert!(matches!(gone, OllamaError::Connect { .. }) && gone.to_string().contains(&url), "{gone}");
    }

    #[test]
    fn concurrent_requests_are_seen_in_flight_together() {
        let server = FakeOllama::start(Behaviour::default().latency(Duration::from_millis(200)));
        let client = OllamaClient::new(&server.url(), "test", Duration::from_secs(5)).expect("client");
        block_on(async {
            let tasks: Vec<_> = (0..3)
                .map(|seed| {
                    let client = client.clone();
                    tokio::spawn(async move { client.chat(&request("llama3:8b", seed)).await })
                })
                .collect();
            for task in tasks {
                task.await.expect("task").expect("reply");
            }
        });
        assert_eq!(server.max_in_flight(), 3);
        assert_eq!(server.in_flight(), 0);
    }
}
