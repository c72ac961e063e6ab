//! End-to-end tests of the run store: crash and resume, torn and corrupted journals, the drift
//! guard, `stream` into a closed pipe, `runs`, `report`, artifacts, and `debug --run`.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crystallize_tests::{units_by_key, Store};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_social_deception");

/// An empty store for the example.
fn new_store() -> Store {
    Store::new(BIN)
}

/// Every journal record of a run, from its files (the store format is public).
fn journal_records(store: &Store, id: &str) -> Vec<Value> {
    let mut records = Vec::new();
    for entry in std::fs::read_dir(store.run_dir(id)).expect("run directory") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if name.starts_with("journal-") {
            let text = std::fs::read_to_string(&path).expect("journal");
            for line in text.lines().filter(|l| l.ends_with('}')) {
                if let Ok(value) = serde_json::from_str::<Value>(line) {
                    records.push(value);
                }
            }
        }
    }
    records
}

/// A small deterministic generator for kill instants (the timing itself is the machine's).
struct Lcg(u64);

impl Lcg {
    fn next_in(&mut self, low: u64, high: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        low + (self.0 >> 33) % (high - low)
    }
}

/// About 1.5 s of work in 18 units: long enough to be killed several times at random instants.
const CRASH_ARGS: [&str; 9] = ["run", "--replicates", "6", "--seed", "7", "--jobs", "2", "--set", "think_ms=60"];

#[test]
fn sigkill_at_random_instants_then_resume_records_exactly_the_uninterrupted_metrics() {
    let reference = new_store();
    let mut args = CRASH_ARGS.to_vec();
    args.push("--json");
    let expected = reference.run(&args);
    expected.assert_code(0);
    let expected = units_by_key(&expected.json());
    assert_eq!(expected.len(), 18);

    let store = new_store();
    let mut lcg = Lcg(2026);
    let mut kills = 0;
    let mut saw_incomplete = false;
    for attempt in 0..8 {
        let resume = !store.runs().is_empty();
        let mut child =
            if resume { store.spawn(&["run", "--resume", "--jobs", "2"]) } else { store.spawn(&CRASH_ARGS) };
        let delay = Duration::from_millis(lcg.next_in(60, 400));
        let started = Instant::now();
        while started.elapsed() < delay {
            if child.try_wait().expect("poll the child").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if child.try_wait().expect("poll the child").is_none() {
            child.kill().expect("SIGKILL the run");
            kills += 1;
        }
        child.wait().expect("reap the child");
        if let Some(run) = store.runs().first() {
            if run["status"] == "incomplete" {
                saw_incomplete = true;
                assert!(run["units_done"].as_u64() < run["units_planned"].as_u64(), "attempt {attempt}: {run}");
            }
        }
    }
    assert!(kills >= 3, "the test must actually interrupt runs (killed {kills} times)");
    assert!(saw_incomplete, "`runs` must show an interrupted run as incomplete");

    // Resume until complete (the last resume is never killed).
    // Every unit may already have been done by the killed attempts: then there is nothing to
    // do, which is a success too (a requeued job finds its work done).
    let finished = store.run(&["run", "--resume", "--json"]);
    finished.assert_code(0);
    let run = store.only_run();
    assert_eq!(run["status"], "complete", "{run}");
    let id = run["id"].as_str().expect("id").to_owned();
    let report = store.run(&["report", &id, "--json"]);
    report.assert_code(0);
    assert_eq!(units_by_key(&report.json()), expected, "resumed metrics differ from the uninterrupted run");

    // No unit has two successful records.
    let mut ok_records: BTreeMap<(String, u64), usize> = BTreeMap::new();
    for record in journal_records(&store, &id) {
        if record["status"] == "ok" {
            let key = (
                record["condition"].as_str().unwrap_or_default().to_owned(),
                record["replicate"].as_u64().unwrap_or(0),
            );
            *ok_records.entry(key).or_default() += 1;
        }
    }
    assert_eq!(ok_records.len(), 18);
    assert!(ok_records.values().all(|n| *n == 1), "a unit was recorded twice: {ok_records:?}");
}

#[test]
fn report_recomputes_exactly_what_run_printed() {
    let store = new_store();
    let table = store.run(&["run", "--replicates", "3"]);
    table.assert_code(0);
    let id = store.only_run()["id"].as_str().expect("id").to_owned();
    let report = store.run(&["report", &id]);
    report.assert_code(0);
    assert_eq!(report.stdout, table.stdout);
    assert!(table.stdout.starts_with(&format!("run {id}: social_deception")), "{}", table.stdout);

    let json = store.run(&["run", "--replicates", "3", "--json"]);
    let second = json.json()["run"].as_str().expect("run id").to_owned();
    assert_ne!(second, id);
    // The shortest prefix of the second id that the first does not share: unique in this store
    // (a fixed number of dropped characters could also match the first run, started the same second).
    let shared = id.bytes().zip(second.bytes()).take_while(|(a, b)| a == b).count();
    let again = store.run(&["report", &second[..shared + 1], "--json"]);
    again.assert_code(0);
    assert_eq!(again.json(), json.json(), "report --json (by unique prefix) must equal run --json");
}

#[test]
fn a_torn_last_line_is_ignored_with_a_warning_and_its_unit_runs_again() {
    let store = new_store();
    store.run(&["run", "--replicates", "2", "--seed", "3"]).assert_code(0);
    let id = store.only_run()["id"].as_str().expect("id").to_owned();
    let journal = std::fs::read_dir(store.run_dir(&id))
        .expect("run dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("journal-")))
        .expect("a journal");
    let text = std::fs::read_to_string(&journal).expect("journal");
    // Tear the last record: as if the process died in the middle of writing it.
    std::fs::write(&journal, &text[..text.len() - 15]).expect("tear");
    let runs = store.only_run();
    assert_eq!(runs["status"], "incomplete");
    assert_eq!(runs["units_done"], 5);

    let resumed = store.run(&["run", "--resume"]);
    resumed.assert_code(0);
    resumed.assert_stderr_contains("torn last line");
    resumed.assert_stderr_contains("5 of 6 units already done");
    resumed.assert_stderr_contains("ran 1 units");
    assert_eq!(store.only_run()["status"], "complete");
}

#[test]
fn a_corrupted_line_is_reported_with_file_and_line_and_its_unit_runs_again() {
    let store = new_store();
    store.run(&["run", "--replicates", "2"]).assert_code(0);
    let id = store.only_run()["id"].as_str().expect("id").to_owned();
    let journal = std::fs::read_dir(store.run_dir(&id))
        .expect("run dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("journal-")))
        .expect("a journal");
    let text = std::fs::read_to_string(&journal).expect("journal");
    let mut lines: Vec<&str> = text.lines().collect();
    lines[2] = "{\"schema\":1,\"type\":\"unit\",\"condit";
    std::fs::write(&journal, lines.join("\n") + "\n").expect("corrupt");

    let report = store.run(&["report", &id]);
    report.assert_stderr_contains(&format!("{}:3: not a valid unit record", journal.display()));
    assert_eq!(store.only_run()["status"], "damaged");
    let resumed = store.run(&["run", "--resume"]);
    resumed.assert_code(0);
    resumed.assert_stderr_contains("ran 1 units");
    assert_eq!(store.only_run()["status"], "complete");
}

#[test]
fn the_drift_guard_refuses_a_changed_configuration_and_force_records_it() {
    let store = new_store();
    store.run(&["run", "--replicates", "2", "--set", "temperature=0.9"]).assert_code(0);
    let id = store.only_run()["id"].as_str().expect("id").to_owned();

    // Raising --replicates on an unchanged configuration is not drift: it adds replicates.
    let more = store.run(&["run", "--resume", &id, "--replicates", "3"]);
    more.assert_code(0);
    more.assert_stderr_contains("ran 3 units");
    assert_eq!(store.only_run()["units_planned"], 9);

    let refused = store.run(&["run", "--resume", &id, "--replicates", "4", "--set", "temperature=0.5"]);
    refused.assert_code(2);
    refused.assert_stderr_contains("cannot be resumed");
    refused.assert_stderr_contains("conditions.baseline.params.temperature: 0.9 -> 0.5");
    refused.assert_stderr_contains("--force");
    assert_eq!(store.only_run()["units_planned"], 9, "a refused resume must not change the run");

    let forced = store.run(&["run", "--resume", &id, "--replicates", "4", "--set", "temperature=0.5", "--force"]);
    forced.assert_code(0);
    let run = store.only_run();
    assert_eq!(run["units_planned"], 12);
    assert_eq!(run["status"], "complete");
    let sessions: Vec<Value> = std::fs::read_dir(store.run_dir(&id))
        .expect("run dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("session-")))
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).expect("session")).expect("session json"))
        .collect();
    let forced_sessions: Vec<&Value> = sessions.iter().filter(|s| s["forced"] == true).collect();
    assert_eq!(forced_sessions.len(), 1, "{sessions:?}");
    let drift = forced_sessions[0]["drift"].to_string();
    assert!(drift.contains("temperature: 0.9 -> 0.5"), "{drift}");
}

#[test]
fn stream_into_a_closed_pipe_stops_cleanly_and_can_be_resumed() {
    let store = new_store();
    let mut child = store
        .process(&["stream", "--replicates", "10", "--jobs", "1", "--set", "think_ms=20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start stream");
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = std::io::BufReader::new(stdout);
    let mut lines = Vec::new();
    for _ in 0..2 {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut reader, &mut line).expect("read a line");
        lines.push(line);
    }
    drop(reader); // what `head -n 2` does
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll") {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "stream kept running after its stdout closed");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.code().is_some(), "stream must exit, not die of SIGPIPE: {status:?}");
    for line in &lines {
        let value: Value = serde_json::from_str(line).expect("each line is JSON");
        assert_eq!(value["type"], "unit");
        assert_eq!(value["status"], "ok");
    }
    let run = store.only_run();
    assert_eq!(run["status"], "incomplete", "{run}");
    assert!(run["units_done"].as_u64().expect("done") >= 2);

    let resumed = store.run(&["stream", "--resume"]);
    resumed.assert_code(0);
    let lines = resumed.json_lines();
    let last = lines.last().expect("a summary line");
    assert_eq!(last["type"], "summary");
    assert_eq!(last["conditions"]["baseline"]["win"]["n"], 10);
    assert_eq!(store.only_run()["status"], "complete");
}

#[test]
fn stream_prints_one_unit_line_per_unit_then_a_summary() {
    let store = new_store();
    let out = store.run(&["stream", "--replicates", "3", "--events"]);
    out.assert_code(0);
    let lines = out.json_lines();
    let units: Vec<&Value> = lines.iter().filter(|l| l["type"] == "unit").collect();
    assert_eq!(units.len(), 9);
    assert!(lines.iter().any(|l| l["type"] == "event" && l["name"] == "round"));
    let summary = lines.last().expect("summary");
    assert_eq!(summary["type"], "summary");
    let run = store.only_run()["id"].clone();
    assert!(units.iter().all(|u| u["run"] == run));
    // The summary is `report RUN --json` without the units: aggregates and decided hypotheses.
    let report = store.run(&["report", run.as_str().expect("id"), "--json"]);
    let mut expected = report.json();
    expected.as_object_mut().expect("object").remove("units");
    expected.as_object_mut().expect("object").insert("type".into(), "summary".into());
    assert_eq!(summary, &expected);
    assert_eq!(summary["hypotheses"][0]["hypothesis"], "dolphin.win < baseline.win", "{summary}");
}

#[test]
fn artifacts_land_under_the_run_by_condition_and_replicate() {
    let store = new_store();
    store.run(&["run", "--replicates", "2", "--set", "transcript=true"]).assert_code(0);
    let id = store.only_run()["id"].as_str().expect("id").to_owned();
    for condition in ["baseline", "dolphin", "dolphin_spoilers"] {
        for replicate in 0..2 {
            let path =
                store.run_dir(&id).join("artifacts").join(condition).join(replicate.to_string()).join("transcript.txt");
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(text.starts_with("round 1: "), "{text}");
        }
    }
}

#[test]
fn debug_run_reproduces_a_stored_unit_bit_for_bit() {
    let store = new_store();
    store.run(&["run", "--replicates", "3", "--seed", "11"]).assert_code(0);
    let id = store.only_run()["id"].as_str().expect("id").to_owned();
    let out = store.run(&["debug", "dolphin", "--replicate", "2", "--run", &id]);
    out.assert_code(0);
    out.assert_stdout_contains("matches the stored unit");

    let unknown = store.run(&["debug", "dolphin", "--run", "no-such-run"]);
    unknown.assert_code(2);
    unknown.assert_stderr_contains("no run 'no-such-run'");
}

#[test]
fn resume_without_anything_to_resume_says_so() {
    let store = new_store();
    let out = store.run(&["run", "--resume"]);
    out.assert_code(2);
    out.assert_stderr_contains("no unfinished run of experiment 'social_deception'");
    let bad = store.run(&["report", "nope"]);
    bad.assert_code(2);
    bad.assert_stderr_contains("no run 'nope'");
}
