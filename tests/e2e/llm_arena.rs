//! End-to-end tests of the `llm_arena` example: each test starts a fake Ollama server on
//! 127.0.0.1 (`crystallize_tests::fake_ollama`), runs the example's binary against it with
//! `OLLAMA_HOST` and a temporary store, and checks what a user would see. Nothing leaves this
//! machine; every server stops when its test ends.

use std::collections::BTreeMap;
use std::time::Duration;

use crystallize_tests::fake_ollama::{Behaviour, FakeOllama};
use crystallize_tests::{Output, Store};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_llm_arena");
const CONDITIONS: [&str; 3] = ["baseline", "dolphin", "warm"];
const METRICS: [&str; 5] = ["calls", "rounds", "score_a", "score_b", "win"];
/// The example's default rounds per game; each round asks both players once.
const ROUNDS: u64 = 5;
const CALLS_PER_GAME: u64 = 2 * ROUNDS;

/// Runs the example against `server` and `store`.
fn arena(store: &Store, server: &FakeOllama, args: &[&str]) -> Output {
    store.command(args).env("OLLAMA_HOST", server.url()).timeout(Duration::from_secs(120)).run()
}

/// (condition, replicate) -> (status, metrics, error message) of every unit of a `run --json`.
type Units = BTreeMap<(String, u64), (String, BTreeMap<String, f64>, String)>;

#[track_caller]
fn units(out: &Output) -> Units {
    let summary = out.json();
    let list = out.at(&summary, "/units").as_array().unwrap_or_else(|| out.fail("`units` is not an array"));
    list.iter()
        .map(|unit| {
            let key = (out.str_at(unit, "/condition").to_owned(), out.u64_at(unit, "/replicate"));
            let metrics = unit["metrics"]
                .as_object()
                .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_f64()?))).collect())
                .unwrap_or_default();
            let error = unit.pointer("/error/message").and_then(Value::as_str).unwrap_or("").to_owned();
            (key, (out.str_at(unit, "/status").to_owned(), metrics, error))
        })
        .collect()
}

#[test]
fn run_plays_every_unit_and_records_the_metrics() {
    let server = FakeOllama::start(Behaviour::default().latency(Duration::from_millis(2)));
    let store = Store::new(BIN);
    let out = arena(&store, &server, &["run", "--replicates", "3", "--json"]);
    out.assert_code(0);
    let units = units(&out);
    out.check_eq(units.len(), CONDITIONS.len() * 3, "units in the run");
    let mut calls = 0.0;
    for ((condition, replicate), (status, metrics, _)) in &units {
        out.check_eq(status.as_str(), "ok", format!("status of {condition} #{replicate}"));
        out.check_eq(metrics.keys().map(String::as_str).collect::<Vec<_>>(), METRICS.to_vec(), "metric names");
        out.check_eq(metrics["rounds"], ROUNDS as f64, "rounds per game");
        out.check_eq(metrics["calls"], CALLS_PER_GAME as f64, "calls per game (no failures)");
        out.check(metrics["score_a"] <= ROUNDS as f64 && metrics["score_b"] <= ROUNDS as f64, "scores within rounds");
        calls += metrics["calls"];
    }
    // The server saw exactly the calls the games counted: units x calls per game.
    out.check_eq(server.requests(), units.len() as u64 * CALLS_PER_GAME, "requests the server saw");
    out.check_eq(calls as u64, server.requests(), "sum of the `calls` metric");
}

#[test]
fn same_seed_same_metrics_with_one_or_three_jobs() {
    // Latency makes concurrent requests overlap at the server, so `--jobs 3` is really concurrent.
    let server = FakeOllama::start(Behaviour::default().latency(Duration::from_millis(10)));
    let serial_store = Store::new(BIN);
    let serial = arena(&serial_store, &server, &["run", "--replicates", "3", "--seed", "7", "--jobs", "1", "--json"]);
    serial.assert_code(0);
    serial.check_eq(server.max_in_flight(), 1, "requests in flight at once with --jobs 1");

    let parallel_store = Store::new(BIN);
    let parallel =
        arena(&parallel_store, &server, &["run", "--replicates", "3", "--seed", "7", "--jobs", "3", "--json"]);
    parallel.assert_code(0);
    parallel.check(server.max_in_flight() <= 3, format!("at most 3 in flight, saw {}", server.max_in_flight()));
    parallel.check_eq(units(&parallel), units(&serial), "units of --jobs 3 and of --jobs 1");
}

#[test]
fn the_dolphin_player_scores_worse_over_many_games() {
    // The fake dolphin answers right 45% of the time, llama 80%: over 10 replicates x 5 rounds
    // the difference shows whatever the hash draws (the fake is deterministic, so this is stable).
    let server = FakeOllama::start(Behaviour::default());
    let store = Store::new(BIN);
    let out = arena(&store, &server, &["run", "--replicates", "10", "--json"]);
    out.assert_code(0);
    let summary = out.json();
    let baseline = out.f64_at(&summary, "/conditions/baseline/score_b/mean");
    let dolphin = out.f64_at(&summary, "/conditions/dolphin/score_b/mean");
    out.check(dolphin < baseline, format!("dolphin's score_b {dolphin} < baseline's {baseline}"));
}

#[test]
fn debug_dolphin_shows_each_round_live() {
    let server = FakeOllama::start(Behaviour::default());
    let store = Store::new(BIN);
    let out = arena(&store, &server, &["debug", "dolphin"]);
    out.assert_code(0);
    let text = format!("{}{}", out.stdout, out.stderr);
    let rounds = text.lines().filter(|l| l.contains("round") && l.contains("\"question\"")).count();
    out.check_eq(rounds as u64, ROUNDS, "round events printed");
    out.check(text.contains("dolphin-llama3:latest"), "the dolphin model is named");
    out.check_eq(server.requests(), CALLS_PER_GAME, "requests of one game");
}

#[test]
fn a_failing_server_fails_every_unit_and_resume_completes_once_it_recovers() {
    let server = FakeOllama::start(Behaviour::default().failure_rate(1.0));
    let store = Store::new(BIN);
    let failed = arena(&store, &server, &["run", "--replicates", "2", "--json"]);
    failed.assert_code(1);
    let units_failed = units(&failed);
    let n = CONDITIONS.len() as u64 * 2;
    failed.check_eq(units_failed.len() as u64, n, "every unit recorded");
    let url = format!("{}/api/chat", server.url());
    for ((condition, replicate), (status, _, error)) in &units_failed {
        failed.check_eq(status.as_str(), "error", format!("status of {condition} #{replicate}"));
        failed.check(
            error.contains("HTTP 500") && error.contains(&url),
            format!("error of {condition} #{replicate} names the status and {url}: {error:?}"),
        );
    }
    // The first question fails on every attempt: 1 call + 2 retries (the `retries` default) each.
    failed.check_eq(server.requests(), n * 3, "requests: units x attempts of the first call");

    server.set_behaviour(Behaviour::default());
    let resumed = arena(&store, &server, &["run", "--resume", "--json"]);
    resumed.assert_code(0);
    let units_resumed = units(&resumed);
    resumed.check_eq(units_resumed.len() as u64, n, "units after resume");
    for ((condition, replicate), (status, metrics, _)) in &units_resumed {
        resumed.check_eq(status.as_str(), "ok", format!("status of {condition} #{replicate} after resume"));
        resumed.check_eq(metrics["calls"], CALLS_PER_GAME as f64, "calls per game");
    }
    resumed.check_eq(server.requests(), n * 3 + n * CALLS_PER_GAME, "requests: failed run, then full games");
}

#[test]
fn a_hanging_model_times_out_instead_of_hanging_the_run() {
    let server = FakeOllama::start(Behaviour::default().hang_model("slow-model"));
    let store = Store::new(BIN);
    let out = arena(
        &store,
        &server,
        &["debug", "baseline", "--set", "player_b=slow-model", "--set", "timeout_secs=1", "--set", "retries=0"],
    );
    out.assert_code(1);
    let text = format!("{}{}", out.stdout, out.stderr);
    out.check(text.contains("slow-model") && text.contains("no answer from"), "the timeout names the model");
    out.check(out.elapsed < Duration::from_secs(30), "gave up after the timeout");
}

#[test]
fn an_unreachable_server_is_named_in_the_error() {
    // A server started and stopped: its port is closed now, so the connection is refused.
    let url = FakeOllama::start(Behaviour::default()).url();
    let store = Store::new(BIN);
    let out = store
        .command(&["debug", "baseline", "--set", "retries=0"])
        .env("OLLAMA_HOST", url.trim_start_matches("http://"))
        .run();
    out.assert_code(1);
    let text = format!("{}{}", out.stdout, out.stderr);
    out.check(text.contains("could not connect") && text.contains(&url), format!("names {url}"));
}

#[test]
fn retries_ride_out_a_flaky_server_and_are_counted_as_calls() {
    // A fifth of the requests fail; with 5 retries a game fails only if one question fails six
    // times in a row (the faults are fixed by the hash, so this run is the same every time).
    let server = FakeOllama::start(Behaviour::default().failure_rate(0.2));
    let store = Store::new(BIN);
    let out = arena(&store, &server, &["run", "--replicates", "3", "--set", "retries=5", "--json"]);
    out.assert_code(0);
    let units = units(&out);
    let calls: f64 = units.values().map(|(_, metrics, _)| metrics["calls"]).sum();
    out.check(calls > (units.len() as u64 * CALLS_PER_GAME) as f64, format!("some calls were retries ({calls})"));
    out.check_eq(calls as u64, server.requests(), "the `calls` metric counts every request, retries included");
}

#[test]
fn the_ollama_limit_bounds_requests_in_flight_whatever_jobs() {
    // 18 games, 12 at once (`--jobs 12`), but each request is a `#[step(limit = "ollama")]` and the
    // experiment declares `limits(ollama = 4)`: the server never sees more than 4 at once.
    let server = FakeOllama::start(Behaviour::default().latency(Duration::from_millis(20)));
    let store = Store::new(BIN);
    let out = arena(&store, &server, &["run", "--replicates", "6", "--jobs", "12", "--json"]);
    out.assert_code(0);
    out.check_eq(units(&out).len(), CONDITIONS.len() * 6, "units in the run");
    let most = server.max_in_flight();
    out.check(most <= 4, format!("at most 4 requests in flight (the ollama limit), saw {most}"));
    out.check(most >= 2, format!("games ran concurrently: {most} request(s) in flight at most"));
}

#[test]
fn unit_retries_replay_games_a_flaky_server_broke_and_the_journal_and_report_say_so() {
    // No retries inside a game: each request that fails fails its game, as retryable.
    let server = FakeOllama::start(Behaviour::default().failure_rate(0.1));
    let store = Store::new(BIN);
    let args = ["run", "--replicates", "3", "--jobs", "1", "--set", "retries=0", "--retries", "12", "--json"];
    let out = arena(&store, &server, &args);
    out.assert_code(0);
    let summary = out.json();
    let retried = out.u64_at(&summary, "/failures/retried_units");
    out.check(retried > 0, "some games needed another attempt at 10% failed requests");
    let units = out.at(&summary, "/units").as_array().expect("units").clone();
    out.check(units.iter().all(|u| u["status"] == "ok"), "every unit succeeded in the end");
    // The journal keeps every failed attempt, with its error.
    let run = store.only_run()["id"].as_str().expect("id").to_owned();
    let journal: String = std::fs::read_dir(store.run_dir(&run))
        .expect("run dir")
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("journal-"))
        .map(|entry| std::fs::read_to_string(entry.path()).expect("journal"))
        .collect();
    out.check(journal.contains("\"attempts\":[{\"attempt\":1"), "failed attempts are in the journal");
    out.check(journal.contains("HTTP 500"), "with the server's error");

    // Same seed, healthy server: the same metrics as the retried run.
    let healthy = FakeOllama::start(Behaviour::default());
    let again = arena(&Store::new(BIN), &healthy, &args);
    again.assert_code(0);
    out.check_eq(units_metrics(&again.json()), units_metrics(&summary), "retried units equal units that never failed");
}

/// (condition, replicate) -> metrics of every unit of a `run --json`.
fn units_metrics(summary: &Value) -> Vec<(String, u64, String)> {
    let mut rows: Vec<(String, u64, String)> = summary["units"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| {
            (
                u["condition"].as_str().unwrap_or("").to_owned(),
                u["replicate"].as_u64().unwrap_or(0),
                u["metrics"].to_string(),
            )
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn the_limit_flag_caps_requests_in_flight_below_the_attribute() {
    let server = FakeOllama::start(Behaviour::default().latency(Duration::from_millis(20)));
    let store = Store::new(BIN);
    let out = arena(&store, &server, &["run", "--replicates", "6", "--jobs", "12", "--limit", "ollama=2", "--json"]);
    out.assert_code(0);
    out.check(server.max_in_flight() <= 2, format!("at most 2 requests at once, saw {}", server.max_in_flight()));
    out.check(server.max_in_flight() == 2, "and the limit is used");
    let bad = arena(&store, &server, &["run", "--limit", "olama=2"]);
    bad.assert_code(2).assert_stderr_contains("did you mean 'ollama'");
}

#[test]
fn crystallize_toml_sets_the_limit_timeout_and_retries_below_the_flags() {
    // A config file, named by CRYSTALLIZE_CONFIG: at most one request at once, and a unit
    // deadline of 2 s that a game against a hanging model (whose own request timeout is 60 s)
    // meets first.
    let server = FakeOllama::start(Behaviour::default().latency(Duration::from_millis(10)).hang_model("slow-model"));
    let store = Store::new(BIN);
    let config = store.path().join("crystallize.toml");
    let write = |text: &str| std::fs::write(&config, text).unwrap_or_else(|e| panic!("cannot write {config:?}: {e}"));
    write("timeout = \"2s\"\nretries = 0\n\n[limits]\nollama = 1\n");
    let with_config = |args: &[&str]| {
        store
            .command(args)
            .env("OLLAMA_HOST", server.url())
            .env("CRYSTALLIZE_CONFIG", &config)
            .timeout(Duration::from_secs(120))
            .run()
    };
    let out = with_config(&["run", "--replicates", "3", "--jobs", "6", "--json"]);
    out.assert_code(0);
    out.check_eq(server.max_in_flight(), 1, "requests in flight with `[limits] ollama = 1`");

    let hung = with_config(&[
        "run",
        "--replicates",
        "1",
        "--treatment",
        "dolphin",
        "--set",
        "player_b=slow-model",
        "--set",
        "timeout_secs=60",
        "--json",
    ]);
    hung.assert_code(1);
    let summary = hung.json();
    let failed: Vec<&Value> = hung
        .at(&summary, "/units")
        .as_array()
        .map(|units| units.iter().filter(|u| u["status"] == "error").collect())
        .unwrap_or_default();
    hung.check(!failed.is_empty(), "a game against the hanging model fails");
    for unit in failed {
        hung.check_eq(hung.str_at(unit, "/error/kind"), "timeout", "the failure is the file's unit timeout");
    }
    hung.check(hung.elapsed < Duration::from_secs(50), "the 2 s deadline ended it, not the 60 s request timeout");

    // The flag wins over the file.
    let flagged = with_config(&["run", "--replicates", "2", "--jobs", "6", "--limit", "ollama=3", "--json"]);
    flagged.assert_code(0);
    flagged.check(server.max_in_flight() <= 3, "--limit ollama=3 wins over the file's 1");

    write("[limits]\nolama = 2\n");
    let bad = with_config(&["run", "--replicates", "1"]);
    bad.assert_code(2).assert_stderr_contains("crystallize.toml:2").assert_stderr_contains("did you mean 'ollama'");
    write("timeout = \"5x\"\n");
    let bad = with_config(&["run", "--replicates", "1"]);
    bad.assert_code(2).assert_stderr_contains("crystallize.toml:1").assert_stderr_contains("'5x' is not a duration");
    out.check(
        !store.path().join("runs").read_dir().map(|d| d.count() > 3).unwrap_or(false),
        "bad files started no run",
    );
}

/// The `cache` field of every unit record in the run's journals: (condition, replicate) -> the
/// hits and misses of step `ask`.
fn journal_cache(store: &Store, run: &str) -> BTreeMap<(String, u64), (u64, u64)> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(store.run_dir(run)).expect("run dir").filter_map(Result::ok) {
        if !entry.file_name().to_string_lossy().starts_with("journal-") {
            continue;
        }
        for line in std::fs::read_to_string(entry.path()).expect("journal").lines() {
            let record: Value = serde_json::from_str(line).expect("a journal line is JSON");
            let ask = &record["cache"]["ask"];
            found.insert(
                (record["condition"].as_str().unwrap_or("").to_owned(), record["replicate"].as_u64().unwrap_or(0)),
                (ask["hits"].as_u64().unwrap_or(0), ask["misses"].as_u64().unwrap_or(0)),
            );
        }
    }
    found
}

/// The id of the latest run in `store`.
fn latest_run(store: &Store) -> String {
    let runs = store.run(&["runs", "--json"]);
    let list = runs.json();
    let last = list.as_array().and_then(|runs| runs.last()).unwrap_or_else(|| runs.fail("no run"));
    runs.str_at(last, "/id").to_owned()
}

#[test]
fn a_second_run_of_the_same_games_asks_the_server_nothing_and_records_the_same_metrics() {
    let server = FakeOllama::start(Behaviour::default());
    let store = Store::new(BIN);
    let games = CONDITIONS.len() as u64 * 10;
    let first = arena(&store, &server, &["run", "--replicates", "10", "--json"]);
    first.assert_code(0);
    let calls = server.requests();
    first.check_eq(calls, games * CALLS_PER_GAME, "requests of the first run: 3 conditions x 10 games");
    first.assert_stderr_contains(&format!("cache: 0 hits, {calls} misses"));
    let first_run = latest_run(&store);
    let misses = journal_cache(&store, &first_run);
    first.check_eq(misses.len() as u64, games, "every unit record counts its calls");
    first.check(misses.values().all(|&count| count == (0, CALLS_PER_GAME)), format!("all misses: {misses:?}"));

    let second = arena(&store, &server, &["run", "--replicates", "10", "--json"]);
    second.assert_code(0);
    second.check_eq(server.requests(), calls, "requests of the same run again: none");
    second.check_eq(units(&second), units(&first), "every unit's metrics, bit for bit");
    second.assert_stderr_contains(&format!("cache: {calls} hits, 0 misses"));
    let hits = journal_cache(&store, &latest_run(&store));
    second.check(hits.values().all(|&count| count == (CALLS_PER_GAME, 0)), format!("all hits: {hits:?}"));

    // What the store's cache holds, and its hit rate over both runs.
    let stats = store.run(&["cache", "stats", "--json"]);
    stats.assert_code(0);
    let stats_json = stats.json();
    let ask = stats_json["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["step"] == "ask"))
        .unwrap_or_else(|| stats.fail("no `ask` in cache stats"));
    stats.check_eq(stats.u64_at(ask, "/entries"), calls, "one entry per call");
    stats.check_eq((stats.u64_at(ask, "/hits"), stats.u64_at(ask, "/misses")), (calls, calls), "hits and misses");
    stats.check_eq(stats.f64_at(ask, "/hit_rate"), 0.5, "hit rate");

    // `--cache off` and `--refresh ask` ask again; `--cache read` serves and stores nothing.
    let off = arena(&store, &server, &["run", "--replicates", "2", "--cache", "off", "--json"]);
    off.assert_code(0);
    off.check_eq(server.requests(), calls + CONDITIONS.len() as u64 * 2 * CALLS_PER_GAME, "--cache off asks");
    let before = server.requests();
    let refreshed = arena(&store, &server, &["run", "--replicates", "2", "--refresh", "ask", "--json"]);
    refreshed.assert_code(0);
    refreshed.check_eq(server.requests(), before + CONDITIONS.len() as u64 * 2 * CALLS_PER_GAME, "--refresh asks");
    let before = server.requests();
    let read = arena(&store, &server, &["run", "--replicates", "11", "--cache", "read", "--json"]);
    read.assert_code(0);
    read.check_eq(server.requests(), before + CONDITIONS.len() as u64 * CALLS_PER_GAME, "only replicate 10 asks");
    let again = arena(&store, &server, &["run", "--replicates", "11", "--cache", "read", "--json"]);
    again.check_eq(server.requests(), before + 2 * CONDITIONS.len() as u64 * CALLS_PER_GAME, "read stored nothing");

    // `debug` reads the cache: the game is replayed from it, and each call says so.
    let before = server.requests();
    let debug = arena(&store, &server, &["debug", "dolphin", "--replicate", "3"]);
    debug.assert_code(0);
    debug.check_eq(server.requests(), before, "debug served from the cache");
    debug.assert_stdout_contains("\"outcome\":\"hit\"").assert_stdout_contains("\"fingerprint\"");
}

#[test]
fn cache_flags_naming_unknown_steps_or_an_unwritable_cache_fail_before_any_unit() {
    let server = FakeOllama::start(Behaviour::default());
    let store = Store::new(BIN);
    let typo = arena(&store, &server, &["run", "--refresh", "aks"]);
    typo.assert_code(2).assert_stderr_contains("unknown step 'aks'; did you mean 'ask'?");
    let uncached = arena(&store, &server, &["run", "--refresh", "score"]);
    uncached.assert_code(2).assert_stderr_contains("step 'score' is not cached");
    let clear = store.run(&["cache", "clear", "scor"]);
    clear.assert_code(2).assert_stderr_contains("cached steps: ask");
    let mode = arena(&store, &server, &["run", "--cache", "sometimes"]);
    mode.assert_code(2).assert_stderr_contains("off, read, write, on");
    mode.check_eq(server.requests(), 0, "requests: no unit ran");

    // A cache directory that cannot be written: a file where the directory should be.
    std::fs::create_dir_all(store.path()).expect("store dir");
    std::fs::write(store.path().join("cache"), b"not a directory").expect("file");
    let blocked = arena(&store, &server, &["run", "--replicates", "1"]);
    blocked.assert_code(2).assert_stderr_contains("is not writable").assert_stderr_contains("--cache off");
    blocked.check_eq(server.requests(), 0, "requests: no unit ran");
    let read_only = arena(&store, &server, &["run", "--replicates", "1", "--cache", "off"]);
    read_only.assert_code(0);
}

/// The example's sources, changed by `edits` (each `(from, to)` must occur exactly once, so that
/// an edit of the example breaks this test loudly instead of testing nothing).
fn edited(file: &str, edits: &[(&str, &str)]) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(file);
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for (from, to) in edits {
        assert_eq!(text.matches(from).count(), 1, "`{from}` must occur once in {}", path.display());
        text = text.replace(from, to);
    }
    text
}

/// Builds copies of the example, each a crate of its own with some of its code changed: a real
/// recompile, by cargo, in the target directory of this build (so only the copies and what
/// their workspace builds differently compile), offline. Returns each binary's path.
fn build_variants(variants: &[(&str, Vec<(&str, String)>)]) -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root");
    // CARGO_TARGET_TMPDIR is `<target dir>/tmp`.
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let target = tmp.parent().expect("the target directory").to_path_buf();
    let workspace = tmp.join("llm_arena_variants");
    let _ = std::fs::remove_dir_all(&workspace);
    // The workspace's own manifest, minus its members, with its path dependencies made absolute;
    // the same lock file, so the same versions. The real members are path dependencies here, and
    // keep the profile they have as members (`[profile.dev.package."*"]` is for the others).
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("root manifest");
    let shared = &manifest[manifest.find("[workspace.package]").expect("[workspace.package]")..];
    let shared = shared.replace("path = \"", &format!("path = \"{}/", root.display()));
    let members: Vec<String> = variants.iter().map(|(name, _)| format!("\"{name}\"")).collect();
    let mut text = format!("[workspace]\nresolver = \"2\"\nmembers = [{}]\n\n{shared}\n", members.join(", "));
    for member in ["crystallize", "crystallize-macros"] {
        text.push_str(&format!("[profile.dev.package.{member}]\nopt-level = 0\n"));
    }
    let write = |path: std::path::PathBuf, text: &str| {
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("variant directory");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    };
    write(workspace.join("Cargo.toml"), &text);
    std::fs::copy(root.join("Cargo.lock"), workspace.join("Cargo.lock")).expect("lock file");
    let package = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .expect("example manifest");
    let package = &package[..package.find("[dev-dependencies]").expect("[dev-dependencies]")];
    let mut args = vec!["build".to_owned(), "--offline".into(), "--manifest-path".into()];
    args.push(workspace.join("Cargo.toml").display().to_string());
    for (name, files) in variants {
        let dir = workspace.join(name);
        write(dir.join("Cargo.toml"), &package.replacen("name = \"llm_arena\"", &format!("name = \"{name}\""), 1));
        for file in ["main.rs", "game.rs", "ollama.rs"] {
            let source = files.iter().find(|(f, _)| *f == file).map(|(_, text)| text.clone());
            let source = source.unwrap_or_else(|| edited(file, &[]));
            write(dir.join("src").join(file), &source);
        }
        args.extend(["-p".to_owned(), (*name).to_owned()]);
    }
    // The cargo that runs this test (set at run time), else the one that built it.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut command = std::process::Command::new(&cargo);
    command.args(&args).env("CARGO_TARGET_DIR", &target).current_dir(&workspace);
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let started = std::time::Instant::now();
    let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", cargo.to_string_lossy()));
    // Waited for on a thread, so that a build stuck on a lock fails the test instead of hanging.
    let (tx, rx) = std::sync::mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(Duration::from_secs(30 * 60)) {
        Ok(output) => output.expect("cargo build"),
        Err(_) => {
            let _ = std::process::Command::new("kill").arg(pid.to_string()).status();
            panic!("cargo build of the variants did not finish in 30 minutes (waiting on a lock?)");
        }
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "cargo {} failed:\n{stderr}", args.join(" "));
    let compiled: Vec<&str> = stderr.lines().filter(|l| l.trim_start().starts_with("Compiling")).collect();
    eprintln!("built the variants in {:.0?}, compiling {} crate(s): {compiled:?}", started.elapsed(), compiled.len());
    variants.iter().map(|(name, _)| target.join("debug").join(name)).collect()
}

#[test]
fn rescoring_after_a_recompile_asks_no_model_and_changing_the_model_step_asks_every_call_again() {
    // Scoring changed: a new metric, counted by the scoring step (`score`) only.
    let scoring = edited(
        "main.rs",
        &[
            (
                "    pub calls: u32,\n}",
                "    pub calls: u32,\n    /// Rounds both got right.\n    pub both_right: u32,\n}",
            ),
            (
                "        calls: rounds.iter().map(|round| round.a.calls + round.b.calls).sum(),\n",
                "        calls: rounds.iter().map(|round| round.a.calls + round.b.calls).sum(),\n        \
                 both_right: right(&|round| round.a.correct && round.b.correct),\n",
            ),
        ],
    );
    // The step that calls the model changed (its pause between retries).
    let model = edited(
        "game.rs",
        &[("Duration::from_millis(50 * u64::from(calls))", "Duration::from_millis(60 * u64::from(calls))")],
    );
    let bins = build_variants(&[
        ("llm_arena_rescored", vec![("main.rs", scoring)]),
        ("llm_arena_reasked", vec![("game.rs", model)]),
    ]);
    let server = FakeOllama::start(Behaviour::default());
    let store = Store::new(BIN);
    let run = |program: &std::path::Path| {
        crystallize_tests::Command::new(program)
            .args(["run", "--replicates", "10", "--json"])
            .env("CRYSTALLIZE_STORE", store.path())
            .env("OLLAMA_HOST", server.url())
            .current_dir(store.path())
            .timeout(Duration::from_secs(120))
            .run()
    };
    let games = CONDITIONS.len() as u64 * 10;
    let first = run(std::path::Path::new(BIN));
    first.assert_code(0);
    let calls = server.requests();
    first.check_eq(calls, games * CALLS_PER_GAME, "model calls of 3 conditions x 10 games");
    let again = run(std::path::Path::new(BIN));
    again.assert_code(0);
    again.check_eq(server.requests(), calls, "model calls of the same run again");
    again.check_eq(units(&again), units(&first), "the same metrics, bit for bit");

    let rescored = run(&bins[0]);
    rescored.assert_code(0);
    rescored.check_eq(server.requests(), calls, "model calls after changing only the scoring");
    let (before, after) = (units(&first), units(&rescored));
    rescored.check_eq(after.len() as u64, games, "units rescored");
    for (unit, (status, metrics, _)) in &after {
        rescored.check_eq(status.as_str(), "ok", format!("status of {unit:?}"));
        let both =
            metrics.get("both_right").copied().unwrap_or_else(|| rescored.fail(format!("{unit:?}: no both_right")));
        rescored.check(both <= metrics["score_a"].min(metrics["score_b"]), format!("{unit:?}: both_right {both}"));
        let mut old = metrics.clone();
        old.remove("both_right");
        rescored.check_eq(&old, &before[unit].1, format!("{unit:?}: the other metrics are the first run's"));
    }

    let reasked = run(&bins[1]);
    reasked.assert_code(0);
    reasked.check_eq(server.requests(), 2 * calls, "model calls after changing the step that calls the model");
    reasked.check_eq(units(&reasked), units(&first), "the same answers from the deterministic fake");
}

#[test]
fn two_processes_filling_one_cache_at_once_leave_it_whole() {
    // Latency keeps both runs in flight together; both ask the same calls and write the same
    // entries, renaming over each other.
    let server = FakeOllama::start(Behaviour::default().latency(Duration::from_millis(3)));
    let store = Store::new(BIN);
    let start = || {
        let mut command = store.process(&["run", "--replicates", "4", "--json"]);
        command
            .env("OLLAMA_HOST", server.url())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command.spawn().expect("start a run")
    };
    let (a, b) = (start(), start());
    let (a, b) = (a.wait_with_output().expect("run a"), b.wait_with_output().expect("run b"));
    assert!(
        a.status.success() && b.status.success(),
        "both runs succeed:\n{}\n{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    let calls = CONDITIONS.len() as u64 * 4 * CALLS_PER_GAME;
    let asked = server.requests();
    assert!(asked >= calls && asked <= 2 * calls, "each call asked once or twice: {asked}");

    let stats = store.run(&["cache", "stats", "--json"]);
    stats.assert_code(0);
    let json = stats.json();
    stats.check_eq(stats.u64_at(&json, "/damaged"), 0, "damaged entries");
    stats.check_eq(stats.u64_at(&json, "/entries"), calls, "one entry per call");
    // Every entry reads back: a third run asks nothing and records what the first two did.
    let third = arena(&store, &server, &["run", "--replicates", "4", "--json"]);
    third.assert_code(0);
    third.check_eq(server.requests(), asked, "requests of a run after both");
    let first: serde_json::Value = serde_json::from_slice(&a.stdout).expect("run a's JSON");
    third.check_eq(units_metrics(&third.json()), units_metrics(&first), "metrics of the third run and the first");
}

/// Every entry file of the store's step cache.
fn cache_entries(store: &Store) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for shard in std::fs::read_dir(store.path().join("cache")).expect("cache dir").filter_map(Result::ok) {
        if shard.file_name().len() == 2 {
            files.extend(std::fs::read_dir(shard.path()).expect("shard").filter_map(Result::ok).map(|e| e.path()));
        }
    }
    files.sort();
    files
}

#[test]
fn damaged_entries_are_misses_with_a_warning_and_gc_and_clear_remove_entries() {
    let server = FakeOllama::start(Behaviour::default());
    let store = Store::new(BIN);
    let first = arena(&store, &server, &["run", "--replicates", "2", "--json"]);
    first.assert_code(0);
    let calls = server.requests();
    let entries = cache_entries(&store);
    first.check_eq(entries.len() as u64, calls, "entries");
    // One truncated, one with a byte of its value changed, one emptied.
    let bytes = std::fs::read(&entries[0]).expect("entry");
    std::fs::write(&entries[0], &bytes[..bytes.len() - 3]).expect("truncate");
    let mut changed = std::fs::read(&entries[1]).expect("entry");
    let last = changed.len() - 2;
    changed[last] ^= 0x01;
    std::fs::write(&entries[1], changed).expect("change");
    std::fs::write(&entries[2], b"").expect("empty");
    let second = arena(&store, &server, &["run", "--replicates", "2", "--json"]);
    second.assert_code(0).assert_stderr_contains("ignoring the damaged cache entry");
    second.check_eq(server.requests(), calls + 3, "only the damaged entries' calls are asked again");
    second.check_eq(units(&second), units(&first), "the same metrics");

    // The damaged entries were rewritten by the second run; gc keeps every current entry.
    let gc = store.run(&["cache", "gc"]);
    gc.assert_code(0)
        .assert_stdout_contains("removed 0 unreachable, 0 damaged")
        .assert_stdout_contains(&format!("kept {calls} current"));
    std::fs::write(&entries[3], b"garbage").expect("damage");
    let gc = store.run(&["cache", "gc"]);
    gc.assert_code(0).assert_stdout_contains("1 damaged");
    let clear = store.run(&["cache", "clear", "ask"]);
    clear.assert_code(0).assert_stdout_contains(&format!("removed {} entries of step ask", calls - 1));
    clear.check_eq(cache_entries(&store).len(), 0, "entries after clear");
}
