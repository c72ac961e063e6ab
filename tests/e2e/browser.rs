//! Browser tests of the HTML report and the viewer, in Debian's real headless Chromium driven over
//! the DevTools protocol (`headless_chrome`): the report of a stored run of the example renders
//! with no console error and no network request, every condition's strip has exactly as many
//! points as the run has replicates, the forest plot shows each hypothesis; the viewer lists the
//! runs, opens one, answers an unknown run with its 404 page, compares two runs, and follows a run
//! in progress as it advances.
//!
//! Chromium must be installed (`cargo xtask test` installs Debian's `chromium` when missing):
//! without it these tests fail and say so, they do not skip.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crystallize_tests::{Store, TempDir};
use headless_chrome::browser::tab::Tab;
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::protocol::cdp::Network;
use headless_chrome::{Browser, LaunchOptions};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_social_deception");

/// Where Debian's package puts the browser.
fn chromium() -> PathBuf {
    for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!("Chromium is not installed: `apt-get install chromium` (cargo xtask test installs it when missing)");
}

/// A headless Chromium with a fresh profile, and what its pages said and asked for.
struct Chromium {
    browser: Browser,
    _profile: TempDir,
}

/// What one tab saw: console errors and exceptions, and every URL it requested.
#[derive(Default)]
struct Seen {
    errors: Vec<String>,
    requests: Vec<String>,
}

impl Chromium {
    fn start() -> Chromium {
        let profile = TempDir::new();
        let args: Vec<&OsStr> = [
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ]
        .iter()
        .map(OsStr::new)
        .collect();
        let options = LaunchOptions::default_builder()
            .path(Some(chromium()))
            .headless(true)
            .sandbox(false)
            .user_data_dir(Some(profile.path().to_owned()))
            .window_size(Some((1100, 1400)))
            .args(args)
            // A loaded machine can be slow; the browser must not be closed as idle meanwhile.
            .idle_browser_timeout(Duration::from_secs(600))
            .build()
            .expect("launch options");
        let browser = Browser::new(options).unwrap_or_else(|error| panic!("cannot start Chromium: {error}"));
        Chromium { browser, _profile: profile }
    }

    /// A new tab that records console errors, exceptions and requests into `seen`.
    fn tab(&self, seen: &Arc<Mutex<Seen>>) -> Arc<Tab> {
        let tab = self.browser.new_tab().expect("a tab");
        tab.set_default_timeout(Duration::from_secs(60));
        tab.enable_log().expect("Log domain").enable_runtime().expect("Runtime domain");
        tab.call_method(Network::Enable {
            max_total_buffer_size: None,
            max_resource_buffer_size: None,
            max_post_data_size: None,
            report_direct_socket_traffic: None,
            enable_durable_messages: None,
        })
        .expect("Network domain");
        let sink = Arc::clone(seen);
        tab.add_event_listener(Arc::new(move |event: &Event| {
            // (A test that failed while holding the lock poisons it; what it saw is still good.)
            let mut seen = sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            match event {
                Event::RuntimeExceptionThrown(e) => {
                    seen.errors.push(format!("exception: {:?}", e.params.exception_details))
                }
                Event::RuntimeConsoleAPICalled(e)
                    if format!("{:?}", e.params.Type).to_lowercase().contains("error") =>
                {
                    seen.errors.push(format!("console.error: {:?}", e.params.args))
                }
                Event::LogEntryAdded(e) if format!("{:?}", e.params.entry.level).to_lowercase().contains("error") => {
                    seen.errors.push(format!("log: {} ({:?})", e.params.entry.text, e.params.entry.url))
                }
                Event::NetworkRequestWillBeSent(e) => seen.requests.push(e.params.request.url.clone()),
                _ => {}
            }
        }))
        .expect("listener");
        tab
    }
}

/// Evaluates `expression` in `tab` and returns its value as JSON.
fn eval(tab: &Tab, expression: &str) -> Value {
    try_eval(tab, expression).unwrap_or_else(|error| panic!("evaluating {expression}: {error}"))
}

/// [`eval`], or the error (while a page is being replaced, there is no page to ask).
fn try_eval(tab: &Tab, expression: &str) -> Result<Value, String> {
    let wrapped = format!("JSON.stringify((function () {{ return {expression}; }})())");
    let result = tab.evaluate(&wrapped, false).map_err(|error| error.to_string())?;
    let text = result.value.and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_else(|| "null".into());
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Polls `check` until it returns `Some`, for at most `within` (generous: the machine may be
/// loaded); panics with `what` otherwise.
fn wait_for<T>(within: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = check() {
            return found;
        }
        if started.elapsed() > within {
            panic!("waited {within:?} for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

#[test]
fn the_html_report_renders_every_replicate_and_hypothesis_without_errors_or_requests() {
    let store = Store::new(BIN);
    store.run(&["run", "--replicates", "7"]).assert_code(0);
    let id = store.run_ids().pop().expect("a run");
    let path = store.path().join("report.html");
    let extra = "dolphin_spoilers.win > baseline.win";
    store.run(&["report", &id, "--html", path.to_str().expect("utf-8"), "--hypothesis", extra]).assert_code(0);
    let report = store.run(&["report", &id, "--json", "--hypothesis", extra]).json();
    let conditions: Vec<String> = report["conditions"].as_object().expect("conditions").keys().cloned().collect();
    let hypotheses: Vec<Value> =
        report["hypotheses"].as_array().expect("hypotheses").iter().map(|h| h["hypothesis"].clone()).collect();

    let chromium = Chromium::start();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let tab = chromium.tab(&seen);
    let url = file_url(&path);
    tab.navigate_to(&url).expect("navigate").wait_until_navigated().expect("loaded");

    // Every strip plot (one per metric) has a group per condition with one drawn circle per replicate.
    let strips = eval(
        &tab,
        "Array.from(document.querySelectorAll('svg.strip')).map(function (svg) { return { metric: svg.dataset.metric, \
         conditions: Array.from(svg.querySelectorAll('g.condition')).map(function (g) { return [g.dataset.condition, \
         Array.from(g.querySelectorAll('circle.point')).filter(function (c) { var b = c.getBBox(); return b.width > 0; }).length]; }) }; })",
    );
    let strips = strips.as_array().expect("strips");
    assert_eq!(strips.len(), 3, "a strip plot per metric (win, rounds, hallucinations): {strips:?}");
    for strip in strips {
        let drawn: Vec<(String, u64)> = strip["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .map(|pair| (pair[0].as_str().expect("name").to_owned(), pair[1].as_u64().expect("count")))
            .collect();
        let names: Vec<String> = drawn.iter().map(|(name, _)| name.clone()).collect();
        assert_eq!(names, conditions, "every condition in {}", strip["metric"]);
        assert!(drawn.iter().all(|(_, n)| *n == 7), "7 points per condition in {}: {drawn:?}", strip["metric"]);
    }

    // The forest plot has a row per hypothesis with its verdict in words.
    let forest = eval(
        &tab,
        "Array.from(document.querySelectorAll('svg.forest g.hypothesis')).map(function (g) { return [g.dataset.hypothesis, \
         g.querySelector('text.verdict').textContent]; })",
    );
    let rows = forest.as_array().expect("forest rows");
    let shown: Vec<Value> = rows.iter().map(|row| row[0].clone()).collect();
    assert_eq!(shown, hypotheses, "each hypothesis of report --json is in the forest plot");
    for (row, decided) in rows.iter().zip(report["hypotheses"].as_array().expect("hypotheses")) {
        let verdict = decided["verdict"]["kind"].as_str().expect("verdict kind").replace('_', " ");
        assert!(row[1].as_str().expect("text").ends_with(&verdict), "{row:?} shows {verdict}");
    }
    assert_eq!(eval(&tab, "document.querySelectorAll('script').length"), 0, "no script in the static report");

    let seen = seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let others: Vec<&String> = seen.requests.iter().filter(|r| **r != url).collect();
    assert!(others.is_empty(), "the report requested {others:?}");
    assert!(seen.errors.is_empty(), "console errors: {:?}", seen.errors);
}

/// The viewer, running in the background; killed when dropped.
struct Viewer {
    child: Child,
    url: String,
}

impl Viewer {
    fn start(store: &Store) -> Viewer {
        let mut child = store
            .process(&["view", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the viewer");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("the viewer prints its URL");
        let url = line.trim().to_owned();
        assert!(url.starts_with("http://127.0.0.1:"), "printed {url:?}");
        Viewer { child, url }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process killed when dropped.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_viewer_lists_runs_opens_one_compares_two_and_follows_a_run_in_progress() {
    let store = Store::new(BIN);
    store.run(&["run", "--replicates", "3"]).assert_code(0);
    store.run(&["run", "--replicates", "4", "--seed", "9"]).assert_code(0);
    let mut finished = store.run_ids();
    finished.sort();
    assert_eq!(finished.len(), 2);
    let viewer = Viewer::start(&store);
    let chromium = Chromium::start();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let tab = chromium.tab(&seen);

    // The list: both runs with their status; its link opens a run's report.
    tab.navigate_to(&viewer.url).expect("navigate").wait_until_navigated().expect("loaded");
    let listed = eval(&tab, "Array.from(document.querySelectorAll('tr.run')).map(function (r) { return [r.dataset.run, r.querySelector('.status').textContent]; })");
    let mut ids: Vec<String> =
        listed.as_array().expect("rows").iter().map(|r| r[0].as_str().expect("id").to_owned()).collect();
    ids.sort();
    assert_eq!(ids, finished, "{listed}");
    assert!(listed.as_array().expect("rows").iter().all(|r| r[1] == "complete"), "{listed}");
    // The run of 3 replicates (9 units) is the one opened.
    let small = store
        .runs()
        .iter()
        .find(|r| r["units_planned"] == 9)
        .and_then(|r| r["id"].as_str().map(str::to_owned))
        .expect("the run of 3 replicates");
    let link = format!("a[href='/runs/{small}']");
    tab.wait_for_element(&link).expect("a link to the run").click().expect("click");
    wait_for(Duration::from_secs(60), "the run's report", || {
        let strips = try_eval(&tab, "document.querySelectorAll('svg.strip').length").ok()?;
        (strips.as_u64() == Some(3)).then_some(())
    });
    assert!(tab.get_url().ends_with(&format!("/runs/{small}")), "{}", tab.get_url());
    let points = eval(&tab, "document.querySelectorAll('svg.strip g.condition circle.point').length");
    assert_eq!(points.as_u64(), Some(3 * 3 * 3), "3 metrics x 3 conditions x 3 replicates");

    // Two runs compared: metrics side by side and `diff RUN_A RUN_B`.
    tab.navigate_to(&format!("{}compare?a={}&b={}", viewer.url, finished[0], finished[1]))
        .expect("navigate")
        .wait_until_navigated()
        .expect("loaded");
    let diff = eval(&tab, "document.getElementById('diff').textContent");
    let expected = store.run(&["diff", &finished[0], &finished[1]]);
    expected.assert_code(0);
    assert_eq!(diff.as_str().map(str::trim), Some(expected.stdout.trim()), "the page shows `diff RUN_A RUN_B`");
    assert!(eval(&tab, "document.querySelectorAll('#compare tr').length").as_u64() > Some(1));

    // Read-only: nothing answers a write.
    let status = tab
        .evaluate("fetch('/api/runs', { method: 'POST' }).then(function (r) { return r.status; })", true)
        .expect("a POST")
        .value;
    assert_eq!(status, Some(Value::from(405)), "POST is not allowed");
    seen.lock().unwrap_or_else(|p| p.into_inner()).errors.retain(|e| !e.contains("405"));

    // An unknown run: the 404 page, naming the runs there are. (The browser reports the status
    // in its console, as it should: that one message is expected.)
    assert!(seen.lock().expect("lock").errors.is_empty(), "console errors: {:?}", seen.lock().expect("lock").errors);
    tab.navigate_to(&format!("{}runs/nope", viewer.url)).expect("navigate").wait_until_navigated().expect("loaded");
    assert!(tab.get_title().expect("title").starts_with("404"), "{:?}", tab.get_title());
    assert!(tab.get_content().expect("content").contains(&finished[0]), "the 404 page lists the runs");
    seen.lock().expect("lock").errors.retain(|e| !e.contains("404"));

    // A slow run in progress: its page shows it advancing without being reloaded by hand.
    let _slow = Background(
        store
            .process(&["run", "--replicates", "40", "--jobs", "1", "--set", "think_ms=150"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a slow run"),
    );
    let running = wait_for(Duration::from_secs(120), "the slow run to appear in the store", || {
        store.run_ids().into_iter().find(|id| !finished.contains(id))
    });
    tab.navigate_to(&viewer.url).expect("navigate").wait_until_navigated().expect("loaded");
    let status = eval(&tab, &format!("document.querySelector(\"tr.run[data-run='{running}'] .status\").textContent"));
    assert_eq!(status, "incomplete", "the list shows the run in progress");
    tab.navigate_to(&format!("{}runs/{running}", viewer.url))
        .expect("navigate")
        .wait_until_navigated()
        .expect("loaded");
    let number = |tab: &Tab, id: &str| -> Option<u64> {
        // During the page's own reload the element may be missing for a moment.
        let script = format!("document.getElementById('{id}') && document.getElementById('{id}').textContent");
        tab.evaluate(&script, false).ok().and_then(|r| r.value).and_then(|v| v.as_str().and_then(|s| s.parse().ok()))
    };
    let first = wait_for(Duration::from_secs(60), "the live count", || number(&tab, "live-done"));
    let later = wait_for(Duration::from_secs(180), "the live count to advance", || {
        number(&tab, "live-done").filter(|n| *n > first)
    });
    assert!(later > first);
    let planned = wait_for(Duration::from_secs(60), "the planned count", || number(&tab, "live-planned"));
    assert_eq!(planned, 120, "3 conditions x 40 replicates");

    let seen = seen.lock().expect("lock");
    assert!(seen.errors.is_empty(), "console errors: {:?}", seen.errors);
    let outside: Vec<&String> = seen.requests.iter().filter(|r| !r.starts_with(&viewer.url)).collect();
    assert!(outside.is_empty(), "the viewer's pages requested {outside:?}");
}
