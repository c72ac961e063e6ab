//! End-to-end tests of damaged and hostile input: journal records that do not belong to the run
//! (outside its plan, another seed), records that disagree, replicate counts too large to plan
//! (flags and files), arguments that are not UTF-8, manifests of another schema or damaged, a
//! store path that is not a directory, a FIFO where a journal should be, ambiguous run ids.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crystallize_tests::{Command, Output, Store};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_social_deception");

/// A store with one complete run of `replicates` replicates (seed 5); the run's id.
fn store_with_run(replicates: &str) -> (Store, String) {
    let store = Store::new(BIN);
    store.run(&["run", "--replicates", replicates, "--seed", "5"]).assert_code(0);
    let id = store.only_run()["id"].as_str().expect("id").to_owned();
    (store, id)
}

/// The run's one journal.
fn journal(store: &Store, id: &str) -> PathBuf {
    let journals: Vec<PathBuf> = std::fs::read_dir(store.run_dir(id))
        .expect("run dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("journal-")))
        .collect();
    assert_eq!(journals.len(), 1, "{journals:?}");
    journals[0].clone()
}

/// `value` (a journal record read from a line) as a line with a valid checksum: what a tool
/// writing records of its own would write. A line edited without it fails its checksum.
fn resealed(mut value: Value) -> String {
    if let Value::Object(object) = &mut value {
        object.remove("crc32");
    }
    String::from_utf8(crystallize::store::journal::seal_record(value.to_string().as_bytes())).expect("UTF-8")
}

/// Rewrites the journal line of `condition` #`replicate` with `change`, with a valid checksum (a
/// record that is well formed, but not the run's); its 1-based line number.
fn edit_record(path: &Path, condition: &str, replicate: u64, change: impl Fn(&mut Value)) -> usize {
    let text = std::fs::read_to_string(path).expect("journal");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let index = lines
        .iter()
        .position(|l| {
            let v: Value = serde_json::from_str(l).expect("a record");
            v["condition"] == condition && v["replicate"] == replicate
        })
        .expect("the record");
    let mut value: Value = serde_json::from_str(&lines[index]).expect("a record");
    change(&mut value);
    lines[index] = resealed(value);
    std::fs::write(path, lines.join("\n") + "\n").expect("write journal");
    index + 1
}

/// Replaces `from` by `to` in a file of the store.
fn replace_in(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("file");
    assert!(text.contains(from), "{} has no {from:?}: {text}", path.display());
    std::fs::write(path, text.replace(from, to)).expect("write");
}

/// Asserts the command did not panic (a panic is exit code 101 with "panicked" on stderr).
#[track_caller]
fn no_panic(out: &Output) {
    out.check(out.code() != Some(101) && !out.stderr.contains("panicked"), "no panic");
}

#[test]
fn a_record_outside_the_plan_does_not_count_and_its_unit_runs_again() {
    let (store, id) = store_with_run("4");
    let path = journal(&store, &id);
    let line = edit_record(&path, "dolphin", 2, |v| v["replicate"] = 999.into());
    let run = store.only_run();
    assert_eq!(run["status"], "damaged", "{run}");
    assert_eq!(run["units_done"], 11);
    assert_eq!(run["damage"]["rejected"], 1, "{run}");

    let resumed = store.run(&["run", "--resume"]);
    resumed.assert_code(0);
    resumed.assert_stderr_contains(&format!("{}:{line}: a record of dolphin #999", path.display()));
    resumed.assert_stderr_contains("outside the plan");
    resumed.assert_stderr_contains("11 of 12 units already done");
    resumed.assert_stderr_contains("ran 1 units");
    assert_eq!(store.only_run()["status"], "complete");
    let report = store.run(&["report", &id, "--json"]);
    let summary = report.json();
    let dolphin_2 = summary["units"]
        .as_array()
        .expect("units")
        .iter()
        .filter(|u| u["condition"] == "dolphin" && u["replicate"] == 2);
    assert_eq!(dolphin_2.count(), 1, "dolphin #2 ran again");
}

#[test]
fn a_record_with_another_seed_than_its_replicate_derives_does_not_count() {
    let (store, id) = store_with_run("3");
    let path = journal(&store, &id);
    let line = edit_record(&path, "baseline", 1, |v| v["seed"] = 12345.into());
    assert_eq!(store.only_run()["units_done"], 8);
    let report = store.run(&["report", &id]);
    report.assert_code(1);
    report.assert_stdout_contains("damaged: 0 damaged journal line(s), 1 record(s) outside the plan");
    report.assert_stderr_contains(&format!("{}:{line}: a record of baseline #1 with seed 12345", path.display()));
    let resumed = store.run(&["run", "--resume"]);
    resumed.assert_code(0);
    resumed.assert_stderr_contains("ran 1 units");
    assert_eq!(store.only_run()["status"], "complete");
}

#[test]
fn two_successful_records_of_a_unit_that_disagree_are_named_by_both_lines() {
    let (store, id) = store_with_run("2");
    let path = journal(&store, &id);
    let text = std::fs::read_to_string(&path).expect("journal");
    let (index, original) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains("\"condition\":\"dolphin\",\"replicate\":1,"))
        .expect("dolphin #1");
    let mut copy: Value = serde_json::from_str(original).expect("record");
    let rounds = copy["metrics"]["rounds"].as_f64().expect("rounds");
    copy["metrics"]["rounds"] = (rounds + 1.0).into();
    let lines = text.lines().count();
    std::fs::write(&path, format!("{text}{}\n", resealed(copy))).expect("append");

    let report = store.run(&["report", &id, "--json"]);
    report.assert_code(1);
    report.assert_stderr_contains(&format!(
        "{}:{}: a second successful record of dolphin #1 whose metrics differ from the first one, at {}:{}",
        path.display(),
        lines + 1,
        path.display(),
        index + 1
    ));
    report.assert_stderr_contains("neither counts until the unit runs again");
    let summary = report.json();
    assert_eq!(summary["status"], "damaged", "{summary}");
    assert_eq!(summary["damage"]["in_doubt"], 1, "{summary}");
    let dolphin_1 = |summary: &Value| {
        summary["units"]
            .as_array()
            .expect("units")
            .iter()
            .filter(|u| u["condition"] == "dolphin" && u["replicate"] == 1)
            .map(|u| u["metrics"]["rounds"].as_f64())
            .collect::<Vec<_>>()
    };
    assert_eq!(dolphin_1(&summary), [], "neither record counts");
    // `watch` applies the same rule as it reads the lines: the unit is not done.
    let listed = store.run(&["runs", "--json"]).json();
    let (done, planned) = (&listed[0]["units_done"], &listed[0]["units_planned"]);
    assert_eq!((done.as_u64(), planned.as_u64()), (Some(5), Some(6)), "{listed}");
    let watch = store.run(&["watch", &id, "--timeout", "10"]);
    watch.assert_stdout_contains(&format!("damaged: {done}/{planned} units done"));
    watch.assert_stderr_contains("neither counts until the unit runs again");
    // A resume runs the unit again; its record (the unit is deterministic) settles it.
    let resumed = store.run(&["run", "--resume"]);
    resumed.assert_code(0);
    resumed.assert_stderr_contains("ran 1 units");
    let report = store.run(&["report", &id, "--json"]);
    report.assert_code(0);
    let summary = report.json();
    assert_eq!(summary["status"], "complete", "{summary}");
    assert_eq!(dolphin_1(&summary), [Some(rounds)], "the rerun agrees with the original");
    // The later journal's record settles it for `watch` too.
    let watch = store.run(&["watch", &id, "--timeout", "10"]);
    watch.assert_code(0).assert_stdout_contains("complete: 6/6 units done");
}

#[test]
fn a_line_edited_without_its_checksum_is_damage_named_by_line_and_its_unit_runs_again() {
    let (store, id) = store_with_run("3");
    let path = journal(&store, &id);
    // A metric changed in place: still valid JSON, still a plausible record, but not what the
    // unit recorded.
    let text = std::fs::read_to_string(&path).expect("journal");
    let (index, original) =
        text.lines().enumerate().find(|(_, l)| l.contains("\"condition\":\"baseline\",\"replicate\":2,")).expect("#2");
    let mut value: Value = serde_json::from_str(original).expect("record");
    value["metrics"]["rounds"] = 99.into();
    let edited = text.replace(original, &value.to_string());
    std::fs::write(&path, edited).expect("edit");

    let run = store.only_run();
    assert_eq!((run["status"].as_str(), run["units_done"].as_u64()), (Some("damaged"), Some(8)), "{run}");
    assert_eq!(run["damage"]["lines"], 1, "{run}");
    let listed = store.run(&["runs"]);
    listed.assert_stderr_contains(&format!("warning: run {id} has 1 damaged journal line(s)"));
    listed.assert_stdout_contains("damaged");
    let report = store.run(&["report", &id, "--json"]);
    report.assert_code(1);
    report.assert_stderr_contains(&format!(
        "{}:{}: damaged line: its content does not match its checksum",
        path.display(),
        index + 1
    ));
    let rounds: Vec<f64> = report.json()["units"]
        .as_array()
        .expect("units")
        .iter()
        .filter_map(|u| u["metrics"]["rounds"].as_f64())
        .collect();
    assert!(!rounds.contains(&99.0), "the edited value is not a result: {rounds:?}");
    let resumed = store.run(&["run", "--resume"]);
    resumed.assert_code(0);
    resumed.assert_stderr_contains("8 of 9 units already done");
    resumed.assert_stderr_contains("ran 1 units");
    assert_eq!(store.only_run()["status"], "complete");
}

#[test]
fn replicate_counts_too_large_to_plan_are_refused_with_exit_code_2() {
    let (store, _) = store_with_run("1");
    for count in ["18446744073709551615", "1000000000000", "100000001"] {
        for args in [
            vec!["run", "--replicates", count],
            vec!["run", "--resume", "--replicates", count],
            vec!["confirm", "dolphin.win < baseline.win", "--replicates", count, "--force"],
        ] {
            let out = store.run(&args);
            no_panic(&out);
            out.assert_code(2);
            out.assert_stderr_contains(&format!("invalid value '{count}' for '--replicates"));
            out.assert_stderr_contains("1 to 100000000");
        }
    }
    assert_eq!(store.runs().len(), 1, "nothing was started");
}

#[test]
fn a_config_file_asking_for_too_many_replicates_is_refused_naming_file_line_and_maximum() {
    let store = Store::new(BIN);
    let config = store.path().join("too-many.toml");
    std::fs::write(&config, "seed = 3\nreplicates = 1000000000000\n").expect("config");
    let out = store.command(&["run"]).env("CRYSTALLIZE_CONFIG", &config).run();
    no_panic(&out);
    out.assert_code(2);
    // The file is named relative to the working directory, as config errors do.
    out.assert_stderr_contains("too-many.toml:2: 'replicates' is 1000000000000, more than the maximum of 100000000");
    assert!(store.runs().is_empty(), "nothing was started");
}

#[test]
fn a_run_whose_files_claim_too_many_replicates_is_shown_damaged_and_the_others_normally() {
    let (store, good) = store_with_run("1");
    store.run(&["run", "--replicates", "1"]).assert_code(0);
    let ids = store.run_ids();
    let bad = ids.iter().find(|id| **id != good).expect("a second run").clone();
    let manifest = store.run_dir(&bad).join("manifest.json");
    replace_in(&manifest, "\"replicates\": 1", "\"replicates\": 18446744073709551615");

    let runs = store.run(&["runs", "--json"]);
    no_panic(&runs);
    runs.assert_code(0);
    let list = runs.json();
    let list = list.as_array().expect("a list");
    assert_eq!(list.len(), 2, "{list:?}");
    let ok = list.iter().find(|r| r["id"] == good.as_str()).expect("the good run");
    assert_eq!(ok["status"], "complete");
    let damaged = list.iter().find(|r| r["id"] == bad.as_str()).expect("the damaged run");
    assert_eq!(damaged["status"], "damaged");
    let reason = damaged["reason"].as_str().expect("a reason");
    assert!(reason.contains(&manifest.display().to_string()) && reason.contains("100000000"), "{reason}");

    let table = store.run(&["runs"]);
    table.assert_code(0);
    table.check(table.stdout_lines().iter().any(|l| l.starts_with(&bad) && l.ends_with("damaged")), "damaged row");
    for args in [vec!["report", bad.as_str()], vec!["watch", bad.as_str(), "--timeout", "5"]] {
        let out = store.run(&args);
        no_panic(&out);
        out.assert_code(2);
        out.assert_stderr_contains("more than the maximum of 100000000 per condition");
    }

    // first_replicate near 2^64: the indices would not fit.
    replace_in(
        &manifest,
        "\"replicates\": 18446744073709551615",
        "\"first_replicate\": 18446744073709551615, \"replicates\": 1",
    );
    let out = store.run(&["report", &bad]);
    no_panic(&out);
    out.assert_code(2);
    out.assert_stderr_contains("past the largest replicate index");

    // A session record claiming too many is ignored with a warning; the run reads.
    let session = std::fs::read_dir(store.run_dir(&good))
        .expect("run dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("session-")))
        .expect("a session");
    replace_in(&session, "\"replicates\": 1", "\"replicates\": 18446744073709551615");
    let report = store.run(&["report", &good]);
    report.assert_code(0);
    report
        .assert_stderr_contains(&format!("{} is not valid: \"replicates\" is 18446744073709551615", session.display()));
    let watch = store.run(&["watch", &good, "--timeout", "5"]);
    no_panic(&watch);
    watch.assert_code(0);
    assert_eq!(store.run(&["runs", "--json"]).json()[0]["units_planned"], 3);
}

/// `x\xff`: a file name that is not UTF-8.
fn not_utf8(dir: &Path) -> PathBuf {
    let mut name = dir.as_os_str().to_owned().into_vec();
    name.extend_from_slice(b"/x\xff");
    PathBuf::from(OsString::from_vec(name))
}

#[test]
fn a_store_path_that_is_not_utf8_works_and_other_such_arguments_are_refused() {
    let dir = crystallize_tests::TempDir::new();
    let store = not_utf8(dir.path());
    let run = Command::new(BIN).args(["run", "--replicates", "1", "--store"]).arg(&store).current_dir(dir.path()).run();
    no_panic(&run);
    run.assert_code(0);
    let runs = Command::new(BIN).args(["runs", "--json", "--store"]).arg(&store).current_dir(dir.path()).run();
    runs.assert_code(0);
    assert_eq!(runs.json().as_array().map(Vec::len), Some(1));

    let set = Command::new(BIN)
        .args(["run", "--replicates", "1", "--store"])
        .arg(&store)
        .arg("--set")
        .arg(OsString::from_vec(b"think_ms=\xff".to_vec()))
        .current_dir(dir.path())
        .run();
    no_panic(&set);
    set.assert_code(2);
    set.assert_stderr_contains("this argument is not valid UTF-8: argument 7 ('think_ms=\u{fffd}')");
}

#[test]
fn a_manifest_of_another_schema_is_refused_naming_the_file_and_the_schema_read() {
    let (store, id) = store_with_run("1");
    store.run(&["run", "--replicates", "1"]).assert_code(0);
    let manifest = store.run_dir(&id).join("manifest.json");
    replace_in(&manifest, "\"schema\": 1", "\"schema\": 999");
    let expected = format!(
        "{} is a manifest of schema 999, which this version of crystallize cannot read (it reads schema 1)",
        manifest.display()
    );
    for args in [vec!["report", id.as_str()], vec!["run", "--resume", id.as_str()]] {
        let out = store.run(&args);
        out.assert_code(2);
        out.assert_stderr_contains(&expected);
    }
    let runs = store.run(&["runs", "--json"]);
    runs.assert_code(0);
    let list = runs.json();
    let statuses: Vec<&Value> = list.as_array().expect("list").iter().map(|r| &r["status"]).collect();
    assert_eq!(statuses.iter().filter(|s| **s == "damaged").count(), 1, "{list}");
    assert_eq!(statuses.iter().filter(|s| **s == "complete").count(), 1, "{list}");
}

#[test]
fn a_damaged_manifest_is_named_with_what_is_wrong_not_did_you_mean() {
    let (store, id) = store_with_run("1");
    store.run(&["run", "--replicates", "1"]).assert_code(0);
    let manifest = store.run_dir(&id).join("manifest.json");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    std::fs::write(&manifest, &text[..text.len() / 2]).expect("damage");
    let out = store.run(&["report", &id]);
    out.assert_code(2);
    out.assert_stderr_contains(&format!("run {id} cannot be read: {} is not a valid manifest", manifest.display()));
    out.check(!out.stderr.contains("did you mean"), "no did-you-mean");
}

#[test]
fn a_store_path_that_is_a_file_is_an_error() {
    let dir = crystallize_tests::TempDir::new();
    let file = dir.path().join("store");
    std::fs::write(&file, "not a store").expect("file");
    for args in [vec!["runs"], vec!["report", "x"], vec!["watch", "--timeout", "5"]] {
        let out = Command::new(BIN).args(&args).arg("--store").arg(&file).run();
        out.assert_code(2);
        out.assert_stderr_contains(&format!("the store {} is not a directory", file.display()));
    }
}

#[test]
fn a_fifo_where_a_journal_should_be_is_skipped_with_a_warning_not_waited_on() {
    let (store, id) = store_with_run("1");
    let fifo = store.run_dir(&id).join("journal-99999999-999999-0-1.jsonl");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let events = store.run_dir(&id).join("events-99999999-999999-0-1.jsonl");
    assert!(std::process::Command::new("mkfifo").arg(&events).status().expect("mkfifo").success());
    for args in [
        vec!["report", id.as_str()],
        vec!["watch", id.as_str(), "--timeout", "5"],
        vec!["run", "--resume", id.as_str()],
    ] {
        // A read that waited on the FIFO would time out, which fails the test.
        let out = store.command(&args).timeout(Duration::from_secs(20)).run();
        no_panic(&out);
        out.assert_code(0);
        if args[0] == "report" {
            out.assert_stderr_contains(&format!("{} is not a regular file; ignored", fifo.display()));
        }
    }
    assert_eq!(store.only_run()["status"], "complete");
}

#[test]
fn an_ambiguous_run_id_prefix_lists_the_candidates() {
    let store = Store::new(BIN);
    store.run(&["run", "--replicates", "1"]).assert_code(0);
    store.run(&["run", "--replicates", "1"]).assert_code(0);
    let ids = store.run_ids();
    let out = store.run(&["report", "social_deception-"]);
    out.assert_code(2);
    out.assert_stderr_contains("the run id prefix 'social_deception-' is ambiguous");
    for id in &ids {
        out.assert_stderr_contains(id);
    }
    out.check(!out.stderr.contains("no run"), "not reported as missing");
}

#[test]
fn a_unit_calling_process_exit_ends_the_run_with_a_failure_and_the_resume_command() {
    let store = Store::new(BIN);
    // With this variable set, the example's unit calls std::process::exit(0).
    let out =
        store.command(&["run", "--replicates", "3", "--jobs", "1"]).env("SOCIAL_DECEPTION_EXIT_IN_UNIT", "1").run();
    out.assert_code(1);
    let id = store.only_run()["id"].as_str().expect("id").to_owned();
    out.assert_stderr_contains(&format!("std::process::exit while run {id} was running, so the run is incomplete"));
    out.assert_stderr_contains(&format!("--resume {id} --store {}", store.path().display()));
    assert_eq!(store.only_run()["status"], "incomplete");
}

#[test]
fn no_color_removes_colour_not_the_progress_display() {
    // The display is drawn only on a terminal: `script` gives the command one.
    if std::process::Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: `script` (util-linux) is not installed, and it provides the terminal");
        return;
    }
    let store = Store::new(BIN);
    let line = format!(
        "{} run --replicates 4 --jobs 1 --set think_ms=60 --store {}",
        BIN,
        crystallize_tests::shell_quote(&store.path().display().to_string())
    );
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .timeout(Duration::from_secs(120))
        .run();
    out.assert_code(0);
    // The total bar: "<experiment> [00:00:01] ===> 5/12 units ...".
    out.check(out.stdout.contains("/12 units"), "the progress display was drawn with NO_COLOR set");
}

#[test]
fn a_second_ctrl_c_over_a_hung_unit_exits_130_and_still_prints_the_resume_command() {
    let store = Store::new(BIN);
    // Each round thinks 5 s: the unit in flight is as good as hung.
    let child = store
        .process(&["run", "--replicates", "2", "--jobs", "1", "--set", "think_ms=5000"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the run");
    let pid = child.id().to_string();
    let interrupt = || {
        // By pid, with the system's kill: the test crate has no signal API of its own.
        let sent = std::process::Command::new("kill").args(["-INT", &pid]).status().expect("run kill");
        assert!(sent.success(), "SIGINT to {pid}");
    };
    // Wait until the run exists in the store, so the journal (and its exit hook) is armed.
    let started = std::time::Instant::now();
    while store.run_ids().is_empty() && started.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    interrupt();
    std::thread::sleep(std::time::Duration::from_millis(300));
    interrupt();
    let out = child.wait_with_output().expect("wait for the run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let id = store.only_run()["id"].as_str().expect("id").to_owned();
    assert!(stderr.contains("aborted"), "{stderr}");
    assert!(stderr.contains(&format!("--resume {id} --store")), "the resume command is printed:\n{stderr}");
}

#[test]
fn a_journal_that_cannot_be_written_to_the_end_is_an_incomplete_run_exit_1_with_its_resume_command() {
    let (store, id) = store_with_run("1");
    // Files may grow to 1 KiB (`ulimit -f 2`, 512-byte blocks; SIGXFSZ ignored so that a write
    // past it fails with EFBIG, as on a full disk): the resumed session's journal takes four of
    // its six records, the last failing after every unit has run.
    let script =
        format!("trap '' XFSZ; ulimit -f 2; exec \"$0\" run --resume {id} --replicates 3 --jobs 1 --store \"$1\"");
    let out = Command::new("sh")
        .args(["-c", &script, BIN, &store.path().display().to_string()])
        .current_dir(store.path())
        .timeout(Duration::from_secs(120))
        .run();
    no_panic(&out);
    out.assert_code(1).assert_stderr_contains("error: could not write the journal");
    out.assert_stderr_contains(&format!("--resume {id}"));
    // Nothing recorded is lost, and a resume without the limit completes the run.
    let resumed = store.run(&["run", "--resume", &id]);
    resumed.assert_code(0);
    let listed = store.run(&["runs", "--json"]).json();
    assert_eq!(listed[0]["status"], "complete", "{listed}");
    assert_eq!(listed[0]["units_done"], 9, "{listed}");
}
