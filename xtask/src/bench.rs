//! `cargo xtask bench`: every side-by-side comparison of BENCHMARKS.md in one invocation.
//!
//! 1. builds `crystallize-bench` (release, in `target/bench`, so that other builds never wait on
//!    it) and runs its in-process comparisons: overhead against a hand-written rayon loop,
//!    parallel speedup, resume scan, emit cost, the cost of a step cache hit and an entry's disk;
//! 2. times crystallize's permutation test and BCa bootstrap, and SciPy's on the same data, when
//!    `python3` has SciPy;
//! 3. runs the same trivial experiment through the Python ancestor, crystallize-ml 0.27.0 and
//!    1.0.0a2, each in a virtual environment under `target/bench-venv` (created with pip when
//!    missing);
//! 4. runs the I/O-bound comparison: 1000 units of 3 calls each to a local server answering in
//!    100 ms, 200 in flight, through the async runner and the thread-based one (`crystallize-bench
//!    io`), against the ideal wall time;
//! 5. measures the peak memory of `run`, `report`, `report --json`, `runs` and `watch` of the
//!    trivial experiment at a tenth of `--units` and at all of them (`trivial-cli`, release);
//! 6. measures the build: a clean debug build of `social_deception` in `target/bench-build`, then
//!    the rebuild after touching a step's file;
//! 7. prints a table of ratios against their targets, then one `name=value` line per comparison,
//!    and rewrites the generated part of BENCHMARKS.md.
//!
//! A comparison that cannot run here (no SciPy, no pip) is skipped with a message and reported as
//! `name=skipped`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Instant, SystemTime};

/// The Python ancestor's versions compared, with the speedup each must reach.
const ANCESTORS: [(&str, &str, f64); 2] =
    [("0.27.0", "vs_python_crystallize_0_27", 200.0), ("1.0.0a2", "vs_python_crystallize_1_0_0a2", 30.0)];

/// How a comparison is judged.
#[derive(Clone, Copy)]
enum Target {
    AtMost(f64),
    AtLeast(f64),
    None,
}

struct Comparison {
    name: String,
    value: Option<f64>,
    target: Target,
    /// What the value is, for the table.
    what: String,
    /// Why it was skipped.
    skipped: Option<String>,
}

impl Comparison {
    fn verdict(&self) -> String {
        let Some(value) = self.value else {
            return format!("skipped: {}", self.skipped.as_deref().unwrap_or("not measured"));
        };
        match self.target {
            Target::AtMost(limit) if value <= limit => "met".into(),
            Target::AtMost(limit) => format!("missed by {:.0}%", (value / limit - 1.0) * 100.0),
            Target::AtLeast(limit) if value >= limit => "met".into(),
            Target::AtLeast(limit) => format!("missed: {:.0}% of the target", value / limit * 100.0),
            Target::None => "(no target)".into(),
        }
    }

    fn target_text(&self) -> String {
        match self.target {
            Target::AtMost(limit) => format!("<= {}", trim(limit)),
            Target::AtLeast(limit) => format!(">= {}", trim(limit)),
            Target::None => "-".into(),
        }
    }
}

fn trim(x: f64) -> String {
    let text = format!("{x:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

struct Options {
    units: u64,
    python_units: u64,
    repeat: u64,
    build_cost: bool,
    python: bool,
    write: bool,
    /// Only the memory of the commands (no other comparison; BENCHMARKS.md is not rewritten).
    memory_only: bool,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        units: 1_000_000,
        python_units: 10_000,
        repeat: 3,
        build_cost: true,
        python: true,
        write: true,
        memory_only: false,
    };
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            iter.next()
                .and_then(|v| v.replace('_', "").parse().ok())
                .ok_or_else(|| format!("{name} needs a whole number"))
        };
        match arg.as_str() {
            "--units" => options.units = number("--units")?,
            "--python-units" => options.python_units = number("--python-units")?,
            "--repeat" => options.repeat = number("--repeat")?.max(1),
            "--no-build-cost" => options.build_cost = false,
            "--no-python" => options.python = false,
            "--no-write" => options.write = false,
            "--memory-only" => {
                options.memory_only = true;
                options.write = false;
            }
            "--quick" => {
                options.units = 100_000;
                options.python_units = 2_000;
                options.repeat = 1;
            }
            other => {
                return Err(format!(
                    "unknown option '{other}'; options: --units N, --python-units N, --repeat K, --quick, \
                     --no-build-cost, --no-python, --no-write, --memory-only"
                ))
            }
        }
    }
    Ok(options)
}

/// Runs `cargo xtask bench [options]`.
pub fn bench(args: &[String]) -> ExitCode {
    let options = match parse(args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let root = workspace_root();
    let load_before = load_average();
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    let mut comparisons: Vec<Comparison> = Vec::new();

    eprintln!("== building crystallize-bench (release, target/bench)");
    let bench_target = root.join("target/bench");
    let built = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "crystallize-bench",
            "--bin",
            "crystallize-bench",
            "--bin",
            "trivial-cli",
        ])
        .env("CARGO_TARGET_DIR", &bench_target)
        .current_dir(&root)
        .status();
    if !matches!(built, Ok(status) if status.success()) {
        eprintln!("error: could not build crystallize-bench ({built:?})");
        return ExitCode::FAILURE;
    }
    let binary = bench_target.join("release/crystallize-bench");
    if options.memory_only {
        eprintln!("== peak memory of the commands");
        let values = memory_of_commands(&bench_target, &options, &mut Vec::new());
        for (key, value) in values {
            println!("{key}={value}");
        }
        return ExitCode::SUCCESS;
    }

    eprintln!("== in-process comparisons ({} units)", options.units);
    let units = options.units.to_string();
    let repeat = options.repeat.to_string();
    match capture(Command::new(&binary).args(["all", "--units", &units, "--repeat", &repeat]).current_dir(&root)) {
        Ok(found) => values.extend(found),
        Err(error) => {
            eprintln!("error: crystallize-bench failed: {error}");
            return ExitCode::FAILURE;
        }
    }
    let cores = number(&values, "parallel_cores").unwrap_or(1.0);
    comparisons.push(Comparison {
        name: "overhead_ratio".into(),
        value: number(&values, "overhead_ratio"),
        target: Target::AtMost(1.5),
        what: format!("trivial experiment, {} units, stored, vs a hand-written rayon loop", options.units),
        skipped: None,
    });
    comparisons.push(Comparison {
        name: "parallel_speedup".into(),
        value: number(&values, "parallel_speedup"),
        target: Target::AtLeast(0.95 * cores),
        what: format!("~1 ms CPU-bound units, --jobs 1 vs {cores} cores"),
        skipped: None,
    });
    comparisons.push(Comparison {
        name: "resume_scan_s_per_million".into(),
        value: number(&values, "resume_scan_s_per_million"),
        target: Target::AtMost(1.0),
        what: "open a stored run, read its journal, build the done set".into(),
        skipped: None,
    });
    comparisons.push(Comparison {
        name: "emit_cost_ratio".into(),
        value: number(&values, "emit_cost_ratio"),
        target: Target::None,
        what: "10 emits per unit vs none, events log attached".into(),
        skipped: None,
    });

    comparisons.push(Comparison {
        name: "cache_hit_us".into(),
        value: number(&values, "cache_hit_us"),
        target: Target::AtMost(20.0),
        what: "a #[step(cache)] hit minus a trivial step's own cost, µs per call".into(),
        skipped: None,
    });
    comparisons.push(Comparison {
        name: "cache_entry_disk_bytes".into(),
        value: number(&values, "cache_entry_disk_bytes"),
        target: Target::None,
        what: format!(
            "disk per cache entry of a u64 output ({} bytes of file)",
            values.get("cache_entry_bytes").map_or("?", String::as_str)
        ),
        skipped: None,
    });

    eprintln!("== I/O-bound units: async runner vs threads (crystallize-bench io)");
    comparisons.extend(io_bound(&binary, &options, &mut values));

    eprintln!("== the HTML report of 100 000 units");
    match capture(Command::new(&binary).args(["html", "--units", "100000", "--repeat", &repeat]).current_dir(&root)) {
        Ok(found) => values.extend(found),
        Err(error) => eprintln!("warning: the HTML report benchmark failed: {error}"),
    }
    comparisons.push(Comparison {
        name: "html_report_s".into(),
        value: number(&values, "html_report_s"),
        target: Target::AtMost(5.0),
        what: "`report --html` of a stored run of 100 000 units (read, summarise, decide, render)".into(),
        skipped: None,
    });
    comparisons.push(Comparison {
        name: "html_report_mb".into(),
        value: number(&values, "html_report_mb"),
        target: Target::AtMost(5.0),
        what: "the size of that HTML file, in MB (points thinned beyond 2000 per condition)".into(),
        skipped: None,
    });

    eprintln!("== statistics vs SciPy");
    comparisons.extend(stats_vs_scipy(&root, &binary, &options, &mut values));

    eprintln!("== the Python ancestor");
    comparisons.extend(vs_python(&root, &binary, &options, &mut values));

    if options.build_cost {
        eprintln!("== build cost (clean debug build of social_deception in target/bench-build)");
        comparisons.extend(build_cost(&root, &mut values));
    } else {
        for name in ["build_clean_s", "build_touch_s"] {
            comparisons.push(skipped(name, "build cost", "--no-build-cost"));
        }
    }

    eprintln!("== peak memory of the commands");
    values.extend(memory_of_commands(&bench_target, &options, &mut comparisons));

    let elapsed = started.elapsed().as_secs_f64();
    let load_after = load_average();
    values.insert("bench_wall_s".into(), format!("{elapsed:.1}"));
    print_table(&comparisons);
    for comparison in &comparisons {
        match comparison.value {
            Some(value) => println!("{}={}", comparison.name, trim(value)),
            None => println!("{}=skipped", comparison.name),
        }
    }
    if options.write {
        let machine = machine(&load_before, &load_after, elapsed);
        match write_benchmarks(&root.join("BENCHMARKS.md"), &machine, &comparisons, &values) {
            Ok(()) => eprintln!("BENCHMARKS.md updated"),
            Err(error) => eprintln!("warning: could not update BENCHMARKS.md: {error}"),
        }
    }
    eprintln!("cargo xtask bench took {:.0} s", elapsed);
    ExitCode::SUCCESS
}

/// The I/O-bound comparison: wall time against the ideal for both runners, and memory per unit
/// in flight.
fn io_bound(binary: &Path, options: &Options, values: &mut BTreeMap<String, String>) -> Vec<Comparison> {
    let names = [
        "io_async_vs_ideal",
        "io_threads_vs_ideal",
        "io_async_kib_per_unit_in_flight",
        "io_threads_kib_per_unit_in_flight",
    ];
    let repeat = options.repeat.to_string();
    let found = match capture(Command::new(binary).args(["io", "--repeat", &repeat])) {
        Ok(found) => found,
        Err(error) => return names.iter().map(|name| skipped(name, "I/O-bound units", &error)).collect(),
    };
    values.extend(found);
    let what = "1000 units x 3 calls of 100 ms to a local server, 200 in flight";
    vec![
        Comparison {
            name: names[0].into(),
            value: number(values, names[0]),
            target: Target::AtMost(1.3),
            what: format!("{what}: async runner's wall time / ideal (1.5 s)"),
            skipped: None,
        },
        Comparison {
            name: names[1].into(),
            value: number(values, names[1]),
            target: Target::None,
            what: format!("{what}: thread-based runner (sync units, blocking client) / ideal"),
            skipped: None,
        },
        Comparison {
            name: names[2].into(),
            value: number(values, names[2]),
            target: Target::None,
            what: "async: peak memory per unit in flight, KiB (server's connections included)".into(),
            skipped: None,
        },
        Comparison {
            name: names[3].into(),
            value: number(values, names[3]),
            target: Target::None,
            what: "threads: peak memory per unit in flight, KiB (server's connections included)".into(),
            skipped: None,
        },
    ]
}

/// The peak memory of `run`, `report`, `report --json`, `runs` and `watch` at a tenth of
/// `--units` and at all of them; the comparisons at all of them (`run` and `report` must stay
/// under 150 MiB at a million units) go to `comparisons`.
fn memory_of_commands(
    bench_target: &Path,
    options: &Options,
    comparisons: &mut Vec<Comparison>,
) -> BTreeMap<String, String> {
    let cli = bench_target.join("release/trivial-cli");
    let mut values = BTreeMap::new();
    for units in [(options.units / 10).max(2), options.units] {
        match crate::memory::commands(&cli, bench_target, units) {
            Ok(found) => values.extend(found),
            Err(error) => eprintln!("warning: peak memory at {units} units not measured: {error}"),
        }
    }
    for command in ["run", "report", "report_json", "watch"] {
        let key = format!("memory_{command}_{}_mib", options.units);
        comparisons.push(Comparison {
            name: format!("peak_memory_{command}_mib"),
            value: number(&values, &key),
            target: if command == "run" || command == "report" { Target::AtMost(150.0) } else { Target::None },
            what: format!(
                "peak resident memory of `{}` of {} trivial units (MiB)",
                command.replace('_', " --"),
                options.units
            ),
            skipped: None,
        });
    }
    values
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn skipped(name: &str, what: &str, why: &str) -> Comparison {
    eprintln!("skipping {name}: {why}");
    Comparison { name: name.into(), value: None, target: Target::None, what: what.into(), skipped: Some(why.into()) }
}

fn number(values: &BTreeMap<String, String>, key: &str) -> Option<f64> {
    values.get(key).and_then(|v| v.parse().ok())
}

/// Runs `command` (stderr passes through) and collects the `name=value` lines of its stdout.
fn capture(command: &mut Command) -> Result<BTreeMap<String, String>, String> {
    let output = command.stderr(Stdio::inherit()).output().map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!("exited with {}", output.status));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once('=').map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())))
        .collect())
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

fn python_has(module: &str) -> bool {
    Command::new(python())
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn stats_vs_scipy(
    root: &Path,
    binary: &Path,
    options: &Options,
    values: &mut BTreeMap<String, String>,
) -> Vec<Comparison> {
    let names = ["stats_vs_scipy", "stats_vs_scipy_permutation", "stats_vs_scipy_bootstrap"];
    if !options.python {
        return names.iter().map(|n| skipped(n, "statistics vs SciPy", "--no-python")).collect();
    }
    if !python_has("scipy") || !python_has("numpy") {
        let why = format!("{} with scipy and numpy is not available", python());
        return names.iter().map(|n| skipped(n, "statistics vs SciPy", &why)).collect();
    }
    let data = root.join("target/bench/stats-data.json");
    let repeat = options.repeat.to_string();
    let rust = capture(Command::new(binary).args(["stats"]).arg(&data).args(["--repeat", &repeat]));
    let scipy = capture(Command::new(python()).arg(root.join("xtask/bench/scipy_stats.py")).arg(&data).arg(&repeat));
    let (rust, scipy) = match (rust, scipy) {
        (Ok(rust), Ok(scipy)) => (rust, scipy),
        (rust, scipy) => {
            let why = format!("a side failed: rust {:?}, scipy {:?}", rust.err(), scipy.err());
            return names.iter().map(|n| skipped(n, "statistics vs SciPy", &why)).collect();
        }
    };
    values.extend(rust);
    values.extend(scipy);
    let ratio =
        |test: &str| Some(number(values, &format!("scipy_{test}_s"))? / number(values, &format!("rust_{test}_s"))?);
    let (permutation, bootstrap) = (ratio("permutation"), ratio("bootstrap"));
    let both = permutation.zip(bootstrap).map(|(p, b)| p.min(b));
    let make = |name: &str, value: Option<f64>, what: &str| Comparison {
        name: name.into(),
        value,
        target: Target::AtLeast(20.0),
        what: what.into(),
        skipped: None,
    };
    vec![
        make("stats_vs_scipy", both, "the slower of the two below"),
        make("stats_vs_scipy_permutation", permutation, "permutation test, 10k resamples, n = 1000 per side"),
        make("stats_vs_scipy_bootstrap", bootstrap, "BCa bootstrap interval, 10k resamples, n = 1000 per side"),
    ]
}

/// The virtual environment of crystallize-ml `version`, created with pip when missing.
fn ancestor_venv(root: &Path, version: &str) -> Result<PathBuf, String> {
    let venv = root.join("target/bench-venv").join(format!("crystallize-{version}"));
    let interpreter = venv.join("bin/python");
    let ready = |python: &Path| {
        Command::new(python)
            .args(["-c", "import crystallize"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if ready(&interpreter) {
        return Ok(interpreter);
    }
    let has_pip = Command::new(python())
        .args(["-m", "pip", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_pip {
        return Err(format!("{} has no pip", python()));
    }
    eprintln!("creating {} and installing crystallize-ml=={version}", venv.display());
    let created = Command::new(python()).args(["-m", "venv"]).arg(&venv).status();
    if !matches!(created, Ok(s) if s.success()) {
        return Err(format!("`{} -m venv` failed", python()));
    }
    let mut install = Command::new(venv.join("bin/pip"));
    install.args(["install", "--quiet", "--disable-pip-version-check"]);
    if version.contains('a') || version.contains('b') || version.contains("rc") {
        install.arg("--pre");
    }
    let installed = install.arg(format!("crystallize-ml=={version}")).status();
    if !matches!(installed, Ok(s) if s.success()) || !ready(&interpreter) {
        let _ = std::fs::remove_dir_all(&venv);
        return Err(format!("`pip install crystallize-ml=={version}` failed"));
    }
    Ok(interpreter)
}

fn vs_python(root: &Path, binary: &Path, options: &Options, values: &mut BTreeMap<String, String>) -> Vec<Comparison> {
    let what =
        |version: &str| format!("trivial experiment, {} units, vs crystallize-ml {version}", options.python_units);
    if !options.python {
        return ANCESTORS.iter().map(|(v, name, _)| skipped(name, &what(v), "--no-python")).collect();
    }
    let units = options.python_units.to_string();
    let repeat = options.repeat.to_string();
    let rust = match capture(Command::new(binary).args(["trivial", "--units", &units, "--repeat", &repeat])) {
        Ok(rust) => rust,
        Err(error) => {
            let why = format!("the Rust side failed: {error}");
            return ANCESTORS.iter().map(|(v, name, _)| skipped(name, &what(v), &why)).collect();
        }
    };
    let rust_s = number(&rust, "rust_trivial_s");
    // What the bench ran (an even number of units: two conditions), not what was asked.
    values.extend(rust);
    let mut comparisons = Vec::new();
    for (version, name, target) in ANCESTORS {
        let interpreter = match ancestor_venv(root, version) {
            Ok(interpreter) => interpreter,
            Err(why) => {
                comparisons.push(skipped(name, &what(version), &why));
                continue;
            }
        };
        let store = root.join("target/bench-scratch/ancestor").join(version);
        let _ = std::fs::remove_dir_all(&store);
        let measured = capture(
            Command::new(&interpreter)
                .arg(root.join("xtask/bench/ancestor.py"))
                .arg(&units)
                .arg(&store)
                .arg(&repeat)
                .current_dir(root.join("target")),
        );
        let _ = std::fs::remove_dir_all(&store);
        match measured {
            Ok(found) => {
                let python_s = number(&found, "python_s");
                let key = format!("python_{}_s", version.replace('.', "_"));
                values.insert(key, python_s.map(|s| format!("{s:.4}")).unwrap_or_default());
                comparisons.push(Comparison {
                    name: name.into(),
                    value: python_s.zip(rust_s).map(|(p, r)| p / r),
                    target: Target::AtLeast(target),
                    what: what(version),
                    skipped: None,
                });
            }
            Err(error) => comparisons.push(skipped(name, &what(version), &format!("the Python side failed: {error}"))),
        }
    }
    comparisons
}

fn build_cost(root: &Path, values: &mut BTreeMap<String, String>) -> Vec<Comparison> {
    let target = root.join("target/bench-build");
    let _ = std::fs::remove_dir_all(&target);
    let build = || -> Result<f64, String> {
        let started = Instant::now();
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "social_deception"])
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(root)
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("cargo build exited with {status}"));
        }
        Ok(started.elapsed().as_secs_f64())
    };
    let what_clean = "clean debug build of examples/social_deception (every dependency)";
    let what_touch = "rebuild after touching the file of the step `play`";
    let clean = match build() {
        Ok(seconds) => seconds,
        Err(error) => {
            return vec![skipped("build_clean_s", what_clean, &error), skipped("build_touch_s", what_touch, &error)]
        }
    };
    // Touch the file of a step (its contents stay as they are).
    let step = root.join("examples/social_deception/src/game.rs");
    let touched = std::fs::File::options().append(true).open(&step).and_then(|f| f.set_modified(SystemTime::now()));
    let touch = match touched.map_err(|e| e.to_string()).and_then(|()| build()) {
        Ok(seconds) => Some(seconds),
        Err(error) => {
            eprintln!("rebuild after touching {} failed: {error}", step.display());
            None
        }
    };
    values.insert("build_clean_s".into(), format!("{clean:.1}"));
    if let Some(touch) = touch {
        values.insert("build_touch_s".into(), format!("{touch:.2}"));
    }
    let _ = std::fs::remove_dir_all(&target);
    vec![
        Comparison {
            name: "build_clean_s".into(),
            value: Some(clean),
            target: Target::None,
            what: what_clean.into(),
            skipped: None,
        },
        Comparison {
            name: "build_touch_s".into(),
            value: touch,
            target: Target::None,
            what: what_touch.into(),
            skipped: touch.is_none().then(|| "the rebuild failed".into()),
        },
    ]
}

fn print_table(comparisons: &[Comparison]) {
    let rows: Vec<[String; 4]> = comparisons
        .iter()
        .map(|c| {
            let value = c.value.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
            [c.name.clone(), value, c.target_text(), c.verdict()]
        })
        .collect();
    let header = ["comparison".to_owned(), "value".into(), "target".into(), "verdict".into()];
    let widths: Vec<usize> =
        (0..4).map(|i| rows.iter().chain(std::iter::once(&header)).map(|r| r[i].len()).max().unwrap_or(0)).collect();
    let line = |r: &[String; 4]| {
        format!("{:<w0$}  {:>w1$}  {:<w2$}  {}", r[0], r[1], r[2], r[3], w0 = widths[0], w1 = widths[1], w2 = widths[2])
    };
    println!();
    println!("{}", line(&header));
    for row in &rows {
        println!("{}", line(row));
    }
    println!();
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned() + String::from_utf8_lossy(&o.stderr).trim())
        .unwrap_or_else(|| "unknown".into())
}

/// A description of this machine, for BENCHMARKS.md.
fn machine(load_before: &str, load_after: &str, elapsed: f64) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_owned()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().trim_end_matches("kB").trim().to_owned()))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| format!("{:.0} GiB", kb / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown memory".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|k| k.trim().to_owned()).unwrap_or_default();
    let date = command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let rustc = command_line("rustc", &["--version"]);
    let python = command_line(&python(), &["--version"]);
    format!(
        "Measured {date} by `cargo xtask bench` ({elapsed:.0} s in all) on {model}, {cores} cores, {memory}, \
         Linux {kernel}; {rustc}; {python}. Load average (1, 5, 15 min) {load_before} before, {load_after} after: \
         the machine is shared, and every timing is the fastest of several runs."
    )
}

const BEGIN: &str = "<!-- bench:begin (generated by `cargo xtask bench`; edits here are overwritten) -->";
const END: &str = "<!-- bench:end -->";

/// Rewrites the generated part of BENCHMARKS.md (between the markers), keeping the rest.
fn write_benchmarks(
    path: &Path,
    machine: &str,
    comparisons: &[Comparison],
    values: &BTreeMap<String, String>,
) -> std::io::Result<()> {
    let mut generated = String::new();
    generated.push_str(BEGIN);
    generated.push_str("\n\n");
    generated.push_str(machine);
    generated.push_str("\n\n| comparison | what | value | target | verdict |\n|---|---|---:|---|---|\n");
    for c in comparisons {
        let value = c.value.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
        generated.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            c.name,
            c.what,
            value,
            c.target_text().replace("<=", "≤").replace(">=", "≥"),
            c.verdict()
        ));
    }
    generated.push_str("\nEvery measurement (seconds unless the name says otherwise):\n\n```text\n");
    for (key, value) in values {
        generated.push_str(&format!("{key}={value}\n"));
    }
    generated.push_str("```\n\n");
    generated.push_str(END);
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let updated = match (text.find(BEGIN), text.find(END)) {
        (Some(begin), Some(end)) if begin < end => {
            format!("{}{}{}", &text[..begin], generated, &text[end + END.len()..])
        }
        _ => format!("{}\n\n{}\n", text.trim_end(), generated),
    };
    std::fs::write(path, updated)
}
