//! End-to-end tests of `run --until-decided` (issue 15): a large effect stops well before the
//! maximum and `report` reproduces the decision from the store alone; resuming with a higher
//! maximum continues the same sequence; `stream` says when a hypothesis is decided; bad input
//! exits 2 before any unit runs.

use crystallize_tests::Store;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_social_deception");
/// The dolphin table makes many more random accusations: a large effect.
const LARGE: &str = "dolphin.hallucinations > baseline.hallucinations";

fn sequential(report: &Value) -> &Value {
    &report["sequential"]
}

#[test]
fn a_large_effect_stops_well_before_the_maximum_and_the_report_reproduces_it() {
    let store = Store::new(BIN);
    let run = store.run(&[
        "run",
        "--treatment",
        "dolphin",
        "--until-decided",
        "--max-replicates",
        "200",
        "--hypothesis",
        LARGE,
        "--jobs",
        "2",
        "--json",
    ]);
    run.assert_code(0).assert_stderr_contains("stopped: every hypothesis is decided");
    let at_end = run.json();
    let id = run.str_at(&at_end, "/run").to_owned();
    let decided = &sequential(&at_end)["results"][0];
    run.check_eq(decided["status"].as_str(), Some("supported"), "status");
    let decided_at = run.u64_at(decided, "/decided_at");
    let units = at_end["units"].as_array().map_or(0, Vec::len);
    run.check(decided_at < 50 && units < 100, format!("decided after {decided_at} pairs, {units} units of 400"));

    // The manifest records the rule; the report recomputes the decision from the files.
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(store.run_dir(&id).join("manifest.json")).unwrap()).unwrap();
    run.check_eq(manifest["stopping"]["max_replicates"].as_u64(), Some(200), "manifest stopping rule");
    run.check_eq(manifest["stopping"]["hypotheses"][0].as_str(), Some(LARGE), "manifest hypotheses");
    let report = store.run(&["report", &id, "--json"]);
    report.assert_code(0);
    let again = report.json();
    report.check_eq(&sequential(&again)["results"], &sequential(&at_end)["results"], "report = run");
    report.check_eq(again["hypotheses"][0]["p_valid"].as_bool(), Some(false), "fixed-n p labelled not valid");
    let text = store.run(&["report", &id]);
    text.assert_stdout_contains("sequential decisions").assert_stdout_contains("NOT VALID as p-values");
    // `watch`, from the store alone, shows each hypothesis's interval and status.
    let watch = store.run(&["watch", &id, "--interval", "20", "--timeout", "30"]);
    watch
        .assert_code(0)
        .assert_stdout_contains(&format!("sequential {LARGE}: ["))
        .assert_stdout_contains("pairs, supported")
        .assert_stderr_contains("every hypothesis is decided (--until-decided)");
    // The HTML report shows the rule, the interval over the pairs and where it was decided.
    let page = store.path().join("report.html");
    let html = store.run(&["report", &id, "--html", page.to_str().unwrap_or("report.html")]);
    html.assert_code(0);
    let text = std::fs::read_to_string(&page).unwrap_or_else(|e| html.fail(format!("no page: {e}")));
    html.check(text.contains(r#"<section id="sequential">"#), "a sequential section");
    html.check_eq(text.matches(r#"<svg class="sequence""#).count(), 1, "one sequence plot per hypothesis");
    html.check(text.contains(&format!("decided after {decided_at} pairs")), "where it was decided, as the run said");
    html.check(text.contains("not valid after optional stopping"), "the fixed-n p-values are labelled");
    html.check(!text.contains("NaN") && !text.contains("inf\""), "no non-finite coordinate");
}

#[test]
fn resuming_with_a_higher_maximum_continues_the_same_sequence() {
    let store = Store::new(BIN);
    let base = ["--treatment", "dolphin", "--until-decided", "--hypothesis", LARGE, "--json"];
    // 3 pairs cannot decide (the asymptotic sequence gives no bound before 10).
    let short = store.run(&[&["run", "--max-replicates", "3"][..], &base[..]].concat());
    short.assert_code(0).assert_stderr_contains("stopped at the maximum");
    let id = short.str_at(&short.json(), "/run").to_owned();
    let resumed = store.run(&["run", "--resume", &id, "--until-decided", "--max-replicates", "200", "--json"]);
    resumed.assert_code(0).assert_stderr_contains("stopped: every hypothesis is decided");
    let fresh = store.run(&[&["run", "--max-replicates", "200"][..], &base[..]].concat());
    fresh.assert_code(0);
    let (a, b) = (resumed.json(), fresh.json());
    resumed.check_eq(
        &sequential(&a)["results"][0]["decided_at"],
        &sequential(&b)["results"][0]["decided_at"],
        "resumed and fresh runs decide at the same pair",
    );
    resumed.check_eq(&sequential(&a)["results"][0]["low"], &sequential(&b)["results"][0]["low"], "same interval");
}

#[test]
fn stream_prints_a_line_when_a_hypothesis_is_decided() {
    let store = Store::new(BIN);
    let out = store.run(&[
        "stream",
        "--treatment",
        "dolphin",
        "--until-decided",
        "--max-replicates",
        "200",
        "--hypothesis",
        LARGE,
    ]);
    out.assert_code(0);
    let lines = out.json_lines();
    let decision = lines.iter().find(|l| l["type"] == "decision").unwrap_or_else(|| out.fail("no decision line"));
    out.check_eq(decision["status"].as_str(), Some("supported"), "decision status");
    out.check_eq(decision["hypothesis"].as_str(), Some(LARGE), "decision hypothesis");
}

#[test]
fn bad_input_exits_2_before_any_unit() {
    let store = Store::new(BIN);
    for (args, message) in [
        (vec!["--until-decided"], "--max-replicates"),
        (vec!["--until-decided", "--max-replicates", "5", "--min-replicates", "9"], "above --max-replicates 5"),
        (
            vec!["--until-decided", "--max-replicates", "5", "--sequential-test", "betting", "--hypothesis", LARGE],
            "needs a bounded metric",
        ),
        (
            vec!["--until-decided", "--max-replicates", "5", "--hypothesis", "dolphn.win > baseline.win"],
            "did you mean 'dolphin'",
        ),
        (vec!["--max-replicates", "5"], "--until-decided"),
    ] {
        let out = store.run(&[&["run", "--treatment", "dolphin"][..], &args[..]].concat());
        out.assert_code(2).assert_stderr_contains(message);
    }
    assert!(store.run_ids().is_empty(), "no run may be created: {:?}", store.run_ids());
}
