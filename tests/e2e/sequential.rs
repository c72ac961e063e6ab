//! End-to-end tests of `run --until-decided` (issue 15): a large effect stops well before the
//! maximum and `report` reproduces the decision from the store alone; resuming with a higher
//! maximum continues the same sequence; `stream` says when a hypothesis is decided; bad input
//! exits 2 before any unit runs; where a run stopped is recorded in its journal, and `report`
//! checks its replay against that record; the SPRT stops for futility as well as for an effect.

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

    // Where it stopped is in the journal (a sealed `stop` record), and the report shows it; the
    // run is `decided`, not `incomplete`, and the replicates it did not run were not needed.
    let stop = stop_record(&store, &id);
    run.check_eq(stop["reason"].as_str(), Some("decided"), "the journal's stop reason");
    run.check_eq(stop["at"].as_u64(), Some(decided_at), "the journal's stop point");
    report.check_eq(sequential(&again)["stop"]["at"].as_u64(), Some(decided_at), "report's stop");
    let text = store.run(&["report", &id]);
    text.assert_stdout_contains(&format!("the run stopped after {decided_at} pairs: every hypothesis decided"));
    text.assert_stdout_contains("not needed (every hypothesis decided)");
    let runs = store.run(&["runs", "--json"]);
    runs.assert_code(0);
    runs.check_eq(runs.json()[0]["status"].as_str(), Some("decided"), "runs status");
}

/// The stop record of the one journal of run `id`.
fn stop_record(store: &Store, id: &str) -> Value {
    let (line, _) = stop_line(store, id);
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("stop record {line}: {e}"))
}

/// The stop line of the one journal of run `id`, and the journal's path.
fn stop_line(store: &Store, id: &str) -> (String, std::path::PathBuf) {
    let dir = store.run_dir(id);
    let journal = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("journal-")))
        .expect("a journal");
    let text = std::fs::read_to_string(&journal).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(r#""type":"stop""#)).collect();
    assert_eq!(lines.len(), 1, "one stop record in {}", journal.display());
    (lines[0].to_owned(), journal)
}

#[test]
fn the_sprt_stops_on_a_bounded_metric_and_a_changed_stop_record_is_reported() {
    let store = Store::new(BIN);
    // The SPRT of a win rate, planned for a difference of 0.3: an effect, or futility, long
    // before 200 pairs.
    let run = store.run(&[
        "run",
        "--treatment",
        "dolphin",
        "--until-decided",
        "--max-replicates",
        "200",
        "--sequential-test",
        "sprt",
        "--min-effect",
        "0.3",
        "--hypothesis",
        "dolphin.win < baseline.win",
        "--json",
    ]);
    run.assert_code(0).assert_stderr_contains("stopped: every hypothesis is decided");
    let at_end = run.json();
    let id = run.str_at(&at_end, "/run").to_owned();
    let decided = &sequential(&at_end)["results"][0];
    run.check_eq(decided["test"].as_str(), Some("sprt"), "test");
    let decided_at = run.u64_at(decided, "/decided_at");
    run.check(decided_at < 100, format!("decided after {decided_at} pairs of at most 200"));
    let e = &decided["evidence"];
    run.check(
        e["effect"].as_f64() >= e["effect_needed"].as_f64() || e["short"].as_f64() >= e["short_needed"].as_f64(),
        format!("an e-value reached its threshold: {e}"),
    );
    let report = store.run(&["report", &id, "--json"]);
    report.assert_code(0);
    report.check_eq(&sequential(&report.json())["results"], &sequential(&at_end)["results"], "report = run");

    // A stop record rewritten (and sealed again, as a tool would) to claim another decision
    // point disagrees with the replay: the report says where, and exits 1.
    let (line, journal) = stop_line(&store, &id);
    let mut stop: Value = serde_json::from_str(&line).unwrap();
    stop["hypotheses"][0]["decided_at"] = Value::from(decided_at + 5);
    if let Some(object) = stop.as_object_mut() {
        object.remove("crc32");
    }
    let sealed = String::from_utf8(crystallize::store::journal::seal_record(stop.to_string().as_bytes())).unwrap();
    let text = std::fs::read_to_string(&journal).unwrap();
    std::fs::write(&journal, text.replace(&line, &sealed)).unwrap();
    let changed = store.run(&["report", &id]);
    changed.assert_code(1).assert_stderr_contains("the recorded stop disagrees with the replay");
    changed.assert_stderr_contains(&format!("after {} pairs when the run stopped", decided_at + 5));
    // The same line with its checksum broken is damage, named by file and line.
    let broken = sealed.replacen("\"reason\":\"decided\"", "\"reason\":\"maximum\"", 1);
    std::fs::write(&journal, text.replace(&line, &broken)).unwrap();
    let damaged = store.run(&["report", &id]);
    damaged.assert_stderr_contains("damaged stop record");
    let runs = store.run(&["runs", "--json"]);
    // A line that fails its checksum could have been anything: the run shows as damaged.
    runs.check_eq(runs.json()[0]["status"].as_str(), Some("damaged"), "a damaged line: damaged");
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
        (
            vec![
                "--until-decided",
                "--max-replicates",
                "5",
                "--sequential-test",
                "sprt",
                "--hypothesis",
                "dolphin.win < baseline.win",
            ],
            "add --min-effect",
        ),
        (
            vec![
                "--until-decided",
                "--max-replicates",
                "5",
                "--sequential-test",
                "sprt",
                "--min-effect",
                "1",
                "--hypothesis",
                "dolphin.win < baseline.win",
            ],
            "within the differences' bounds",
        ),
        (
            vec![
                "--until-decided",
                "--max-replicates",
                "5",
                "--sequential-test",
                "sprt",
                "--min-effect",
                "0.2",
                "--hypothesis",
                LARGE,
            ],
            "needs a bounded metric",
        ),
        (
            vec![
                "--until-decided",
                "--max-replicates",
                "5",
                "--power",
                "1.5",
                "--hypothesis",
                "dolphin.win < baseline.win",
            ],
            "--power",
        ),
    ] {
        let out = store.run(&[&["run", "--treatment", "dolphin"][..], &args[..]].concat());
        out.assert_code(2).assert_stderr_contains(message);
    }
    assert!(store.run_ids().is_empty(), "no run may be created: {:?}", store.run_ids());
}

#[test]
fn on_a_terminal_each_hypothesis_is_a_row_of_the_display_updated_in_place() {
    // The display is drawn only on a terminal: `script` gives the command one.
    if std::process::Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: `script` (util-linux) is not installed, and it provides the terminal");
        return;
    }
    let store = Store::new(BIN);
    let line = format!(
        "{BIN} run --treatment dolphin --until-decided --max-replicates 200 --hypothesis '{LARGE}' --jobs 2 --set \
         think_ms=30 --store {}",
        crystallize_tests::shell_quote(&store.path().display().to_string())
    );
    let out = crystallize_tests::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("TERM", "xterm")
        .timeout(std::time::Duration::from_secs(120))
        .run();
    out.assert_code(0);
    // The row is drawn below the condition bars ("dolphin  >   5/200  1 running"), in the same
    // frame, not printed as a line above the display once per pair.
    let row = format!("sequential: {LARGE}: [");
    let frames = out.stdout.split(&row).count() - 1;
    let below_a_bar = out.stdout.match_indices(&row).any(|(at, _)| {
        let before = &out.stdout[..at];
        before.ends_with("\r\n") && before.trim_end().rsplit('\n').next().is_some_and(|l| l.contains("/200"))
    });
    out.check(frames > 0 && below_a_bar, format!("a live row below the bars ({frames} frames)"));
    out.assert_stdout_contains(&format!("decided: {LARGE}: ["));
    out.assert_stdout_contains("stopped: every hypothesis is decided");
}
