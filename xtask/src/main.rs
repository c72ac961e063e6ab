//! Developer tasks: `cargo xtask ci` runs what CI runs; `cargo xtask fixtures` regenerates the
//! SciPy reference values of `crystallize::stats` (needs Python with numpy, scipy, statsmodels);
//! `cargo xtask bench` runs the side-by-side comparisons of BENCHMARKS.md and rewrites it.

mod bench;

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let task = std::env::args().nth(1);
    match task.as_deref() {
        Some("ci") => ci(),
        Some("fixtures") => fixtures(),
        Some("bench") => bench::bench(&std::env::args().skip(2).collect::<Vec<_>>()),
        Some(other) => {
            eprintln!("error: unknown task '{other}'; tasks: ci, fixtures, bench");
            ExitCode::from(2)
        }
        None => {
            eprintln!("usage: cargo xtask <task>\n\ntasks:\n  ci        format check, then the README's test command (as .ci/run does)\n  fixtures  rewrite crystallize/tests/fixtures/stats/*.json from SciPy (python3 with numpy, scipy, statsmodels)\n  bench     side-by-side benchmarks (overhead, speedup, resume, emit, SciPy, crystallize-ml, build); rewrites BENCHMARKS.md");
            ExitCode::from(2)
        }
    }
}

fn ci() -> ExitCode {
    let steps: [&[&str]; 2] = [&["fmt", "--all", "--", "--check"], &["test", "--workspace", "--locked"]];
    for args in steps {
        eprintln!("$ cargo {}", args.join(" "));
        match Command::new(env!("CARGO")).args(args).status() {
            Ok(status) if status.success() => {}
            Ok(status) => {
                eprintln!("error: `cargo {}` failed ({status})", args.join(" "));
                return ExitCode::FAILURE;
            }
            Err(error) => {
                eprintln!("error: could not run cargo: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

/// Runs the SciPy fixture generator. It is run by hand when a statistics case changes, and its
/// output is committed: the Rust tests never need Python.
fn fixtures() -> ExitCode {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace");
    let script = root.join("xtask/fixtures/gen_stats_fixtures.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    eprintln!("$ {python} {}", script.display());
    match Command::new(&python).arg(&script).current_dir(root).status() {
        Ok(status) if status.success() => {
            eprintln!("fixtures written; review `git diff crystallize/tests/fixtures/stats` and commit them");
            ExitCode::SUCCESS
        }
        Ok(status) => {
            eprintln!(
                "error: the generator failed ({status}); it needs numpy, scipy and statsmodels: \
                 `pip install numpy scipy statsmodels`"
            );
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: could not run {python} (set PYTHON to choose the interpreter): {error}");
            ExitCode::FAILURE
        }
    }
}
