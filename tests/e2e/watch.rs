//! End-to-end tests of live visibility in the `social_deception` example: `watch` following a run
//! that another process is running, `watch` on finished, stopped and missing runs, the events log
//! in the store, the progress display (none when stderr is piped; a bar with an ETA on a
//! terminal), `debug` printing each round while the game plays, and a user-written observer
//! attached in the experiment's attribute.
//!
//! Every command runs in a fresh temporary directory, whose `.crystallize/` is the store.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crystallize_tests::{Command, Output, TempDir};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_social_deception");

/// Starts the example in the background in `dir`, as a user would in another terminal.
fn spawn(dir: &Path, args: &[&str]) -> Child {
    let mut command = std::process::Command::new(BIN);
    command.args(args).current_dir(dir).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    crystallize_tests::clear_environment(&mut command);
    command.spawn().unwrap_or_else(|error| panic!("could not start {BIN} {args:?}: {error}"))
}

/// Kills a background process when dropped, so a failing test leaves nothing running.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Background {
    /// Waits for it to exit (at most `timeout`); returns its exit code and stderr.
    fn wait(&mut self, timeout: Duration) -> (Option<i32>, String) {
        let started = Instant::now();
        loop {
            match self.0.try_wait() {
                Ok(Some(status)) => {
                    let mut stderr = String::new();
                    if let Some(mut pipe) = self.0.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
                    }
                    return (status.code(), stderr);
                }
                Ok(None) if started.elapsed() < timeout => std::thread::sleep(Duration::from_millis(20)),
                _ => panic!("the background run did not finish within {timeout:?}"),
            }
        }
    }
}

/// The run directories in `dir`'s store.
fn run_dirs(dir: &Path) -> Vec<PathBuf> {
    let runs = dir.join(".crystallize").join("runs");
    let mut found: Vec<PathBuf> = std::fs::read_dir(runs)
        .map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.join("manifest.json").exists()).collect())
        .unwrap_or_default();
    found.sort();
    found
}

/// Waits until a run exists in `dir`'s store and one of its files starting with `prefix` has at
/// least `lines` lines.
fn wait_for(dir: &Path, prefix: &str, lines: usize) -> PathBuf {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if let Some(run) = run_dirs(dir).pop() {
            let count: usize = std::fs::read_dir(&run)
                .map(|entries| {
                    entries
                        .flatten()
                        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default().lines().count())
                        .sum()
                })
                .unwrap_or(0);
            if count >= lines {
                return run;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no run with {lines} lines in {prefix}* appeared in {}", dir.display());
}

fn run_id(run: &Path) -> String {
    run.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// `(done, planned)` from a `watch` log line ending in `(N/M done...)`.
fn counts(line: &str) -> Option<(usize, usize)> {
    let inside = line.rsplit_once('(')?.1;
    let (done, rest) = inside.split_once('/')?;
    let planned = rest.split(|c: char| !c.is_ascii_digit()).next()?;
    Some((done.parse().ok()?, planned.parse().ok()?))
}

#[test]
fn watch_sees_counts_grow_while_a_run_proceeds_in_another_process() {
    let dir = TempDir::new();
    let mut run = Background(spawn(dir.path(), &["run", "--replicates", "4", "--set", "think_ms=60", "--jobs", "1"]));
    // Start watching as soon as the run exists, as a user in another terminal would.
    wait_for(dir.path(), "session-", 1);

    let mut watch = std::process::Command::new(BIN);
    crystallize_tests::clear_environment(&mut watch);
    watch
        .args(["watch", "--interval", "50", "--timeout", "120"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut watch = Background(watch.spawn().expect("start watch"));
    let stdout = watch.0.stdout.take().expect("watch stdout");
    // Each line with the moment it arrived.
    let mut lines: Vec<(Instant, String)> = Vec::new();
    for line in BufReader::new(stdout).lines() {
        match line {
            Ok(line) => lines.push((Instant::now(), line)),
            Err(_) => break,
        }
    }
    let (watch_code, watch_stderr) = watch.wait(Duration::from_secs(120));
    let (run_code, run_stderr) = run.wait(Duration::from_secs(120));
    let transcript = lines.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>().join("\n");
    let context = format!("watch stdout:\n{transcript}\nwatch stderr:\n{watch_stderr}\nrun stderr:\n{run_stderr}");

    assert_eq!(run_code, Some(0), "{context}");
    assert_eq!(watch_code, Some(0), "watch ends when the run completes: {context}");
    assert!(lines.first().is_some_and(|(_, l)| l.starts_with("watching run social_deception-")), "{context}");
    assert!(transcript.contains("3 conditions x 4 replicates = 12 units"), "{context}");

    let units: Vec<(Instant, (usize, usize))> =
        lines.iter().filter(|(_, l)| l.starts_with("unit ")).filter_map(|(t, l)| Some((*t, counts(l)?))).collect();
    let done: Vec<usize> = units.iter().map(|(_, (done, _))| *done).collect();
    assert_eq!(done, (1..=12).collect::<Vec<_>>(), "one line per finished unit, counts growing: {context}");
    assert!(units.iter().all(|(_, (_, planned))| *planned == 12), "{context}");
    // The lines arrived as the units finished, not all at the end: watch saw the counts grow.
    let first = units.first().map(|(t, _)| *t).expect("unit lines");
    let last = units.last().map(|(t, _)| *t).expect("unit lines");
    assert!(last.duration_since(first) >= Duration::from_millis(300), "unit lines all arrived at once: {context}");
    let polls_with_units: std::collections::BTreeSet<u128> =
        units.iter().map(|(t, _)| t.duration_since(first).as_millis() / 40).collect();
    assert!(polls_with_units.len() >= 3, "units seen over at least 3 polls: {context}");

    // Events are followed too: every round of every game, tagged with its unit.
    let events = lines.iter().filter(|(_, l)| l.starts_with("event ")).count();
    assert!(events >= 12, "at least one round per game: {context}");
    assert!(lines.iter().any(|(_, l)| l.starts_with("event dolphin #") && l.contains("round {")), "{context}");

    // It ends with the per-condition view (running means) and the verdict.
    assert!(transcript.contains("baseline") && transcript.contains("win "), "means per condition: {context}");
    assert!(lines.last().is_some_and(|(_, l)| l.contains("complete: 12/12 units done, 0 failed")), "{context}");
    assert!(!transcript.contains('\u{1b}'), "no control codes when piped: {context}");
}

/// Runs the example in `dir` (which keeps the store between commands).
fn sd_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN).args(args).current_dir(dir).run()
}

#[test]
fn watch_of_a_finished_run_shows_its_final_view_and_a_missing_run_is_an_error() {
    let dir = TempDir::new();
    sd_in(dir.path(), &["run", "--replicates", "2", "--set", "crash_on_replicate=1"]).assert_code(1);
    let run = run_id(&run_dirs(dir.path())[0]);

    // Nothing is in progress: name a run.
    let none = sd_in(dir.path(), &["watch"]);
    none.assert_code(2).assert_stderr_contains("no run in progress");
    none.assert_stderr_contains(&run);

    let out = sd_in(dir.path(), &["watch", &run[..run.len() - 2]]);
    out.assert_code(1); // complete, with failures
    out.assert_stdout_contains(&format!("run {run} complete with failures: 3/6 units done, 3 failed"));
    let failures = out.stdout_lines().iter().filter(|l| l.contains("FAILED (seed")).count();
    out.check_eq(failures, 3, "each failure once, with its seed");
    out.assert_stdout_contains("simulated crash in replicate 1");

    sd_in(dir.path(), &["watch", "nope"]).assert_code(2).assert_stderr_contains("nope");
    sd_in(dir.path(), &["watch", "--interval", "0"]).assert_code(2);
}

#[test]
fn watch_gives_up_after_its_timeout_and_notices_a_run_whose_process_died() {
    let dir = TempDir::new();
    let mut run = Background(spawn(dir.path(), &["run", "--replicates", "50", "--set", "think_ms=100", "--jobs", "1"]));
    wait_for(dir.path(), "journal-", 1);

    let timed_out = Command::new(BIN).args(["watch", "--timeout", "1"]).current_dir(dir.path()).run();
    timed_out.assert_code(1).assert_stderr_contains("still incomplete");

    // SIGKILL: no chance to write anything more. `watch` sees that no process runs it any more.
    run.0.kill().expect("kill the run");
    let _ = run.0.wait();
    let stopped = Command::new(BIN)
        .args(["watch", "--interval", "20", "--timeout", "60"])
        .current_dir(dir.path())
        .timeout(Duration::from_secs(90))
        .run();
    if Path::new("/proc/self").exists() {
        stopped.assert_code(1).assert_stderr_contains("no process is running it");
        stopped.assert_stderr_contains("--resume");
    }
}

#[test]
fn a_run_stores_an_events_log_in_order_per_unit() {
    let dir = TempDir::new();
    sd_in(dir.path(), &["run", "--replicates", "3", "--jobs", "2"]).assert_code(0);
    let run = run_dirs(dir.path()).pop().expect("a run");
    let logs: Vec<PathBuf> = std::fs::read_dir(&run)
        .expect("run dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("events-")))
        .collect();
    assert_eq!(logs.len(), 1, "one events log per writer: {logs:?}");
    let journal = logs[0].to_string_lossy().replace("events-", "journal-");
    assert!(Path::new(&journal).exists(), "beside the journal of the same writer");

    let text = std::fs::read_to_string(&logs[0]).expect("events log");
    let mut per_unit: std::collections::BTreeMap<(String, u64), Vec<String>> = Default::default();
    for line in text.lines() {
        let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(value["schema"], 1, "{line}");
        let kind = value["type"].as_str().expect("type").to_owned();
        let unit =
            (value["condition"].as_str().expect("condition").to_owned(), value["replicate"].as_u64().expect("r"));
        assert!(value["unix_ms"].as_u64().is_some(), "{line}");
        if kind == "event" {
            assert_eq!(value["name"], "round", "{line}");
            assert!(value["payload"]["round"].as_u64().is_some(), "{line}");
            assert!(value["elapsed_ms"].as_f64().is_some(), "{line}");
        }
        per_unit.entry(unit).or_default().push(kind);
    }
    assert_eq!(per_unit.len(), 9, "every unit: {per_unit:?}");
    for (unit, kinds) in &per_unit {
        assert_eq!(kinds.first().map(String::as_str), Some("unit_started"), "{unit:?}: {kinds:?}");
        assert_eq!(kinds.last().map(String::as_str), Some("unit_finished"), "{unit:?}: {kinds:?}");
        assert!(kinds[1..kinds.len() - 1].iter().all(|k| k == "event"), "{unit:?}: {kinds:?}");
        assert!(kinds.len() >= 3, "at least one round: {unit:?}: {kinds:?}");
    }
}

#[test]
fn a_piped_run_writes_no_control_codes() {
    let out = Command::new(BIN).args(["run", "--replicates", "3", "--set", "think_ms=20"]).run();
    out.assert_code(0);
    out.check(!out.stderr.contains('\u{1b}'), "no escape sequences on a piped stderr");
    out.check(!out.stderr.contains('\r'), "no carriage returns on a piped stderr");
    out.check(!out.stdout.contains('\u{1b}'), "no escape sequences on a piped stdout");
}

/// Runs `command` under a pseudo-terminal with util-linux `script`, when there is one; returns
/// what the terminal showed.
fn in_terminal(dir: &Path, command: &str) -> Option<String> {
    let probe = std::process::Command::new("script").arg("--version").output().ok()?;
    if !probe.status.success() || !String::from_utf8_lossy(&probe.stdout).contains("util-linux") {
        return None;
    }
    let mut script = std::process::Command::new("script");
    // The caller's CRYSTALLIZE_STORE, NO_COLOR... would reach the command through `script`.
    crystallize_tests::clear_environment(&mut script);
    let output = script
        .args(["-qec", command, "/dev/null"])
        .current_dir(dir)
        .env("TERM", "xterm")
        .env("COLUMNS", "120")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    assert!(output.status.success(), "{command} failed under script: {}", String::from_utf8_lossy(&output.stderr));
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn a_run_in_a_terminal_shows_a_live_bar_with_counts_per_condition_and_an_eta() {
    let dir = TempDir::new();
    let command = format!("{BIN} run --replicates 3 --jobs 1 --set think_ms=40");
    let Some(screen) = in_terminal(dir.path(), &command) else {
        eprintln!("skipped: util-linux `script` is not available to provide a terminal");
        return;
    };
    assert!(screen.contains('\u{1b}'), "the bar is drawn with control codes on a terminal:\n{screen}");
    assert!(screen.contains("social_deception ["), "the total bar names the experiment:\n{screen}");
    assert!(screen.contains("/9 units"), "units done / planned:\n{screen}");
    assert!(screen.contains("ETA "), "an ETA:\n{screen}");
    assert!(screen.contains("/s") || screen.contains("/min"), "a rate:\n{screen}");
    for condition in ["baseline", "dolphin", "dolphin_spoilers"] {
        assert!(screen.contains(&format!("  {condition} ")), "a line for {condition}:\n{screen}");
    }
    assert!(screen.contains("/3"), "done / planned per condition:\n{screen}");
    // The table comes after the bar is cleared.
    assert!(screen.contains("condition") && screen.contains("hallucinations"), "{screen}");
}

#[test]
fn debug_prints_each_round_while_the_game_plays() {
    let dir = TempDir::new();
    let mut debug = std::process::Command::new(BIN);
    crystallize_tests::clear_environment(&mut debug);
    debug
        .args(["debug", "dolphin", "--set", "think_ms=150"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut debug = Background(debug.spawn().expect("start debug"));
    let stdout = debug.0.stdout.take().expect("stdout");
    let lines: Vec<(Instant, String)> =
        BufReader::new(stdout).lines().map_while(Result::ok).map(|l| (Instant::now(), l)).collect();
    let (code, _) = debug.wait(Duration::from_secs(60));
    let transcript = lines.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>().join("\n");
    assert_eq!(code, Some(0), "{transcript}");
    let first_round = lines.iter().find(|(_, l)| l.contains("* round {")).unwrap_or_else(|| panic!("{transcript}"));
    let end = lines.iter().find(|(_, l)| l.starts_with("ok in ")).unwrap_or_else(|| panic!("{transcript}"));
    let rounds = lines.iter().filter(|(_, l)| l.contains("* round {")).count();
    assert!(rounds >= 2, "a game has at least two rounds: {transcript}");
    // Each round takes 150 ms: the first round's event was printed while the game went on.
    assert!(
        end.0.duration_since(first_round.0) >= Duration::from_millis(100),
        "the first round was printed {:?} before the unit ended:\n{transcript}",
        end.0.duration_since(first_round.0)
    );
}

#[test]
fn a_user_written_observer_attached_to_the_experiment_prints_the_events_of_one_condition() {
    let out = Command::new(BIN).args(["run", "--replicates", "2"]).env("FOLLOW_CONDITION", "dolphin").run();
    out.assert_code(0);
    out.assert_stderr_contains("[dolphin #0] round {");
    out.assert_stderr_contains("[dolphin #1] round {");
    out.check(!out.stderr.contains("[baseline #"), "only the followed condition");
    out.check(!out.stderr.contains("[dolphin_spoilers #"), "only the followed condition");

    let quiet = Command::new(BIN).args(["run", "--replicates", "1"]).run();
    quiet.assert_code(0);
    quiet.check(!quiet.stderr.contains("] round {"), "silent unless asked");
}
