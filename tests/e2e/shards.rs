//! End-to-end tests of shards without a scheduler: three shard processes of one run at once on
//! one store, one of them SIGKILLed and resumed, against a single-process run of the same seed;
//! one live writer per shard (a second process on the same units is refused); `status`; and bad
//! `--shard`/`submit` input refused before any unit runs.

use std::time::{Duration, Instant};

use crystallize_tests::{records_per_unit, shell_split, units_by_key, Store, TempDir};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_social_deception");

/// 6 replicates of 3 conditions, slow enough (a few seconds per shard) to be caught running.
const PLAN: [&str; 6] = ["--replicates", "6", "--seed", "9", "--set", "think_ms=200"];

fn status(store: &Store, run: &str) -> Value {
    let out = store.run(&["status", run, "--json"]);
    out.assert_code(0);
    out.json()
}

/// Polls `what` every 20 ms until it holds; fails after a generous minute.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn three_shards_at_once_one_killed_and_resumed_record_what_one_process_records() {
    let reference = Store::new(BIN);
    let mut args = vec!["run", "--json", "--jobs", "2"];
    args.extend(PLAN);
    let expected = reference.run(&args);
    expected.assert_code(0);
    let expected = units_by_key(&expected.json());
    assert_eq!(expected.len(), 18);

    let store = Store::new(BIN);
    let id = "sweep-1";
    let mut children: Vec<std::process::Child> = (0..3)
        .map(|index| {
            let shard = format!("{index}/3");
            let mut args = vec!["run", "--run-id", id, "--shard", shard.as_str(), "--jobs", "1"];
            args.extend(PLAN);
            store.spawn(&args)
        })
        .collect();
    let run_dir = store.run_dir(id);

    // While shard 0 runs, a second process for its units (the same shard, or every unit) is
    // refused, naming the holder; a process planning the run differently is refused too.
    wait_for("shard 0's lease", || run_dir.join("lease-0-of-3.json").exists());
    let holder = children[0].id();
    for args in [vec!["run", "--resume", id, "--shard", "0/3"], vec!["run", "--resume", id]] {
        let refused = store.run(&args);
        refused.assert_code(2);
        refused.assert_stderr_contains("are being run by another process: shard 0/3 (host");
        refused.assert_stderr_contains(&format!("pid {holder}"));
        refused.assert_stderr_contains("lease-0-of-3.json");
        refused.assert_stderr_contains("nothing was run");
    }
    let mut other = vec!["run", "--run-id", id, "--shard", "1/3"];
    other.extend(PLAN);
    other[6] = "7";
    let drifted = store.run(&other);
    drifted.assert_code(2);
    drifted.assert_stderr_contains(&format!("run {id} exists with another configuration"));
    drifted.assert_stderr_contains("replicates: 0..6 -> 0..7");

    // SIGKILL shard 2 once it has recorded a unit (its lease stays behind, its units in flight
    // are lost).
    wait_for("a unit of shard 2", || {
        run_dir.join("manifest.json").exists() && status(&store, id)["shards"][2]["done"].as_u64() >= Some(1)
    });
    children[2].kill().expect("SIGKILL shard 2");
    children[2].wait().expect("reap shard 2");
    for child in &mut children[..2] {
        let code = child.wait().expect("wait for a shard");
        assert!(code.success(), "shards 0 and 1 succeed: {code}");
    }

    let seen = status(&store, id);
    assert_eq!(seen["shard_count"], 3, "{seen:#}");
    assert_eq!(seen["shards"][0]["complete"], true, "{seen:#}");
    assert_eq!(seen["shards"][2]["complete"], false, "shard 2 was killed before its end: {seen:#}");
    assert_eq!(seen["stale_leases"].as_array().map(Vec::len), Some(1), "the killed shard's lease: {seen:#}");
    assert!(seen["live_writers"].as_array().is_some_and(Vec::is_empty), "{seen:#}");
    let commands: Vec<&str> = seen["commands"].as_array().expect("commands").iter().filter_map(Value::as_str).collect();
    assert_eq!(commands.len(), 1, "{seen:#}");
    assert!(commands[0].contains(&format!("--resume {id} --shard 2/3 --store ")), "{}", commands[0]);
    let text = store.run(&["status", id]);
    text.assert_code(0);
    text.assert_stdout_contains("2/3");
    text.assert_stdout_contains("stopped: stale lease of host");
    text.assert_stdout_contains("to complete it, run:");

    // The command `status` printed completes the run, taking the dead process's lease over.
    let words = shell_split(commands[0]).expect("a shell command");
    let word_refs: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    let resumed = store.run(&word_refs);
    resumed.assert_code(0);
    resumed.assert_stderr_contains("took over the lease of shard 2/3");
    resumed.assert_stderr_contains("is no longer running on this host");

    let report = store.run(&["report", id, "--json"]);
    report.assert_code(0);
    assert_eq!(units_by_key(&report.json()), expected, "sharded metrics differ from the single-process run");
    let counts = records_per_unit(&run_dir);
    assert_eq!(counts.len(), 18, "{counts:?}");
    assert!(counts.values().all(|n| *n == 1), "no unit was recorded twice: {counts:?}");

    // Done is done: resuming the shard or the run is a success with nothing to do.
    for args in [vec!["run", "--resume", id, "--shard", "2/3"], vec!["run", "--resume", id], vec!["run", "--resume"]] {
        let again = store.run(&args);
        again.assert_code(0);
        again.assert_stderr_contains("nothing to do: every unit of");
    }
    let leases: Vec<String> = std::fs::read_dir(&run_dir)
        .expect("run dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.contains("lease"))
        .collect();
    assert!(leases.is_empty(), "every lease was given back: {leases:?}");
    let done = status(&store, id);
    assert_eq!(done["status"], "complete");
    assert!(done["commands"].as_array().is_some_and(Vec::is_empty), "{done:#}");
}

#[test]
fn shard_auto_reads_a_slurm_array_with_a_nonzero_start() {
    let store = Store::new(BIN);
    let out = store
        .command(&["run", "--run-id", "auto-1", "--shard", "auto", "--replicates", "5", "--json"])
        .envs([("SLURM_ARRAY_TASK_ID", "4"), ("SLURM_ARRAY_TASK_MIN", "3"), ("SLURM_ARRAY_TASK_COUNT", "2")])
        .run();
    out.assert_code(0);
    out.assert_stderr_contains("shard 1/2 of run auto-1 is done; the run has 6 of 15 units: `");
    out.assert_stderr_contains(" status auto-1` shows the other shards");
    // Task 4 of an array 3-4 is shard 1/2: the odd replicates, every condition.
    let counts = records_per_unit(&store.run_dir("auto-1"));
    let replicates: Vec<u64> = counts.keys().map(|(_, r)| *r).collect();
    assert_eq!(counts.len(), 6, "{counts:?}");
    assert!(replicates.iter().all(|r| r % 2 == 1), "{counts:?}");
    let seen = status(&store, "auto-1");
    assert_eq!(seen["shards"][0]["started"], false, "{seen:#}");
    assert_eq!(seen["never_started"], serde_json::json!([0]), "{seen:#}");
}

#[test]
fn bad_shards_and_submissions_are_refused_before_any_unit_runs() {
    let store = Store::new(BIN);
    let cases: [(&[&str], &str); 5] = [
        (&["run", "--shard", "3/2"], "shards are numbered from 0: N=2 has shards 0/2 to 1/2"),
        (&["run", "--shard", "0/0"], "the shard count N must be 1 to 100000"),
        (&["run", "--shard", "x"], "write I/N"),
        (&["run", "--shard", "auto"], "no job array variables in the environment"),
        (&["run", "--run-id", "../up", "--shard", "0/2"], "invalid --run-id '../up'"),
    ];
    for (args, message) in cases {
        let out = store.run(args);
        out.assert_code(2);
        out.assert_stderr_contains(message);
    }
    let k8s = store.command(&["run", "--shard", "auto"]).env("JOB_COMPLETION_INDEX", "1").run();
    k8s.assert_code(2);
    k8s.assert_stderr_contains("pass --shard-count N or set CRYSTALLIZE_SHARD_COUNT");

    let relative = store.run(&["submit", "slurm", "social_deception", "--shards", "2", "--store", "rel/store"]);
    relative.assert_code(2);
    relative.assert_stderr_contains("submit needs the absolute path of a store");
    let missing = store.path().join("nowhere");
    let absent =
        store.command(&["submit", "slurm", "social_deception", "--shards", "2"]).arg("--store").arg(&missing).run();
    absent.assert_code(2);
    absent.assert_stderr_contains("it is not an existing directory");

    let empty_path = TempDir::new();
    let no_sbatch = store
        .command(&["submit", "slurm", "social_deception", "--shards", "2", "--replicates", "4"])
        .arg("--store")
        .arg(store.path())
        .env("PATH", empty_path.path())
        .run();
    no_sbatch.assert_code(2);
    no_sbatch.assert_stderr_contains("sbatch is not installed here (not found on PATH)");

    let dry = store
        .command(&["submit", "slurm", "social_deception", "--shards", "2", "--replicates", "4", "--dry-run"])
        .arg("--store")
        .arg(store.path())
        .env("PATH", empty_path.path())
        .run();
    dry.assert_code(0);
    dry.assert_stdout_contains("#SBATCH --array=0-1");
    dry.assert_stdout_contains("--shard auto");
    dry.assert_stdout_contains(&format!("--store {}", store.path().display()));
    dry.assert_stderr_contains("dry run: nothing was created or submitted");
    assert!(store.runs().is_empty(), "nothing was started");
}

#[test]
fn a_stalled_writer_past_the_lease_window_is_taken_over_and_stops_when_it_wakes() {
    let store = Store::new(BIN);
    let id = "stall-1";
    let plan = ["--replicates", "4", "--seed", "3", "--set", "think_ms=300", "--jobs", "1", "--lease-stale", "1s"];
    let mut args = vec!["run", "--run-id", id];
    args.extend(plan);
    let first = store
        .process(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the first writer");
    let lease = store.run_dir(id).join("lease-0-of-1.json");
    wait_for("the first writer's lease", || lease.exists());
    // Stopped (alive, but its heartbeat thread no longer beats), until its heartbeat is stale.
    let signal = |name: &str| {
        let sent = std::process::Command::new("kill").arg(name).arg(first.id().to_string()).status().expect("kill");
        assert!(sent.success(), "kill {name}");
    };
    signal("-STOP");
    wait_for("the stopped writer's heartbeat to be 1.5 s old", || {
        let Ok(text) = std::fs::read_to_string(&lease) else { return false };
        let Ok(record) = serde_json::from_str::<Value>(&text) else { return false };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis();
        record["heartbeat_ms"].as_u64().is_some_and(|beat| now.saturating_sub(u128::from(beat)) > 1500)
    });
    let taker = store.run(&["run", "--resume", id, "--lease-stale", "1s"]);
    signal("-CONT");
    taker.assert_code(0);
    taker.assert_stderr_contains("took over the lease of shard 0/1");
    taker.assert_stderr_contains("its last heartbeat was");
    let output = first.wait_with_output().expect("the first writer ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("was taken over by another process"), "the stalled writer stops:\n{stderr}");
    let seen = status(&store, id);
    assert_eq!(seen["status"], "complete", "{seen:#}");
    assert!(
        seen["live_writers"].as_array().is_some_and(Vec::is_empty)
            && seen["stale_leases"].as_array().is_some_and(Vec::is_empty),
        "{seen:#}"
    );
}

#[test]
fn an_interrupted_writer_gives_its_lease_back() {
    let store = Store::new(BIN);
    let mut args = vec!["run", "--run-id", "term-1", "--shard", "0/2", "--jobs", "1"];
    args.extend(PLAN);
    let mut child = store.spawn(&args);
    let lease = store.run_dir("term-1").join("lease-0-of-2.json");
    wait_for("the lease", || lease.exists());
    let sent = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill");
    assert!(sent.success());
    let code = child.wait().expect("the writer ends");
    assert_eq!(code.code(), Some(130), "interrupted");
    assert!(!lease.exists(), "SIGTERM (like Ctrl-C) gives the lease back");
    let seen = status(&store, "term-1");
    assert!(seen["stale_leases"].as_array().is_some_and(Vec::is_empty), "{seen:#}");
    assert_eq!(seen["commands"].as_array().map(Vec::len), Some(2), "both shards are missing units: {seen:#}");
}
