//! Developer tasks: `cargo xtask ci` runs what CI runs.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let task = std::env::args().nth(1);
    match task.as_deref() {
        Some("ci") => ci(),
        Some(other) => {
            eprintln!("error: unknown task '{other}'; tasks: ci");
            ExitCode::from(2)
        }
        None => {
            eprintln!("usage: cargo xtask <task>\n\ntasks:\n  ci    format check, then the README's test command (as .ci/run does)");
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
