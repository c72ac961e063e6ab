//! End-to-end tests of the views of a stored run of the `social_deception` example: `export`
//! read back by Python's `csv` module, `report --html` and `run --html` (file, thinning, bad
//! paths), and `view`, the local web server. The browser tests (real headless Chromium) are in
//! tests/e2e/browser.rs.

use std::collections::BTreeMap;
use std::process::Stdio;

use crystallize_tests::Store;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_social_deception");

/// `(condition, replicate) -> (seed, status, metric -> value)`.
type Units = BTreeMap<(String, u64), (u64, String, BTreeMap<String, f64>)>;

/// The units of a `report --json`.
fn units_of_report(report: &Value) -> Units {
    let mut units = Units::new();
    for unit in report["units"].as_array().expect("units in report --json") {
        let metrics = unit["metrics"]
            .as_object()
            .expect("metrics")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_f64().expect("a number")))
            .collect();
        let key =
            (unit["condition"].as_str().expect("condition").to_owned(), unit["replicate"].as_u64().expect("replicate"));
        units.insert(
            key,
            (unit["seed"].as_u64().expect("seed"), unit["status"].as_str().expect("status").into(), metrics),
        );
    }
    units
}

/// Reads a CSV file with Python's `csv` module (a reader pandas users trust) and returns its
/// rows as JSON objects keyed by the header.
fn python_csv_rows(path: &std::path::Path) -> Vec<BTreeMap<String, String>> {
    let script = "import csv, json, sys\nwith open(sys.argv[1], newline='') as f:\n    print(json.dumps(list(csv.DictReader(f))))";
    let output = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("python3 is needed to read the CSV back (install python3): {error}"));
    assert!(output.status.success(), "python3 failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("python printed JSON")
}

#[test]
fn export_csv_read_by_python_gives_exactly_the_units_and_metrics_of_report_json() {
    let store = new_store();
    store.run(&["run", "--replicates", "4", "--treatment", "dolphin"]).assert_code(0);
    let id = store.run_ids().pop().expect("a run");
    let report = store.run(&["report", &id, "--json"]);
    report.assert_code(0);
    let expected = units_of_report(&report.json());
    assert_eq!(expected.len(), 8, "2 conditions x 4 replicates");

    let csv = store.path().join("out.csv");
    let out = store.run(&["export", &id, "--csv", csv.to_str().expect("utf-8 path")]);
    out.assert_code(0);
    let rows = python_csv_rows(&csv);
    let mut found = Units::new();
    for row in &rows {
        assert_eq!(row["run"], id);
        assert_eq!(row["experiment"], "social_deception");
        let key = (row["condition"].clone(), row["replicate"].parse::<u64>().expect("replicate"));
        let entry = found
            .entry(key)
            .or_insert_with(|| (row["seed"].parse().expect("seed"), row["status"].clone(), BTreeMap::new()));
        assert_eq!(entry.0.to_string(), row["seed"], "one seed per unit");
        let value: f64 = row["value"].parse().expect("value");
        assert!(entry.2.insert(row["metric"].clone(), value).is_none(), "one row per unit and metric: {row:?}");
    }
    assert_eq!(found, expected, "the CSV holds exactly the units and metrics of report --json");

    // JSON Lines to stdout: the same rows.
    let out = store.run(&["export", &id, "--jsonl", "-"]);
    out.assert_code(0);
    let lines = out.json_lines();
    out.check_eq(lines.len(), rows.len(), "as many JSON lines as CSV rows");
}

#[test]
fn export_refuses_an_unknown_run_and_an_unwritable_path() {
    let store = new_store();
    store.run(&["run", "--replicates", "2"]).assert_code(0);
    let id = store.run_ids().pop().expect("a run");
    store.run(&["export", "nope", "--csv", "-"]).assert_code(2).assert_stderr_contains("no run 'nope'");
    let out = store.run(&["export", &id, "--csv", "/nonexistent-dir/x.csv"]);
    out.assert_code(2).assert_stderr_contains("the directory /nonexistent-dir does not exist");
    store.run(&["export", &id]).assert_code(2).assert_stderr_contains("--csv");
}

/// Every `data-NAME="..."` value in `html` of an element whose class is `class`.
fn attributes(html: &str, class: &str, name: &str) -> Vec<String> {
    let mut found = Vec::new();
    let has_class = |piece: &str| {
        piece
            .split_once("class=\"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .is_some_and(|(classes, _)| classes.split(' ').any(|c| c == class))
    };
    for piece in html.split('<').filter(|p| has_class(p)) {
        let key = format!("{name}=\"");
        if let Some(start) = piece.find(&key) {
            let rest = &piece[start + key.len()..];
            found.push(rest[..rest.find('"').expect("closing quote")].to_owned());
        }
    }
    found
}

#[test]
fn report_html_is_one_self_contained_file_with_every_replicate_and_hypothesis() {
    let store = new_store();
    store.run(&["run", "--replicates", "6"]).assert_code(0);
    let id = store.run_ids().pop().expect("a run");
    let path = store.path().join("report.html");
    let out = store.run(&[
        "report",
        &id,
        "--html",
        path.to_str().expect("utf-8"),
        "--hypothesis",
        "dolphin_spoilers.win > baseline.win",
    ]);
    out.assert_code(0).assert_stderr_contains("wrote the HTML report to");
    out.check(out.stdout.is_empty(), "--html prints no table");
    let html = std::fs::read_to_string(&path).expect("the report file");
    assert!(html.starts_with("<!DOCTYPE html>"), "an HTML document");
    for outside in ["<script", "src=", "href=\"http", "url(", "@import"] {
        assert!(!html.contains(outside), "the report must not load anything: found {outside}");
    }
    // Three metrics, three conditions: every strip has all 6 replicates.
    let points = attributes(&html, "condition", "data-points");
    assert_eq!(points.len(), 9, "{points:?}");
    assert!(points.iter().all(|p| p == "6"), "{points:?}");
    let hypotheses = attributes(&html, "hypothesis", "data-hypothesis");
    assert_eq!(
        hypotheses,
        ["dolphin.win &lt; baseline.win", "dolphin_spoilers.win &gt; baseline.win"],
        "escaped in the attribute"
    );
    for section in ["id=\"configuration\"", "id=\"reproducibility\"", "id=\"failures\"", "id=\"paired\""] {
        assert!(html.contains(section), "{section} missing");
    }
    assert!(html.contains(&id), "the run id is on the page");
    assert!(!html.contains("id=\"thinned\""), "nothing thinned at 6 replicates");

    // `-` is stdout; an unknown run is exit 2.
    let out = store.run(&["report", &id, "--html", "-"]);
    out.assert_code(0).assert_stdout_contains("<!DOCTYPE html>");
    store.run(&["report", "nope", "--html", "-"]).assert_code(2).assert_stderr_contains("no run 'nope'");
}

#[test]
fn the_report_lists_each_failure_with_a_debug_command_that_reproduces_it() {
    let store = new_store();
    let path = store.path().join("failures.html");
    let out = store.run(&[
        "run",
        "--replicates",
        "4",
        "--treatment",
        "dolphin",
        "--set",
        "crash_on_replicate=2",
        "--html",
        path.to_str().expect("utf-8"),
    ]);
    out.assert_code(1);
    let html = std::fs::read_to_string(&path).expect("the report file");
    let commands: Vec<String> = html
        .split("<tr class=\"failure\">")
        .skip(1)
        .map(|row| {
            let code = &row[row.find("<code>").expect("a command") + 6..];
            code[..code.find("</code>").expect("end")]
                .replace("&#39;", "'")
                .replace("&quot;", "\"")
                .replace("&amp;", "&")
        })
        .collect();
    assert_eq!(commands.len(), 2, "one failure per condition: {commands:?}");
    for command in &commands {
        let words = crystallize_tests::shell_split(command).expect("a shell command");
        assert_eq!(words[0], BIN, "{command}");
        let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
        assert!(args.contains(&"--replicate") && args.contains(&"2"), "{command}");
        // It reproduces the failure: the same panic, matching the stored unit, exit code 1.
        let out = store.run(&args);
        out.assert_code(1).assert_stdout_contains("FAILED after");
        out.assert_stdout_contains("simulated crash in replicate 2").assert_stdout_contains("matches the stored unit");
    }
}

#[test]
fn the_report_of_a_confirmation_shows_its_preregistration_and_integrity() {
    let store = new_store();
    store.run(&["run", "--replicates", "8"]).assert_code(0);
    let out = store.run(&[
        "confirm",
        "social_deception",
        "dolphin_spoilers.win > baseline.win",
        "--replicates",
        "10",
        "--json",
    ]);
    out.assert_code(0);
    let id = out.str_at(&out.json(), "/run").to_owned();
    let out = store.run(&["report", &id, "--html", "-"]);
    out.assert_code(0);
    let html = &out.stdout;
    let confirmation = &html[html.find("<section id=\"confirmation\">").expect("a confirmation section")..];
    let confirmation = &confirmation[..confirmation.find("</section>").expect("its end")];
    for expected in
        ["Pre-registration", "dolphin_spoilers.win &gt; baseline.win", "Integrity: <span class=\"ok\">VALID</span>"]
    {
        assert!(confirmation.contains(expected), "{expected} missing in {confirmation}");
    }
    for check in ["preregistered", "code", "fresh", "n"] {
        assert!(
            confirmation.contains(&format!("<tr><td>{check}</td><td class=\"ok\">")),
            "check {check} passed: {confirmation}"
        );
    }
    assert!(html.contains("(pre-registered)"), "the registered hypothesis is marked");
}

#[test]
fn run_html_refuses_an_unwritable_path_before_any_unit_runs() {
    let store = new_store();
    let out = store.run(&["run", "--replicates", "2", "--html", "/nonexistent-dir/r.html"]);
    out.assert_code(2).assert_stderr_contains(
        "invalid --html /nonexistent-dir/r.html: the directory /nonexistent-dir does not exist",
    );
    out.check(store.run_ids().is_empty(), "no run was created");
    let dir = store.path().to_str().expect("utf-8").to_owned();
    store.run(&["run", "--replicates", "2", "--html", &dir]).assert_code(2).assert_stderr_contains("it is a directory");
    store.run(&["run", "--replicates", "2", "--html", "-"]).assert_code(2).assert_stderr_contains("give a file");
    assert!(store.run_ids().is_empty(), "still no run");
}

#[test]
fn a_run_with_more_points_than_the_limit_is_thinned_says_so_and_stays_small() {
    let store = new_store();
    let path = store.path().join("big.html");
    let out =
        store.run(&["run", "--replicates", "2100", "--treatment", "dolphin", "--html", path.to_str().expect("utf-8")]);
    out.assert_code(0);
    let html = std::fs::read_to_string(&path).expect("the report file");
    assert!(html.contains("id=\"thinned\""), "the page says it thinned");
    assert!(html.contains("more than 2000 values"), "and names the limit");
    let points = attributes(&html, "condition", "data-points");
    let values = attributes(&html, "condition", "data-values");
    assert!(points.iter().all(|p| p == "2000") && values.iter().all(|v| v == "2100"), "{points:?} {values:?}");
    assert!(html.len() < 5_000_000, "{} bytes", html.len());
}

#[test]
fn view_refuses_a_missing_store_an_unknown_run_and_a_port_in_use() {
    let store = new_store();
    let missing = store.path().join("no-such-store");
    let out = store.run(&["view", "--port", "0", "--store", missing.to_str().expect("utf-8")]);
    out.assert_code(2).assert_stderr_contains("there is no store at");
    out.assert_stderr_contains("no-such-store");

    store.run(&["run", "--replicates", "2"]).assert_code(0);
    store.run(&["view", "nope", "--port", "0"]).assert_code(2).assert_stderr_contains("no run 'nope'");

    // A port someone else holds: the error names it and suggests another.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = taken.local_addr().expect("its address").port().to_string();
    let out = store.run(&["view", "--port", &port]);
    out.assert_code(2).assert_stderr_contains(&format!("port {port} on 127.0.0.1 is in use"));
    out.assert_stderr_contains("--port 0 to pick a free one");
}

/// An empty store for the example.
fn new_store() -> Store {
    Store::new(BIN)
}
