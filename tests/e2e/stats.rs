//! End-to-end tests of the statistics a user sees (issue #4): the report's intervals and
//! hypotheses (`run`, `report --hypothesis`, `--json`, `--md`), hypothesis errors (a caret and
//! exit 2 before anything is computed; an unknown metric is exit 1 naming the metrics),
//! `confirm` (pre-registration, fresh replicates, integrity VALID / INVALID / CONFOUNDED) and
//! `plan`. Every test uses its own temporary store.

use std::collections::BTreeMap;
use std::path::Path;

use crystallize_tests::{Output, Store};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_social_deception");

/// An empty store for the example.
fn new_store() -> Store {
    Store::new(BIN)
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(value).expect("json")).expect("write");
}

/// A complete exploratory run of every condition in `store`; its id.
#[track_caller]
fn explore(store: &Store, replicates: &str) -> String {
    let out = store.run(&["run", "--replicates", replicates, "--json"]);
    out.assert_code(0);
    out.str_at(&out.json(), "/run").to_owned()
}

/// Fails unless `store` holds `n` runs.
#[track_caller]
fn check_eq_runs(store: &Store, n: usize) {
    let ids = store.run_ids();
    assert_eq!(ids.len(), n, "runs in the store: {ids:?}");
}

/// `(condition, replicate) -> metric value` of every successful unit of a `--json` report.
fn metric(summary: &Value, name: &str) -> BTreeMap<(String, u64), f64> {
    summary["units"]
        .as_array()
        .expect("units")
        .iter()
        .filter(|u| u["status"] == "ok")
        .map(|u| {
            let key =
                (u["condition"].as_str().expect("condition").to_owned(), u["replicate"].as_u64().expect("replicate"));
            (key, u["metrics"][name].as_f64().expect("metric"))
        })
        .collect()
}

fn mean_of(values: &BTreeMap<(String, u64), f64>, condition: &str) -> f64 {
    let mine: Vec<f64> = values.iter().filter(|((c, _), _)| c == condition).map(|(_, v)| *v).collect();
    mine.iter().sum::<f64>() / mine.len() as f64
}

/// The hypothesis object of a `--json` report with this text.
#[track_caller]
fn hypothesis<'v>(out: &Output, summary: &'v Value, text: &str) -> &'v Value {
    let list = out.at(summary, "/hypotheses").as_array().unwrap_or_else(|| out.fail("hypotheses is not a list"));
    list.iter().find(|h| h["hypothesis"] == text).unwrap_or_else(|| out.fail(format!("no hypothesis '{text}'")))
}

#[test]
fn report_decides_a_hypothesis_with_test_effect_interval_p_and_adjusted_p() {
    let store = new_store();
    let id = explore(&store, "30");
    let out = store.run(&["report", &id, "--hypothesis", "dolphin.win > baseline.win", "--json"]);
    out.assert_code(0);
    let summary = out.json();
    let list = out.at(&summary, "/hypotheses").as_array().expect("list");
    out.check_eq(list.len(), 2, "the declared hypothesis and the one asked for");
    let wins = metric(&summary, "win");
    for text in ["dolphin.win < baseline.win", "dolphin.win > baseline.win"] {
        let h = hypothesis(&out, &summary, text);
        for field in ["hypothesis", "test", "effect", "ci", "p", "p_adjusted", "verdict"] {
            out.check(h.get(field).is_some(), format!("{text}: {field} is missing"));
        }
        out.check_eq(out.str_at(h, "/test"), "paired-permutation", "shared seeds pair the replicates");
        let effect = out.f64_at(h, "/effect");
        let expected = mean_of(&wins, "dolphin") - mean_of(&wins, "baseline");
        out.check((effect - expected).abs() < 1e-12, format!("effect {effect} = difference of means {expected}"));
        let (low, high) = (out.f64_at(h, "/ci/low"), out.f64_at(h, "/ci/high"));
        out.check(low <= effect && effect <= high, format!("{low} <= {effect} <= {high}"));
        out.check_eq(out.f64_at(h, "/ci/level"), 0.95, "95% interval");
        let (p, adjusted) = (out.f64_at(h, "/p"), out.f64_at(h, "/p_adjusted"));
        out.check(p > 0.0 && p <= 1.0 && adjusted >= p && adjusted <= 1.0, format!("p {p}, adjusted {adjusted}"));
        out.check_eq(out.u64_at(h, "/hypotheses_in_run"), 2, "corrected together");
        let kind = out.str_at(h, "/verdict/kind");
        out.check(["supported", "not_supported", "inconclusive", "within_noise"].contains(&kind), kind);
    }
    // Every metric has the 95% t interval of its mean.
    for condition in ["baseline", "dolphin", "dolphin_spoilers"] {
        let at = |field: &str| format!("/conditions/{condition}/win/{field}");
        let (mean, low, high) = (
            out.f64_at(&summary, &at("mean")),
            out.f64_at(&summary, &at("ci/low")),
            out.f64_at(&summary, &at("ci/high")),
        );
        out.check(low < mean && mean < high, format!("{condition}: {low} < {mean} < {high}"));
    }

    // The same as text: a row per hypothesis with its verdict, test and numbers.
    let text = store.run(&["report", &id, "--hypothesis", "dolphin.win > baseline.win"]);
    text.assert_code(0);
    text.assert_stdout_contains("hypotheses (Holm-corrected over 2, alpha 0.05):");
    let row = text
        .stdout
        .lines()
        .find(|l| l.starts_with("dolphin.win > baseline.win  "))
        .unwrap_or_else(|| text.fail("no row"));
    text.check(row.contains("paired-permutation"), "the row names the test");
}

#[test]
fn report_takes_the_test_alpha_correction_and_minimum_effect_and_rejects_bad_ones() {
    let store = new_store();
    let id = explore(&store, "10");
    let asked = "dolphin.win > baseline.win";
    let args = ["report", &id, "--hypothesis", asked, "--test", "welch-t", "--alpha", "0.1", "--correction", "bh"];
    let out = store.run(&[&args[..], &["--min-effect", "0.05", "--json"]].concat());
    out.assert_code(0);
    let summary = out.json();
    for text in ["dolphin.win < baseline.win", asked] {
        let h = hypothesis(&out, &summary, text);
        out.check_eq(out.str_at(h, "/test"), "welch-t", "the test asked for, not the paired default");
        out.check_eq(out.f64_at(h, "/alpha"), 0.1, "alpha");
        out.check_eq(out.f64_at(h, "/ci/level"), 0.9, "a 1 - alpha interval");
        out.check_eq(out.str_at(h, "/correction"), "benjamini_hochberg", "the correction asked for");
        out.check_eq(out.f64_at(h, "/min_effect"), 0.05, "the minimum effect");
    }
    // Without options, the defaults: the paired test, Holm, 95%.
    let plain = store.run(&["report", &id, "--hypothesis", asked, "--json"]);
    let h = hypothesis(&plain, &plain.json(), asked).clone();
    plain.check_eq(plain.str_at(&h, "/test"), "paired-permutation", "default test");
    plain.check_eq(plain.str_at(&h, "/correction"), "holm", "default correction");

    for (bad, expected) in [
        (["--correction", "bonferoni"], "unknown correction 'bonferoni'; corrections: holm, bh"),
        (["--test", "z-test"], "unknown test 'z-test'"),
        (["--alpha", "5"], "not a probability"),
        (["--min-effect", "x"], "not a number of 0 or more"),
    ] {
        let out = store.run(&[&["report", id.as_str()][..], &bad[..]].concat());
        out.assert_code(2).assert_stderr_contains(expected);
    }
}

#[test]
fn run_prints_the_declared_hypothesis_and_report_recomputes_it_in_every_format() {
    let store = new_store();
    let run = store.run(&["run", "--replicates", "12"]);
    run.assert_code(0);
    run.assert_stdout_contains("95% CI");
    let row = run.stdout.lines().find(|l| l.starts_with("dolphin.win < baseline.win  "));
    run.check(row.is_some(), "the declared hypothesis is decided at the end of the run");
    let id = store.run_ids().pop().expect("a run");
    let report = store.run(&["report", &id]);
    report.assert_code(0);
    report.check_eq(report.stdout.as_str(), run.stdout.as_str(), "report prints what run printed");

    let md = store.run(&["run", "--replicates", "12", "--md"]);
    md.assert_code(0);
    md.assert_stdout_contains("| condition | metric | n | mean | sd | 95% CI | min | max |");
    md.assert_stdout_contains("| `dolphin.win < baseline.win` |");
    let second = store.run_ids().pop().expect("a second run");
    let again = store.run(&["report", &second, "--md"]);
    again.assert_code(0);
    again.check_eq(again.stdout.as_str(), md.stdout.as_str(), "report --md == run --md");
    store.run(&["report", &second, "--md", "--json"]).assert_code(2);
}

#[test]
fn bad_hypotheses_exit_2_with_a_caret_and_undeclared_metrics_exit_2_naming_the_declared_ones() {
    let store = new_store();
    let id = explore(&store, "3");

    let out = store.run(&["report", &id, "--hypothesis", "dolphin.win >> baseline.win"]);
    out.assert_code(2);
    out.check(out.stdout.is_empty(), "nothing is printed on stdout");
    let lines = out.stderr_lines();
    let at = lines
        .iter()
        .position(|l| l.trim() == "dolphin.win >> baseline.win")
        .unwrap_or_else(|| out.fail("no text line"));
    let text_column = lines[at].find('d').expect("text");
    let caret_column = lines[at + 1].find('^').unwrap_or_else(|| out.fail("no caret under the text"));
    out.check_eq(caret_column - text_column, "dolphin.win >".len(), "the caret points at the second '>'");
    out.assert_stderr_contains("in --hypothesis");

    let out = store.run(&["report", &id, "--hypothesis", "dolphn.win > baseline.win", "--json"]);
    out.assert_code(2);
    out.assert_stderr_contains("unknown condition 'dolphn'; did you mean 'dolphin'?");
    out.assert_stderr_contains("conditions: baseline, dolphin, dolphin_spoilers");
    out.check(out.stdout.is_empty(), "nothing is printed on stdout");

    // The experiment declares its metrics (it returns a `#[derive(Metrics)]` struct), so a
    // misspelt metric is refused before anything is evaluated, like a misspelt condition.
    let out = store.run(&["report", &id, "--hypothesis", "dolphin.wins > baseline.win", "--json"]);
    out.assert_code(2);
    out.assert_stderr_contains("unknown metric 'wins' of experiment 'social_deception'; did you mean 'win'?");
    out.assert_stderr_contains("declared metrics: win, rounds, hallucinations");
    out.check(out.stdout.is_empty(), "nothing is printed on stdout");

    // The same checks guard `confirm` and `plan` before anything runs.
    for args in [
        &["confirm", "dolphin.win >> baseline.win"][..],
        &["confirm", "dolphn.win > baseline.win", "--replicates", "6"],
        &["plan", "dolphin.win >> baseline.win", "--from", &id],
        &["plan", "dolphin.wn > baseline.win", "--from", &id],
        &["confirm", "dolphin.wn > baseline.win", "--replicates", "6"],
        &["confirm", "dolphin.win > baseline.win", "--alpha", "1.5"],
    ] {
        store.run(args).assert_code(2);
    }
    check_eq_runs(&store, 1);
}

#[test]
fn confirm_preregisters_runs_fresh_replicates_and_is_valid() {
    let store = new_store();
    let exploration = explore(&store, "10");
    let out = store.run(&[
        "confirm",
        "social_deception",
        "dolphin_spoilers.win > baseline.win",
        "--replicates",
        "20",
        "--json",
    ]);
    out.assert_code(0);
    let summary = out.json();
    let id = out.str_at(&summary, "/run").to_owned();
    out.check_eq(out.str_at(&summary, "/integrity/status"), "VALID", "integrity");
    out.check_eq(out.str_at(&summary, "/integrity/summary"), "VALID", "summary");
    let checks = out.at(&summary, "/integrity/checks").as_array().expect("checks");
    let names: Vec<&str> = checks.iter().map(|c| c["check"].as_str().expect("name")).collect();
    out.check_eq(names, vec!["preregistered", "code", "fresh", "n"], "every check");
    out.check(checks.iter().all(|c| c["ok"] == true), "all passed");
    let h = hypothesis(&out, &summary, "dolphin_spoilers.win > baseline.win");
    out.check_eq(&h["preregistered"], &Value::Bool(true), "the pre-registered hypothesis");
    out.check_eq(out.u64_at(h, "/hypotheses_in_run"), 1, "decided on its own");

    // Fresh data: only replicate indices the exploration did not use, and only two conditions.
    let units = summary["units"].as_array().expect("units");
    out.check_eq(units.len(), 40, "2 conditions x 20 replicates");
    for unit in units {
        let replicate = unit["replicate"].as_u64().expect("replicate");
        out.check((10..30).contains(&replicate), format!("replicate {replicate} is fresh"));
    }

    // The pre-registration record, written once in the run directory.
    let record = read_json(&store.run_dir(&id).join("preregistration.json"));
    let manifest = read_json(&store.run_dir(&id).join("manifest.json"));
    assert_eq!(record["hypothesis"], "dolphin_spoilers.win > baseline.win");
    assert_eq!(record["test"], "paired-permutation");
    assert_eq!(record["alpha"], 0.05);
    assert_eq!((record["replicates"].as_u64(), record["first_replicate"].as_u64()), (Some(20), Some(10)));
    assert_eq!(record["fingerprints"], manifest["config"]["fingerprints"]);
    assert_eq!(record["earlier"]["highest"], 9);
    assert_eq!(record["earlier"]["runs"][0]["run"], exploration.as_str());
    assert_eq!(manifest["preregistration"], record["digest"]);
    assert_eq!(manifest["hypotheses"], serde_json::json!(["dolphin_spoilers.win > baseline.win"]));
    assert!(record["registered"].as_str() <= manifest["created"].as_str());

    // `report` recomputes the same report, integrity included.
    let report = store.run(&["report", &id, "--json"]);
    report.assert_code(0);
    report.check_eq(report.json(), summary.clone(), "report --json == confirm --json");
    let text = store.run(&["report", &id]);
    text.assert_stdout_contains("integrity of the confirmation of 'dolphin_spoilers.win > baseline.win': VALID");
    text.assert_stdout_contains("(pre-registered)");
    // More hypotheses later are exploratory: corrected among themselves, never with the
    // registered one, whose p and integrity do not change.
    let more = store.run(&["report", &id, "--hypothesis", "dolphin_spoilers.rounds > baseline.rounds", "--json"]);
    more.assert_code(0);
    let more_json = more.json();
    let registered = hypothesis(&more, &more_json, "dolphin_spoilers.win > baseline.win");
    more.check_eq(registered, h, "the registered hypothesis is decided exactly as before");
    let extra = hypothesis(&more, &more_json, "dolphin_spoilers.rounds > baseline.rounds");
    more.check_eq(&extra["preregistered"], &Value::Bool(false), "exploratory");
    more.check_eq(&more_json["integrity"], &summary["integrity"], "the same integrity");

    // A second confirmation takes the next fresh indices.
    let second = store.run(&["confirm", "dolphin_spoilers.win > baseline.win", "--replicates", "6", "--json"]);
    second.assert_code(0);
    let replicates: Vec<u64> =
        second.json()["units"].as_array().expect("units").iter().map(|u| u["replicate"].as_u64().expect("r")).collect();
    second.check(replicates.iter().all(|r| (30..36).contains(r)), format!("{replicates:?}"));

    // Editing the record afterwards is seen: INVALID, exit 1.
    let path = store.run_dir(&id).join("preregistration.json");
    let mut edited = read_json(&path);
    edited["alpha"] = serde_json::json!(0.5);
    write_json(&path, &edited);
    let report = store.run(&["report", &id, "--json"]);
    report.assert_code(1);
    let summary = report.json();
    report.check_eq(report.str_at(&summary, "/integrity/status"), "INVALID", "an edited record");
    let check = &summary["integrity"]["checks"][0];
    report.check_eq(check["check"].as_str(), Some("preregistered"), "the failed check comes first");
    report.check(check["detail"].as_str().unwrap_or_default().contains("changed after it was written"), "says how");
}

#[test]
fn too_few_replicates_are_refused_and_force_never_makes_it_valid() {
    let store = new_store();
    let refused = store.run(&["confirm", "dolphin.win < baseline.win", "--replicates", "3"]);
    refused.assert_code(2);
    refused.assert_stderr_contains("n: 3 replicates per condition, but 5 are needed");
    refused.assert_stderr_contains("--force");
    // An alpha the test can never reach: said so, not an impossible number of replicates.
    let unreachable = store.run(&["confirm", "dolphin.win < baseline.win", "--replicates", "9", "--alpha", "1e-9"]);
    unreachable.assert_code(2);
    unreachable.assert_stderr_contains("no number of replicates is enough: choose a larger --alpha or another --test");
    unreachable.check(!unreachable.stderr.contains("18446744073709551615"), "no impossible count");
    check_eq_runs(&store, 0);

    let forced = store.run(&["confirm", "dolphin.win < baseline.win", "--replicates", "3", "--force", "--json"]);
    forced.assert_code(1);
    let summary = forced.json();
    forced.check_eq(forced.str_at(&summary, "/integrity/status"), "INVALID", "forced is never valid");
    forced.check_eq(forced.str_at(&summary, "/integrity/summary"), "INVALID: n", "names the check");
    forced.check(summary["integrity"]["forced"].as_array().is_some_and(|f| !f.is_empty()), "records what was forced");
}

#[test]
fn plan_then_confirm_from_the_exploratory_run() {
    let store = new_store();
    let exploration = explore(&store, "30");
    let plan =
        store.run(&["plan", "dolphin_spoilers.win > baseline.win", "--from", &exploration, "--power", "0.8", "--json"]);
    plan.assert_code(0);
    let planned = plan.json();
    let required = plan.u64_at(&planned, "/required");
    let for_power = plan.u64_at(&planned, "/for_power");
    plan.check(required >= for_power && required >= plan.u64_at(&planned, "/min_possible"), "required is the larger");
    plan.check(plan.f64_at(&planned, "/effect") > 0.0, "the exploration shows the effect");
    // Stopping instead: the default sequence, and for this 0/1 metric the SPRT planned for the
    // effect the exploration showed, which needs fewer pairs on average.
    let (sequence, sprt) = (&planned["sequential"], &planned["sequential_sprt"]);
    plan.check_eq(sequence["test"].as_str(), Some("betting"), "default sequential test");
    plan.check_eq(sprt["test"].as_str(), Some("sprt"), "the SPRT's plan");
    let (planned_for, observed) = (plan.f64_at(sprt, "/min_effect"), plan.f64_at(&planned, "/effect"));
    plan.check(
        (planned_for - observed).abs() < 1e-12,
        format!("planned for the observed effect {observed}: {planned_for}"),
    );
    plan.check(
        plan.f64_at(sprt, "/expected") < plan.f64_at(sequence, "/expected"),
        format!("the SPRT needs fewer pairs: {sprt} vs {sequence}"),
    );
    let more_power = store.run(&[
        "plan",
        "dolphin_spoilers.win > baseline.win",
        "--from",
        &exploration,
        "--power",
        "0.95",
        "--json",
    ]);
    more_power
        .check(more_power.u64_at(&more_power.json(), "/for_power") > for_power, "more power needs more replicates");
    // The command the plan suggests is planned for the same alpha and power, so confirm takes it.
    let suggested = more_power.str_at(&more_power.json(), "/confirm").to_owned();
    more_power.check(suggested.contains("--alpha 0.05 --power 0.95"), &suggested);
    let words = crystallize_tests::shell_split(&suggested).unwrap_or_else(|| more_power.fail("unquotable command"));
    let args: Vec<&str> = words[1..].iter().map(String::as_str).chain(["--json"]).collect();
    let confirmed = store.run(&args);
    confirmed.assert_code(0);
    confirmed.check_eq(confirmed.str_at(&confirmed.json(), "/integrity/status"), "VALID", "the suggested confirm");
    let text = store.run(&["plan", "dolphin_spoilers.win > baseline.win", "--from", &exploration]);
    text.assert_stdout_contains(&format!("--replicates {required} --from {exploration}"));

    // The other direction cannot be planned for.
    let wrong = store.run(&["plan", "dolphin_spoilers.win < baseline.win", "--from", &exploration]);
    wrong.assert_code(1);
    wrong.assert_stderr_contains("not in the direction");

    // Confirming with what the plan says: valid, and the exploration is checked too.
    let n = required.to_string();
    let out = store.run(&[
        "confirm",
        "dolphin_spoilers.win > baseline.win",
        "--replicates",
        &n,
        "--from",
        &exploration,
        "--json",
    ]);
    out.assert_code(0);
    let summary = out.json();
    out.check_eq(out.str_at(&summary, "/integrity/status"), "VALID", "integrity");
    let names: Vec<&str> = summary["integrity"]["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| c["check"].as_str().expect("name"))
        .collect();
    out.check(names.contains(&"exploration"), "the exploration is a check");
    // Fewer than the plan says: refused.
    let fewer = (required - 1).to_string();
    let refused =
        store.run(&["confirm", "dolphin_spoilers.win > baseline.win", "--replicates", &fewer, "--from", &exploration]);
    refused.assert_code(2);
    refused.assert_stderr_contains(&format!("but {required} are needed"));
}

#[test]
fn confirm_from_an_exploration_made_before_a_step_changed_names_that_step() {
    let store = new_store();
    let exploration = explore(&store, "30");
    // The store format is public: make the exploratory run look as if `game::play` had other code
    // then (exactly what an edit of that step between the two runs leaves in the store).
    let path = store.run_dir(&exploration).join("manifest.json");
    let mut manifest = read_json(&path);
    let key = "step social_deception::game::play";
    assert!(manifest["config"]["fingerprints"][key].is_string(), "{}", manifest["config"]["fingerprints"]);
    manifest["config"]["fingerprints"][key] = serde_json::json!("0123456789abcdef");
    write_json(&path, &manifest);

    let args = ["confirm", "dolphin_spoilers.win > baseline.win", "--replicates", "30", "--from", exploration.as_str()];
    let refused = store.run(&args);
    refused.assert_code(2);
    refused.assert_stderr_contains(&format!("code of {key} changed since the exploratory run {exploration}"));
    refused.check(!refused.stderr.contains("play_round"), "only the changed step is named");
    check_eq_runs(&store, 1);

    let mut forced_args = args.to_vec();
    forced_args.extend(["--force", "--json"]);
    let forced = store.run(&forced_args);
    forced.assert_code(1);
    let summary = forced.json();
    forced.check_eq(forced.str_at(&summary, "/integrity/status"), "CONFOUNDED", "status");
    forced.check_eq(
        forced.str_at(&summary, "/integrity/summary").to_owned(),
        format!("CONFOUNDED: code of {key} changed since exploratory run {exploration}"),
        "names the changed step",
    );
    let failed: Vec<&str> = summary["integrity"]["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["check"].as_str().expect("name"))
        .collect();
    forced.check_eq(failed, vec!["exploration"], "only the exploration check fails");
}
