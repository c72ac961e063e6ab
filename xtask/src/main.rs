//! Developer tasks: `cargo xtask test` is the project's test command (it installs the Debian
//! packages the system tests need, then runs every test); `cargo xtask ci` checks formatting, then
//! runs it; `cargo xtask fixtures` regenerates the
//! SciPy reference values of `crystallize::stats` (needs Python with numpy, scipy, statsmodels);
//! `cargo xtask bench` runs the side-by-side comparisons of BENCHMARKS.md and rewrites it;
//! `cargo xtask screenshots` photographs the HTML report and the viewer into target/screenshots/.

mod bench;
mod memory;
mod screenshots;
mod system;

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let task = std::env::args().nth(1);
    match task.as_deref() {
        Some("test") => test(&std::env::args().skip(2).collect::<Vec<_>>()),
        Some("ci") => ci(),
        Some("fixtures") => fixtures(),
        Some("bench") => bench::bench(&std::env::args().skip(2).collect::<Vec<_>>()),
        Some("screenshots") => screenshots::screenshots(),
        Some(other) => {
            eprintln!("error: unknown task '{other}'; tasks: test, ci, fixtures, bench, screenshots");
            ExitCode::from(2)
        }
        None => {
            eprintln!("usage: cargo xtask <task>\n\ntasks:\n  test      the README's test command: installs missing Debian packages (as root), then runs every test\n  ci        format check, then `cargo xtask test` (as .ci/run does)\n  fixtures  rewrite crystallize/tests/fixtures/stats/*.json from SciPy (python3 with numpy, scipy, statsmodels)\n  bench     side-by-side benchmarks (overhead, speedup, resume, emit, SciPy, crystallize-ml, build); rewrites BENCHMARKS.md\n  screenshots  PNGs of the HTML report and the viewer in target/screenshots/ (headless Chromium)");
            ExitCode::from(2)
        }
    }
}

/// The project's test command: the Debian packages the system tests drive (a real Chromium, a real
/// Slurm) are installed first when missing, so a fresh machine needs nothing else; then every
/// test of the workspace runs. Extra arguments go to `cargo test` (a filter, `--no-fail-fast`).
fn test(extra: &[String]) -> ExitCode {
    if let Err(error) = system::ensure_packages(system::DEBIAN_PACKAGES) {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    let mut args = vec!["test".to_owned(), "--workspace".to_owned(), "--locked".to_owned()];
    args.extend(extra.iter().cloned());
    cargo(&args)
}

fn cargo(args: &[String]) -> ExitCode {
    eprintln!("$ cargo {}", args.join(" "));
    match Command::new(env!("CARGO")).args(args).status() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("error: `cargo {}` failed ({status})", args.join(" "));
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: could not run cargo: {error}");
            ExitCode::FAILURE
        }
    }
}

fn ci() -> ExitCode {
    let format = cargo(&["fmt", "--all", "--", "--check"].map(str::to_owned));
    if format != ExitCode::SUCCESS {
        return format;
    }
    test(&[])
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
