//! Peak memory of the commands a user runs on big runs: `run`, `report` (text and `--json`),
//! `runs` and `watch` of the trivial experiment (`trivial-cli`, the bench's experiments behind
//! crystallize's command line), at a tenth of the units and at all of them. Each command is a
//! child process; its peak resident set is what `wait4` reports for it (`ru_maxrss`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// One command measured: its peak resident set in KiB and its wall time in seconds.
pub struct Measured {
    pub peak_kib: u64,
    pub seconds: f64,
}

/// Runs `command` (stdout and stderr discarded) to its end; its peak memory and time, or why not.
pub fn measure(command: &mut Command) -> Result<Measured, String> {
    let started = Instant::now();
    let child = command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
    let child = child.map_err(|e| format!("cannot start {command:?}: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain data, and wait4 fills it for the child just started (which is
    // reaped here: `child` is not waited for again).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if waited != pid {
        return Err(format!("wait4 failed for {command:?}: {}", std::io::Error::last_os_error()));
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("{command:?} failed (wait status {status})"));
    }
    // Linux reports ru_maxrss in KiB.
    Ok(Measured { peak_kib: usage.ru_maxrss as u64, seconds: started.elapsed().as_secs_f64() })
}

/// Measures every command at `units` trivial units (two conditions, `units / 2` replicates), in a
/// store under `scratch`; `name=value` lines for BENCHMARKS.md, keyed by command and units.
pub fn commands(cli: &Path, scratch: &Path, units: u64) -> Result<Vec<(String, String)>, String> {
    let store = scratch.join(format!("memory-{units}"));
    let _ = std::fs::remove_dir_all(&store);
    std::fs::create_dir_all(&store).map_err(|e| format!("cannot create {}: {e}", store.display()))?;
    let replicates = (units / 2).max(1).to_string();
    let in_store = |args: &[&str]| {
        let mut command = Command::new(cli);
        command.args(args).arg("--store").arg(&store).env_remove("CRYSTALLIZE_STORE").env_remove("CRYSTALLIZE_CONFIG");
        command
    };
    let mut values = Vec::new();
    let mut record = |name: &str, measured: Measured| {
        let mib = measured.peak_kib as f64 / 1024.0;
        values.push((format!("memory_{name}_{units}_mib"), format!("{mib:.1}")));
        values.push((
            format!("memory_{name}_{units}_bytes_per_unit"),
            format!("{:.0}", measured.peak_kib as f64 * 1024.0 / units as f64),
        ));
        values.push((format!("memory_{name}_{units}_s"), format!("{:.2}", measured.seconds)));
        eprintln!("    {name:<12} {units:>8} units: peak {mib:7.1} MiB in {:.2} s", measured.seconds);
    };
    record("run", measure(&mut in_store(&["run", "trivial", "--replicates", &replicates]))?);
    let runs = store.join("runs");
    let id = std::fs::read_dir(&runs)
        .map_err(|e| format!("cannot read {}: {e}", runs.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .ok_or("the run left no run directory")?;
    record("report", measure(&mut in_store(&["report", &id]))?);
    record("report_json", measure(&mut in_store(&["report", &id, "--json"]))?);
    record("runs", measure(&mut in_store(&["runs"]))?);
    record("watch", measure(&mut in_store(&["watch", &id, "--timeout", "600"]))?);
    let _ = std::fs::remove_dir_all(&store);
    Ok(values)
}
