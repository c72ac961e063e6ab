//! `view [RUN] [--port N]`: a local, read-only web server over the store, on 127.0.0.1. Pages:
//! the runs with their status (`/`), a run's HTML report (`/runs/ID`, the page of
//! [`crate::html`]; for a run in progress it follows the run live), two runs compared
//! (`/compare?a=ID&b=ID`: metrics side by side and the output of `diff RUN_A RUN_B`), and JSON
//! (`/api/runs`, `/api/runs/ID`: what `watch` shows). Every route is a GET: nothing writes.
//!
//! Each request reads the store again, so a page always shows the files as they are; the work is
//! done on tokio's blocking threads (a report of many units takes a moment).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use clap::Args;
use serde_json::{json, Value};

use super::StoreArgs;
use crate::error::Error;
use crate::html::{escape, page, Extras};
use crate::report::Report;
use crate::store::events::Logged;
use crate::store::{Listing, RunDir, Status, Store};
use crate::summary::{self, interval_text, number};

/// The port `view` listens on when `--port` is not given.
pub(super) const DEFAULT_PORT: u16 = 8737;

#[derive(Args, Debug)]
pub(super) struct ViewArgs {
    /// Open at this run's page (a unique prefix is enough); default: the list of runs.
    run: Option<String>,
    /// The port on 127.0.0.1; 0 picks a free one. The URL is printed on stdout.
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
    #[command(flatten)]
    store: StoreArgs,
}

struct Viewer {
    root: PathBuf,
    program: String,
}

impl Viewer {
    fn store(&self) -> Store {
        Store::locate(Some(&self.root))
    }
}

pub(super) fn view(args: &ViewArgs, program: &str) -> Result<ExitCode, Error> {
    let store = Store::locate(args.store.store.as_deref());
    if !store.root().is_dir() {
        return Err(Error::Store(format!(
            "there is no store at {}: run an experiment first (it creates one), or name a store with --store DIR \
             or CRYSTALLIZE_STORE",
            store.root().display()
        )));
    }
    // The store must be readable, and a named run must exist, before anything listens.
    store.list()?;
    let start = match &args.run {
        Some(id) => format!("runs/{}", store.run(id)?.manifest.run),
        None => String::new(),
    };
    let listener = std::net::TcpListener::bind(("127.0.0.1", args.port)).map_err(|error| {
        let why = if error.kind() == std::io::ErrorKind::AddrInUse {
            format!(
                "port {} on 127.0.0.1 is in use (another view, or another server); try --port {}, or --port 0 to pick a free one",
                args.port,
                args.port.checked_add(1).unwrap_or(DEFAULT_PORT)
            )
        } else {
            format!("cannot listen on 127.0.0.1:{}: {error}; try --port 0 to pick a free one", args.port)
        };
        Error::BadOption { option: "--port".into(), value: args.port.to_string(), why }
    })?;
    let address = listener.local_addr().map_err(|e| Error::Store(format!("cannot read the listening address: {e}")))?;
    listener.set_nonblocking(true).map_err(|e| Error::Store(format!("cannot set up the listener: {e}")))?;
    let absolute = std::fs::canonicalize(store.root()).unwrap_or_else(|_| store.root().to_owned());
    let viewer = Arc::new(Viewer { root: absolute.clone(), program: program.to_owned() });
    let app = Router::new()
        .route("/", get(list_page))
        .route("/runs/{id}", get(run_page))
        .route("/compare", get(compare_page))
        .route("/api/runs", get(list_json))
        .route("/api/runs/{id}", get(run_json))
        // Browsers ask for one; an empty answer keeps a 404 out of their consoles.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .fallback(not_found)
        .with_state(viewer);
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "http://{address}/{start}");
        let _ = out.flush();
    }
    eprintln!("viewing the store {} (read-only); press Ctrl-C to stop", absolute.display());
    let served = crate::async_runtime::block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        axum::serve(listener, app).await
    });
    match served {
        Some(Ok(())) => Ok(ExitCode::SUCCESS),
        Some(Err(error)) => Err(Error::Store(format!("the viewer stopped: {error}"))),
        None => Err(Error::Store("cannot start the async runtime for the viewer".into())),
    }
}

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, Response> {
    tokio::task::spawn_blocking(work).await.map_err(|error| {
        (StatusCode::INTERNAL_SERVER_ERROR, Html(page("error", &format!("<p>{}</p>", escape(&error.to_string())))))
            .into_response()
    })
}

fn nav() -> String {
    "<nav><a href=\"/\">\u{2190} all runs</a></nav>".into()
}

fn error_page(status: StatusCode, error: &str) -> Response {
    let body = format!("{}<h1>{}</h1><pre>{}</pre>", nav(), status.as_u16(), escape(error));
    (status, Html(page(&format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or("")), &body)))
        .into_response()
}

async fn not_found() -> Response {
    error_page(StatusCode::NOT_FOUND, "no such page; the pages are /, /runs/ID, /compare?a=ID&b=ID, /api/runs")
}

/// The 404 page of a run that is not in the store, naming the runs there are.
fn unknown_run(error: &Error) -> Response {
    error_page(StatusCode::NOT_FOUND, &error.to_string())
}

fn status_word(status: &Status) -> &'static str {
    match status {
        Status::Complete => "complete",
        Status::Failed => "failed",
        Status::Incomplete => "incomplete",
        Status::Decided => "decided",
        Status::Damaged => "damaged",
    }
}

async fn list_page(State(viewer): State<Arc<Viewer>>) -> Response {
    let result = blocking(move || {
        let store = viewer.store();
        let Listing { runs, damaged } = match store.list() {
            Ok(listing) => listing,
            Err(error) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
        };
        let mut body = format!(
            "<h1>Runs</h1><p class=\"headline mono\">{}</p><table id=\"runs\"><tr><th>run</th><th>experiment</th><th>created</th><th>done</th><th>failed</th><th>status</th></tr>",
            escape(&store.root().display().to_string())
        );
        // Newest first: the run someone is looking for is usually the last one.
        for run in runs.iter().rev() {
            let state = run.state();
            let status = state.status();
            let _ = write!(
                body,
                "<tr class=\"run\" data-run=\"{id}\"><td class=\"nowrap\"><a href=\"/runs/{id}\">{id}</a></td><td>{}</td><td class=\"nowrap\">{}</td><td class=\"n\">{}/{}</td><td class=\"n\">{}</td><td><span class=\"status {}\">{}</span></td></tr>",
                escape(&run.manifest.experiment),
                escape(&run.manifest.created),
                state.done(),
                state.planned(),
                state.failed(),
                status_word(&status),
                status,
                id = escape(&run.manifest.run)
            );
        }
        for run in &damaged {
            let _ = write!(
                body,
                "<tr class=\"run damaged\"><td>{}</td><td colspan=\"4\">{}</td><td><span class=\"status failed\">damaged</span></td></tr>",
                escape(&run.id),
                escape(&run.reason)
            );
        }
        body.push_str("</table>");
        if runs.is_empty() && damaged.is_empty() {
            body.push_str("<p>No runs yet: <code>run</code> an experiment and reload.</p>");
        }
        if runs.len() >= 2 {
            // A is the second newest, B the newest: "what changed since the last run".
            let options = |selected: usize| -> String {
                runs.iter()
                    .rev()
                    .enumerate()
                    .map(|(i, r)| {
                        let mark = if i == selected { " selected" } else { "" };
                        format!("<option{mark}>{}</option>", escape(&r.manifest.run))
                    })
                    .collect()
            };
            let _ = write!(
                body,
                "<h2>Compare two runs</h2><form action=\"/compare\" method=\"get\"><label>A <select name=\"a\">{}</select></label> <label>B <select name=\"b\">{}</select></label> <button type=\"submit\">compare</button></form>",
                options(1),
                options(0)
            );
        }
        Html(page("runs", &body)).into_response()
    })
    .await;
    result.unwrap_or_else(|response| response)
}

/// What the live part of a run's page and `/api/runs/ID` show: units done per condition, the
/// status and the latest events (what `watch` shows).
fn live_json(run: &RunDir) -> Value {
    let state = run.state();
    let mut per_condition: BTreeMap<&str, usize> = state.conditions.iter().map(|c| (c.as_str(), 0)).collect();
    for ((index, _), unit) in &state.units {
        if unit.is_ok() {
            if let Some(condition) = state.conditions.get(*index) {
                *per_condition.entry(condition.as_str()).or_default() += 1;
            }
        }
    }
    let loaded = crate::store::events::read_all(run.path());
    let latest: Vec<Value> = loaded
        .lines
        .iter()
        .rev()
        .filter_map(|line| match line {
            Logged::Event { condition, replicate, name, payload, .. } => {
                Some(json!({"condition": condition, "replicate": replicate, "name": name, "payload": payload}))
            }
            _ => None,
        })
        .take(5)
        .collect();
    json!({
        "run": run.manifest.run,
        "experiment": run.manifest.experiment,
        "status": status_word(&state.status()),
        "done": state.done(),
        "planned": state.planned(),
        "failed": state.failed(),
        "conditions": per_condition,
        "events": latest,
    })
}

/// The live box and its script, for a run that is not complete: it polls `/api/runs/ID` every
/// second, updates the counts and events in place, and reloads the report when units finished.
fn live_parts(run: &RunDir, live: &Value) -> Extras {
    let events: String = live["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .map(|e| {
                    format!(
                        "<li>{} #{} {} {}</li>",
                        escape(e["condition"].as_str().unwrap_or("")),
                        e["replicate"],
                        escape(e["name"].as_str().unwrap_or("")),
                        escape(&e["payload"].to_string())
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let nav = format!(
        "{}<div class=\"note\" id=\"live\">live: <span id=\"live-done\">{}</span> of <span id=\"live-planned\">{}</span> units done, <span id=\"live-failed\">{}</span> failed; <span id=\"live-status\">{}</span>. The report below reloads as units finish. Latest events:<ul id=\"live-events\" class=\"mono\">{events}</ul></div>",
        nav(),
        live["done"],
        live["planned"],
        live["failed"],
        live["status"].as_str().unwrap_or("incomplete")
    );
    // The run id goes into the script as a JSON string (escaped for a <script> element).
    let id_json = serde_json::to_string(&run.manifest.run).unwrap_or_default().replace('<', "\\u003c");
    let tail = format!(
        r#"<script>
(function () {{
  var id = {id_json}, shown = {done}, reloading = false;
  function text(id, value) {{ document.getElementById(id).textContent = value; }}
  function poll() {{
    fetch('/api/runs/' + encodeURIComponent(id), {{ cache: 'no-store' }})
      .then(function (r) {{ return r.json(); }})
      .then(function (s) {{
        text('live-done', s.done); text('live-planned', s.planned); text('live-failed', s.failed); text('live-status', s.status);
        var list = document.getElementById('live-events');
        list.textContent = '';
        s.events.forEach(function (e) {{
          var li = document.createElement('li');
          li.textContent = e.condition + ' #' + e.replicate + ' ' + e.name + ' ' + JSON.stringify(e.payload);
          list.appendChild(li);
        }});
        if ((s.done !== shown || s.status !== 'incomplete') && !reloading) {{ reloading = true; location.reload(); return; }}
        setTimeout(poll, 1000);
      }})
      .catch(function () {{ setTimeout(poll, 2000); }});
  }}
  setTimeout(poll, 1000);
}})();
</script>"#,
        done = live["done"]
    );
    Extras { nav, tail }
}

async fn run_page(State(viewer): State<Arc<Viewer>>, Path(id): Path<String>) -> Response {
    let result = blocking(move || {
        let store = viewer.store();
        let run = match store.run(&id) {
            Ok(run) => run,
            Err(error) => return unknown_run(&error),
        };
        let report = Report::from_store(&store, &run, &[]);
        // Only a run with units left is followed live (and only then are its events read).
        let extras = if report.skipped > 0 {
            live_parts(&run, &live_json(&run))
        } else {
            Extras { nav: nav(), tail: String::new() }
        };
        Html(crate::html::render(&report, &run, &viewer.program, &extras)).into_response()
    })
    .await;
    result.unwrap_or_else(|response| response)
}

async fn run_json(State(viewer): State<Arc<Viewer>>, Path(id): Path<String>) -> Response {
    let result = blocking(move || {
        let store = viewer.store();
        match store.run(&id) {
            Ok(run) => json_response(StatusCode::OK, &live_json(&run)),
            Err(error) => json_response(StatusCode::NOT_FOUND, &json!({"error": error.to_string()})),
        }
    })
    .await;
    result.unwrap_or_else(|response| response)
}

async fn list_json(State(viewer): State<Arc<Viewer>>) -> Response {
    let result = blocking(move || {
        let store = viewer.store();
        match store.list() {
            Ok(Listing { runs, damaged }) => {
                // The same rows as `runs --json`.
                let list: Vec<Value> = runs
                    .iter()
                    .map(|run| super::inspect::run_json(run, &run.scan()))
                    .chain(damaged.iter().map(super::inspect::damaged_json))
                    .collect();
                json_response(StatusCode::OK, &Value::Array(list))
            }
            Err(error) => json_response(StatusCode::INTERNAL_SERVER_ERROR, &json!({"error": error.to_string()})),
        }
    })
    .await;
    result.unwrap_or_else(|response| response)
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

async fn compare_page(State(viewer): State<Arc<Viewer>>, Query(query): Query<HashMap<String, String>>) -> Response {
    let result = blocking(move || {
        let (Some(a), Some(b)) = (query.get("a"), query.get("b")) else {
            return error_page(StatusCode::BAD_REQUEST, "compare two runs: /compare?a=RUN_A&b=RUN_B");
        };
        let store = viewer.store();
        let (run_a, run_b) = match (store.run(a), store.run(b)) {
            (Ok(x), Ok(y)) => (x, y),
            (Err(error), _) | (_, Err(error)) => return unknown_run(&error),
        };
        let summarize = |run: &crate::store::RunDir| {
            let (state, units) = run.unit_table();
            summary::summarize_table(&state.conditions, &units)
        };
        let (summary_a, summary_b) = (summarize(&run_a), summarize(&run_b));
        let (ia, ib) = (escape(&run_a.manifest.run), escape(&run_b.manifest.run));
        let mut body = format!(
            "{}<h1>Two runs compared</h1><p class=\"mono\">A: <a href=\"/runs/{ia}\">{ia}</a><br>B: <a href=\"/runs/{ib}\">{ib}</a></p><h2>Metrics side by side</h2><table id=\"compare\"><tr><th>condition</th><th>metric</th><th>A n</th><th>A mean</th><th>A 95% CI</th><th>B n</th><th>B mean</th><th>B 95% CI</th></tr>",
            nav()
        );
        let mut keys: Vec<(String, String)> = Vec::new();
        for s in summary_a.iter().chain(&summary_b) {
            for (metric, _) in &s.metrics {
                let key = (s.condition.clone(), metric.clone());
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
        let find_summary = |summaries: &[summary::ConditionSummary], c: &str, m: &str| {
            summaries.iter().find(|s| s.condition == c).and_then(|s| s.metrics.iter().find(|(n, _)| n == m)).map(|(_, x)| x.clone())
        };
        let cells = |s: Option<summary::MetricSummary>| match s {
            Some(s) => format!(
                "<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>",
                s.n,
                number(s.mean),
                s.ci.as_ref().map(interval_text).unwrap_or_else(|| "-".into())
            ),
            None => "<td class=\"n\">-</td><td class=\"n\">-</td><td class=\"n\">-</td>".into(),
        };
        for (condition, metric) in &keys {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td>{}{}</tr>",
                escape(condition),
                escape(metric),
                cells(find_summary(&summary_a, condition, metric)),
                cells(find_summary(&summary_b, condition, metric))
            );
        }
        let _ = write!(
            body,
            "</table><h2><code>diff {ia} {ib}</code></h2><pre id=\"diff\">{}</pre>",
            escape(&super::diff::runs_text(&run_a, &run_b))
        );
        Html(page("compare", &body)).into_response()
    })
    .await;
    result.unwrap_or_else(|response| response)
}
