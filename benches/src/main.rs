//! The side-by-side comparisons behind `cargo xtask bench`, measured in one process so that both
//! sides of each comparison see the same machine at the same time. Results go to stdout as
//! `name=value` lines (seconds unless the name says otherwise); progress goes to stderr.
//!
//! ```text
//! crystallize-bench all [--units N] [--repeat K]   overhead, parallel speedup, resume scan, emit cost
//! crystallize-bench stats DATA.json [--repeat K]   permutation test and BCa bootstrap (writes DATA.json)
//! crystallize-bench trivial --units N [--repeat K] the trivial experiment, stored, N units
//! crystallize-bench hand --units N [--repeat K]    the hand-written loop alone, N units
//! crystallize-bench scan --units N [--repeat K]    the resume scan alone, on a run of N units stored first
//! crystallize-bench emit --units N [--repeat K]    the emit cost alone
//! crystallize-bench io [--units N] [--jobs J]      I/O-bound units, async vs threads (default 1000 units, 200 in flight)
//! crystallize-bench cache --units N [--repeat K]   a step cache hit against a trivial step, N calls
//! crystallize-bench html --units N [--repeat K]    the HTML report of a stored run of N units (time, MB)
//! ```
//!
//! Every timing is the fastest of K repetitions (default 3), the two sides of a comparison taking
//! turns: on a shared machine the minimum is the estimate least disturbed by other work.

mod cached;
mod io_bound;
mod trivial;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crystallize::stats::{self, Alternative, BootstrapMethod, BootstrapOptions, PermutationOptions};
use crystallize::store::Store;
use rand::{Rng, SeedableRng};

struct Args {
    units: u64,
    repeat: usize,
    rest: Vec<String>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut parsed = Args { units: 1_000_000, repeat: 3, rest: Vec::new() };
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            iter.next()
                .and_then(|v| v.replace('_', "").parse().ok())
                .ok_or_else(|| format!("{name} needs a whole number"))
        };
        match arg.as_str() {
            "--units" => parsed.units = number("--units")?.max(2),
            "--repeat" => parsed.repeat = number("--repeat")?.max(1) as usize,
            other => parsed.rest.push(other.to_owned()),
        }
    }
    Ok(parsed)
}

fn main() -> ExitCode {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let (command, args) = match all.split_first() {
        Some((command, rest)) => (command.as_str(), parse(rest)),
        None => ("all", parse(&[])),
    };
    let args = match args {
        Ok(args) => args,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    match command {
        "all" => {
            let scratch = scratch_dir();
            let journal = overhead(&scratch, args.units, args.repeat);
            resume_scan(&journal, args.repeat);
            emit_cost(&scratch, (args.units / 5).max(2), args.repeat);
            parallel_speedup(&scratch, args.repeat);
            cached::cache_cost(&scratch, 200, args.repeat);
            let _ = std::fs::remove_dir_all(&scratch);
        }
        "stats" => match args.rest.first() {
            Some(path) => stats_timings(Path::new(path), args.repeat),
            None => {
                eprintln!("error: stats needs the path of the data file to write");
                return ExitCode::from(2);
            }
        },
        "trivial" => {
            let scratch = scratch_dir();
            let replicates = (args.units / 2).max(1);
            let best = fastest(args.repeat, || {
                let store = tempfile::tempdir_in(&scratch).expect("temp store");
                let started = Instant::now();
                trivial::run_stored(store.path(), &trivial::plan("trivial", replicates, &[]), jobs());
                started.elapsed()
            });
            report("rust_trivial_units", replicates * 2);
            report("rust_trivial_s", best.as_secs_f64());
            let _ = std::fs::remove_dir_all(&scratch);
        }
        "hand" => {
            let scratch = scratch_dir();
            let replicates = (args.units / 2).max(1);
            let best = fastest(args.repeat, || {
                let started = Instant::now();
                trivial::hand_written(&scratch.join("hand.jsonl"), replicates);
                started.elapsed()
            });
            report("hand_units", replicates * 2);
            report("hand_s", best.as_secs_f64());
            let _ = std::fs::remove_dir_all(&scratch);
        }
        "emit" => {
            // The emit cost alone (for profiling).
            let scratch = scratch_dir();
            emit_cost(&scratch, args.units, args.repeat);
            let _ = std::fs::remove_dir_all(&scratch);
        }
        "cache" => {
            // The step cache's cost alone.
            let scratch = scratch_dir();
            cached::cache_cost(&scratch, (args.units / cached::CALLS).max(1), args.repeat);
            let _ = std::fs::remove_dir_all(&scratch);
        }
        "scan" => {
            // The resume scan alone, on a run stored here first (for profiling).
            let scratch = scratch_dir();
            let store = scratch.join("scan-store");
            trivial::run_stored(&store, &trivial::plan("trivial", (args.units / 2).max(1), &[]), jobs());
            resume_scan(&store, args.repeat);
            let _ = std::fs::remove_dir_all(&scratch);
        }
        "html" => {
            // The HTML report of a stored run of N units: its time and its size.
            let scratch = scratch_dir();
            let store = scratch.join("html-store");
            let (_, run) = trivial::run_stored(&store, &trivial::plan("trivial", (args.units / 2).max(1), &[]), jobs());
            let store = Store::locate(Some(&store));
            let extra = ["loaded.value > baseline.value".to_owned()];
            let mut size = 0;
            let best = fastest(args.repeat, || {
                let started = Instant::now();
                size = crystallize::__private::internals::html_report(&store, &run, &extra).len();
                started.elapsed()
            });
            report("html_units", args.units);
            report("html_report_s", best.as_secs_f64());
            report("html_report_mb", size as f64 / 1e6);
            let _ = std::fs::remove_dir_all(&scratch);
        }
        "io" => io(&args),
        "io-side" => io_side(&args),
        other => {
            eprintln!(
                "error: unknown command '{other}'; commands: all, stats, trivial, hand, scan, emit, io, cache, html"
            );
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

/// The I/O-bound comparison (see `io_bound`): the async runner and the thread-based one at the
/// same concurrency, each side in fresh processes of this binary (`io-side`), taking turns, the
/// fastest of each reported.
fn io(args: &Args) {
    // `--units` defaults to a million for the other commands; this one's default is 1000.
    let units = if args.units == 1_000_000 { 1000 } else { args.units };
    let jobs = flag(&args.rest, "--jobs").unwrap_or(200).max(2);
    let ideal = units as f64 * f64::from(io_bound::CALLS) * io_bound::LATENCY.as_secs_f64() / jobs as f64;
    eprintln!(
        "  {units} units x {} calls x {:?}, {jobs} in flight: ideal {ideal:.2} s",
        io_bound::CALLS,
        io_bound::LATENCY
    );
    let side = |name: &str, units: u64, jobs: u64| -> Option<(f64, f64)> {
        let output = std::process::Command::new(std::env::current_exe().ok()?)
            .args(["io-side", name, "--units", &units.to_string(), "--jobs", &jobs.to_string()])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&output.stdout);
        let value = |key: &str| text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('=')?.parse::<f64>().ok());
        match (value("wall_s"), value("peak_bytes")) {
            (Some(wall), Some(peak)) if output.status.success() => Some((wall, peak)),
            _ => {
                eprintln!("error: io-side {name} failed: {}", String::from_utf8_lossy(&output.stderr));
                None
            }
        }
    };
    let mut best = [f64::INFINITY; 2];
    let mut peak = [0.0f64; 2];
    for _ in 0..args.repeat {
        for (index, name) in ["io_async", "io_threads"].into_iter().enumerate() {
            let Some((wall, bytes)) = side(name, units, jobs) else { return };
            eprintln!("    {name}: {wall:.3} s, peak {:.1} MiB", bytes / 1048576.0);
            best[index] = best[index].min(wall);
            peak[index] = peak[index].max(bytes);
        }
    }
    // The same sides with one unit in flight: the peak every run has, whatever its concurrency.
    let mut per_unit = [0.0f64; 2];
    for (index, name) in ["io_async", "io_threads"].into_iter().enumerate() {
        let Some((_, alone)) = side(name, 4, 1) else { return };
        per_unit[index] = (peak[index] - alone).max(0.0) / (jobs - 1) as f64;
    }
    report("io_units", units);
    report("io_jobs", jobs);
    report("io_ideal_s", format!("{ideal:.3}"));
    report("io_async_s", format!("{:.3}", best[0]));
    report("io_threads_s", format!("{:.3}", best[1]));
    report("io_async_vs_ideal", format!("{:.3}", best[0] / ideal));
    report("io_threads_vs_ideal", format!("{:.3}", best[1] / ideal));
    report("io_async_kib_per_unit_in_flight", format!("{:.1}", per_unit[0] / 1024.0));
    report("io_threads_kib_per_unit_in_flight", format!("{:.1}", per_unit[1] / 1024.0));
}

/// One side of [`io`], in this process: the server, then the measured run (connections opened
/// during it, as a run's are).
fn io_side(args: &Args) {
    let Some(name) = args.rest.first() else {
        eprintln!("error: io-side needs io_async or io_threads");
        return;
    };
    let jobs = flag(&args.rest, "--jobs").unwrap_or(200).max(1) as usize;
    io_bound::start_server();
    let wall = io_bound::measure(name, args.units, jobs);
    report("wall_s", format!("{:.4}", wall.as_secs_f64()));
    report("peak_bytes", io_bound::peak_bytes());
}

/// The number after `name` in `rest`.
fn flag(rest: &[String], name: &str) -> Option<u64> {
    rest.iter().position(|a| a == name).and_then(|i| rest.get(i + 1)).and_then(|v| v.parse().ok())
}

fn report(name: &str, value: impl std::fmt::Display) {
    println!("{name}={value}");
}

fn jobs() -> usize {
    crystallize::__private::internals::default_jobs()
}

/// Scratch space under the target directory (same file system as the project, unlike `/tmp`,
/// which may be memory).
fn scratch_dir() -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = base.join("bench-scratch").join(std::process::id().to_string());
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

fn fastest(repeat: usize, mut once: impl FnMut() -> Duration) -> Duration {
    (0..repeat).map(|_| once()).min().unwrap_or_default()
}

/// `overhead_ratio`: the trivial experiment through the framework, stored, against the
/// hand-written rayon loop writing the same lines. Returns the directory of the last stored run
/// (for the resume scan).
fn overhead(scratch: &Path, units: u64, repeat: usize) -> PathBuf {
    let replicates = units / 2;
    let plan = trivial::plan("trivial", replicates, &[]);
    eprintln!("overhead: {} units, {} jobs, best of {repeat}", replicates * 2, jobs());
    let store = scratch.join("overhead-store");
    let (mut framework, mut hand) = (Duration::MAX, Duration::MAX);
    for round in 0..repeat {
        let _ = std::fs::remove_dir_all(&store);
        let hand_path = scratch.join("hand.jsonl");
        let started = Instant::now();
        let (hand_sum, lines) = trivial::hand_written(&hand_path, replicates);
        let hand_time = started.elapsed();
        let _ = std::fs::remove_file(&hand_path);

        let started = Instant::now();
        let (results, _run) = trivial::run_stored(&store, &plan, jobs());
        let framework_time = started.elapsed();
        assert_eq!(results.units.len(), lines, "both sides ran every unit");
        let framework_sum = trivial::value_sum(&results);
        assert!((framework_sum - hand_sum).abs() <= 1e-9 * hand_sum.abs(), "both sides computed the same values");
        drop(results);
        eprintln!(
            "  round {}: framework {:.3} s, hand-written {:.3} s",
            round + 1,
            framework_time.as_secs_f64(),
            hand_time.as_secs_f64()
        );
        framework = framework.min(framework_time);
        hand = hand.min(hand_time);
    }
    report("overhead_units", replicates * 2);
    report("overhead_framework_s", format!("{:.4}", framework.as_secs_f64()));
    report("overhead_hand_s", format!("{:.4}", hand.as_secs_f64()));
    report("overhead_framework_units_per_s", format!("{:.0}", (replicates * 2) as f64 / framework.as_secs_f64()));
    report("overhead_ratio", format!("{:.3}", framework.as_secs_f64() / hand.as_secs_f64()));
    store
}

/// `resume_scan_s_per_million`: what `run --resume` does before running anything: open the run,
/// read its journals, derive every unit's state (done, failed or not recorded: `RunDir::scan`,
/// as `run --resume` does), build the done set and the remaining units.
fn resume_scan(store: &Path, repeat: usize) {
    let (runs, _) = Store::locate(Some(store)).runs();
    let id = runs.last().expect("the overhead run is stored").manifest.run.clone();
    let plan_for = |replicates: u64| trivial::plan("trivial", replicates, &[]);
    let mut units = 0;
    let best = fastest(repeat, || {
        let started = Instant::now();
        let run = Store::locate(Some(store)).run(&id).expect("the run");
        let state = run.scan();
        let mut plan = plan_for(state.replicates);
        plan.done = state.done_set();
        let remaining = plan.units();
        let elapsed = started.elapsed();
        assert!(remaining.is_empty(), "every unit is done");
        units = state.done();
        elapsed
    });
    // Where the time goes, for the record.
    let run = Store::locate(Some(store)).run(&id).expect("the run");
    let started = Instant::now();
    let scanned = crystallize::store::journal::scan_all(run.path(), &run.conditions());
    let read = started.elapsed();
    drop(scanned);
    let started = Instant::now();
    let state = run.scan();
    let state_time = started.elapsed();
    let started = Instant::now();
    let done = state.done_set();
    let done_time = started.elapsed();
    let mut plan = plan_for(state.replicates);
    plan.done = done;
    let started = Instant::now();
    let remaining = plan.units().len();
    let units_time = started.elapsed();
    // The full state (every unit's result), which `inspect` and reports read, for comparison.
    let started = Instant::now();
    drop(run.state());
    let full_state = started.elapsed();
    eprintln!(
        "resume scan: {units} units in {:.3} s (reading journals {:.3} s, of scan() {:.3} s; done set {:.3} s; \
         remaining units {:.3} s, {remaining} left; the full state() {:.3} s)",
        best.as_secs_f64(),
        read.as_secs_f64(),
        state_time.as_secs_f64(),
        done_time.as_secs_f64(),
        units_time.as_secs_f64(),
        full_state.as_secs_f64()
    );
    report("resume_scan_units", units);
    report("resume_scan_s", format!("{:.4}", best.as_secs_f64()));
    report("resume_scan_s_per_million", format!("{:.3}", best.as_secs_f64() * 1e6 / units as f64));
}

/// `emit_cost_ratio`: the trivial experiment with 10 `emit` calls per unit against none, with the
/// events log attached as `run` attaches it (the events travel to the output thread and are
/// written); `emit_cost_ratio_unobserved` without it (events no observer reads are not sent).
fn emit_cost(scratch: &Path, units: u64, repeat: usize) {
    let replicates = units / 2;
    eprintln!("emit cost: {} units, best of {repeat}", replicates * 2);
    let (quiet, chatty) = (trivial::plan("trivial", replicates, &[]), trivial::plan("chatty", replicates, &[]));
    for (log, suffix) in [(true, ""), (false, "_unobserved")] {
        let (mut without, mut with) = (Duration::MAX, Duration::MAX);
        for _ in 0..repeat {
            for (plan, best) in [(&quiet, &mut without), (&chatty, &mut with)] {
                let store = tempfile::tempdir_in(scratch).expect("temp store");
                let started = Instant::now();
                let (results, _) = trivial::run_stored_with(store.path(), plan, jobs(), log);
                *best = (*best).min(started.elapsed());
                drop(results);
            }
        }
        let calls = (replicates * 2 * 10) as f64;
        report(&format!("emit_none{suffix}_s"), format!("{:.4}", without.as_secs_f64()));
        report(&format!("emit_10{suffix}_s"), format!("{:.4}", with.as_secs_f64()));
        report(
            &format!("emit_ns_per_call{suffix}"),
            format!("{:.0}", (with.saturating_sub(without)).as_secs_f64() * 1e9 / calls),
        );
        report(&format!("emit_cost_ratio{suffix}"), format!("{:.3}", with.as_secs_f64() / without.as_secs_f64()));
    }
    report("emit_units", replicates * 2);
}

/// `parallel_speedup`: units of about 1 ms of CPU, `--jobs 1` against every core.
fn parallel_speedup(scratch: &Path, repeat: usize) {
    // Calibrate the work of one unit to about a millisecond on this machine.
    let probe = 200_000;
    let per_round = fastest(5, || {
        let started = Instant::now();
        std::hint::black_box(trivial::burn(std::hint::black_box(1), probe));
        started.elapsed()
    })
    .as_secs_f64()
        / probe as f64;
    let work = ((1e-3 / per_round) as u64).max(1);
    let cores = jobs();
    let replicates = 300 * cores as u64;
    let plan = trivial::plan("spin", replicates, &[&format!("work={work}")]);
    eprintln!("parallel speedup: {} units of ~1 ms (work={work}), 1 job vs {cores}, best of {repeat}", replicates * 2);
    let (mut serial, mut parallel) = (Duration::MAX, Duration::MAX);
    for _ in 0..repeat {
        for (jobs, best) in [(1, &mut serial), (cores, &mut parallel)] {
            let store = tempfile::tempdir_in(scratch).expect("temp store");
            let started = Instant::now();
            trivial::run_stored(store.path(), &plan, jobs);
            *best = (*best).min(started.elapsed());
        }
    }
    let speedup = serial.as_secs_f64() / parallel.as_secs_f64();
    report("parallel_cores", cores);
    report("parallel_unit_ms", format!("{:.3}", serial.as_secs_f64() * 1e3 / (replicates * 2) as f64));
    report("parallel_jobs1_s", format!("{:.4}", serial.as_secs_f64()));
    report("parallel_all_s", format!("{:.4}", parallel.as_secs_f64()));
    report("parallel_speedup", format!("{speedup:.3}"));
    report("parallel_efficiency", format!("{:.3}", speedup / cores as f64));
}

/// The data both sides of `stats_vs_scipy` analyse: two normal samples of 1000, shifted by 0.1.
fn stats_data() -> (Vec<f64>, Vec<f64>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2024);
    let mut normal = |shift: f64| {
        // Box–Muller: enough for benchmark data.
        let (u, v): (f64, f64) = (rng.random::<f64>().max(f64::MIN_POSITIVE), rng.random());
        shift + (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    };
    let x = (0..1000).map(|_| normal(0.1)).collect();
    let y = (0..1000).map(|_| normal(0.0)).collect();
    (x, y)
}

/// Writes the data for the SciPy side and times crystallize's permutation test (10 000
/// resamples) and BCa bootstrap interval (10 000 resamples) of the difference in means.
fn stats_timings(data: &Path, repeat: usize) {
    let (x, y) = stats_data();
    let json = serde_json::json!({ "x": x, "y": y, "resamples": 10_000 });
    std::fs::write(data, json.to_string()).expect("the data file");
    let permutation = PermutationOptions { resamples: 10_000, seed: 1, ..PermutationOptions::default() };
    let mut p = f64::NAN;
    let permutation_time = fastest(repeat, || {
        let started = Instant::now();
        let test = stats::permutation_test(&x, &y, 0.0, Alternative::TwoSided, &permutation).expect("a test");
        let elapsed = started.elapsed();
        assert!(!test.exact, "n = 1000 per side is a Monte Carlo test");
        p = test.p;
        elapsed
    });
    let bootstrap = BootstrapOptions { resamples: 10_000, seed: 1, method: BootstrapMethod::Bca, level: 0.95 };
    let difference = |samples: &[&[f64]]| {
        let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
        mean(samples[0]) - mean(samples[1])
    };
    let mut interval = None;
    let bootstrap_time = fastest(repeat, || {
        let started = Instant::now();
        let ci = stats::bootstrap_ci(&[&x, &y], false, &difference, &bootstrap).expect("an interval");
        let elapsed = started.elapsed();
        interval = Some(ci);
        elapsed
    });
    let interval = interval.expect("measured");
    eprintln!(
        "stats: permutation p = {p:.4} in {:.4} s; BCa [{:.4}, {:.4}] in {:.4} s",
        permutation_time.as_secs_f64(),
        interval.low,
        interval.high,
        bootstrap_time.as_secs_f64()
    );
    report("rust_permutation_p", format!("{p:.4}"));
    report("rust_permutation_s", format!("{:.5}", permutation_time.as_secs_f64()));
    report("rust_bootstrap_low", format!("{:.5}", interval.low));
    report("rust_bootstrap_high", format!("{:.5}", interval.high));
    report("rust_bootstrap_s", format!("{:.5}", bootstrap_time.as_secs_f64()));
}

#[cfg(test)]
mod tests {
    use super::trivial::*;
    use crystallize::__private::internals::{execute, RunOptions};

    fn without_duration(line: &str) -> serde_json::Value {
        let mut value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let object = value.as_object_mut().expect("an object");
        object.remove("duration_ms");
        // The checksum covers the duration, which differs: that each line's checksum is valid is
        // what the framework's reader checks below.
        assert!(object.remove("crc32").is_some(), "a sealed line: {line}");
        value
    }

    #[test]
    fn the_hand_written_loop_writes_what_the_framework_journals() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (results, run) = run_stored(dir.path(), &plan("trivial", 50, &[]), 2);
        let hand = dir.path().join("hand.jsonl");
        let (sum, lines) = hand_written(&hand, 50);
        assert_eq!(lines, 100);
        assert!((sum - value_sum(&results)).abs() < 1e-9, "same values");

        let journal = std::fs::read_dir(run.path())
            .expect("run dir")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("journal-")))
            .expect("a journal");
        let mut framework: Vec<serde_json::Value> =
            std::fs::read_to_string(journal).expect("journal").lines().map(without_duration).collect();
        let mut handmade: Vec<serde_json::Value> =
            std::fs::read_to_string(hand).expect("hand").lines().map(without_duration).collect();
        let key = |v: &serde_json::Value| (v["condition"].as_str().map(str::to_owned), v["replicate"].as_u64());
        framework.sort_by_key(key);
        handmade.sort_by_key(key);
        assert_eq!(framework, handmade);
        // The hand-written lines are sealed as the framework's are: its reader accepts them all.
        let copy = tempfile::tempdir().expect("temp dir");
        std::fs::copy(dir.path().join("hand.jsonl"), copy.path().join("journal-1.jsonl")).expect("copy");
        let loaded = crystallize::store::journal::read_all(copy.path());
        assert_eq!((loaded.units.len(), loaded.warnings.len()), (100, 0), "{:?}", loaded.warnings);
    }

    #[test]
    fn spin_and_chatty_record_their_metric() {
        let results = execute(&plan("spin", 2, &["work=10"]), &RunOptions::default(), &mut []);
        assert_eq!(results.units.len(), 4);
        assert_eq!(results.failed(), 0);
        let results = execute(&plan("chatty", 2, &[]), &RunOptions::default(), &mut []);
        assert_eq!(results.units.len(), 4);
        assert_eq!(results.failed(), 0);
    }
}
