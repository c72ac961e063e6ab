//! `status RUN`: where each shard of a stored run stands — units done / planned / failed, shards
//! never started, live writers and stale leases — and the commands that complete what is missing.
//! It reads only the store (manifest, session records, journals, lease files).

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};

use super::debug::shell_quote;
use super::Invocation;
use super::StoreArgs;
use crate::error::Error;
use crate::session::Shard;
use crate::store::lease::{self, Liveness};
use crate::store::{RunDir, Store};

#[derive(Args, Debug)]
pub(super) struct StatusArgs {
    /// The run id (a unique prefix is enough).
    run: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// A lease whose heartbeat is older than this counts as stale (default 60s).
    #[arg(long, value_name = "DURATION", value_parser = super::duration)]
    lease_stale: Option<Duration>,
    #[command(flatten)]
    store: StoreArgs,
}

/// One shard's row.
struct Row {
    shard: Shard,
    planned: u64,
    done: u64,
    failed: u64,
    started: bool,
    live: Vec<Value>,
    stale: Vec<Value>,
}

pub(super) fn status(args: &StatusArgs, invocation: &Invocation) -> Result<ExitCode, Error> {
    let store = Store::locate(args.store.store.as_deref());
    let run = store.run(&args.run)?;
    let stale_after = args.lease_stale.unwrap_or(lease::DEFAULT_STALE);
    let scan = run.scan();
    let (sessions, _) = run.sessions();
    let leases = lease::leases(run.path());
    let session_shards: Vec<Shard> =
        sessions.iter().filter_map(|s| s.shard.as_deref()).filter_map(|text| Shard::parse(text).ok()).collect();
    // The count the run was made for, else the largest any process used, else one piece.
    let count = run
        .manifest
        .shards
        .or_else(|| session_shards.iter().map(|s| s.count()).max())
        .or_else(|| leases.iter().map(|l| l.shard.count()).filter(|n| *n > 1).max())
        .unwrap_or(1)
        .clamp(1, crate::shard::MAX_SHARDS);
    let range = scan.replicate_range();
    let conditions = scan.conditions.len() as u64;
    let mut rows: Vec<Row> = (0..count)
        .map(|index| {
            let shard = Shard::new(index, count).unwrap_or(Shard::WHOLE);
            Row {
                shard,
                planned: replicates_in(range.clone(), shard).saturating_mul(conditions),
                done: 0,
                failed: 0,
                started: session_shards.iter().any(|s| s.overlaps(shard))
                    || (count == 1 && !sessions.is_empty())
                    || sessions.iter().any(|s| s.shard.is_none()),
                live: Vec::new(),
                stale: Vec::new(),
            }
        })
        .collect();
    for condition in 0..scan.conditions.len() {
        for (replicate, ok) in scan.recorded(condition) {
            if !range.contains(replicate) {
                continue;
            }
            let row = &mut rows[(replicate % count) as usize];
            if *ok {
                row.done += 1;
            } else {
                row.failed += 1;
            }
        }
    }
    let task = crate::shard::scheduler_task(|name| std::env::var(name).ok());
    let mut live_writers = Vec::new();
    let mut stale_leases = Vec::new();
    for found in &leases {
        let liveness = found.liveness(stale_after, task.as_deref());
        let mut value = match &found.record {
            Ok(record) => json!({
                "shard": record.shard, "host": record.host, "pid": record.pid, "writer": record.writer,
                "task": record.task, "since": record.since, "heartbeat": record.heartbeat,
            }),
            Err(why) => json!({"shard": found.shard.to_string(), "error": why}),
        };
        value["file"] = json!(found.path.display().to_string());
        if let Liveness::Stale(why) = &liveness {
            value["stale"] = json!(why);
        }
        for row in rows.iter_mut().filter(|row| row.shard.overlaps(found.shard)) {
            row.started = true;
            match liveness {
                Liveness::Live => row.live.push(value.clone()),
                Liveness::Stale(_) => row.stale.push(value.clone()),
            }
        }
        match liveness {
            Liveness::Live => live_writers.push(value),
            Liveness::Stale(_) => stale_leases.push(value),
        }
    }
    let commands = completing_commands(invocation, &store, &run, &rows, count);
    let (done, failed, planned) = (scan.done(), scan.failed(), scan.planned());
    if args.json {
        let shards: Vec<Value> = rows
            .iter()
            .map(|row| {
                json!({
                    "shard": row.shard.to_string(), "index": row.shard.index(), "planned": row.planned,
                    "done": row.done, "failed": row.failed, "complete": row.done >= row.planned,
                    "started": row.started, "live_writers": row.live, "stale_leases": row.stale,
                })
            })
            .collect();
        let never: Vec<u64> =
            rows.iter().filter(|r| !r.started && r.done + r.failed == 0).map(|r| r.shard.index()).collect();
        let summary = json!({
            "run": run.manifest.run, "experiment": run.manifest.experiment, "status": scan.status(),
            "shard_count": count, "units_planned": planned, "units_done": done, "units_failed": failed,
            "shards": shards, "never_started": never, "live_writers": live_writers, "stale_leases": stale_leases,
            "commands": commands, "warnings": scan.warnings,
        });
        println!("{}", serde_json::to_string_pretty(&summary).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    for warning in &scan.warnings {
        eprintln!("warning: {warning}");
    }
    println!(
        "run {} ({}): {done} of {planned} units done, {failed} failed; {}; {count} shard{}",
        run.manifest.run,
        run.manifest.experiment,
        scan.status(),
        if count == 1 { "" } else { "s" }
    );
    println!("{:<9} {:>7} {:>7} {:>7}  state", "shard", "done", "failed", "planned");
    for row in &rows {
        let state = if let Some(writer) = row.live.first() {
            format!(
                "running: host {} pid {} since {} (heartbeat {})",
                writer["host"].as_str().unwrap_or("?"),
                writer["pid"],
                writer["since"].as_str().unwrap_or("?"),
                writer["heartbeat"].as_str().unwrap_or("?")
            )
        } else if row.done >= row.planned {
            "complete".into()
        } else if let Some(lease) = row.stale.first() {
            format!(
                "stopped: stale lease of host {} pid {} ({})",
                lease["host"].as_str().unwrap_or("?"),
                lease["pid"],
                lease["stale"].as_str().unwrap_or("stale")
            )
        } else if !row.started && row.done + row.failed == 0 {
            "never started".into()
        } else {
            "incomplete, no writer".into()
        };
        println!("{:<9} {:>7} {:>7} {:>7}  {state}", row.shard.to_string(), row.done, row.failed, row.planned);
    }
    if commands.is_empty() {
        if rows.iter().any(|row| !row.live.is_empty()) {
            println!("what is missing is being run by the live writers above");
        } else {
            println!("nothing is missing");
        }
    } else {
        println!("to complete it, run:");
        for command in &commands {
            println!("  {command}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How many replicate indices of `range` belong to `shard`.
fn replicates_in(range: std::ops::Range<u64>, shard: Shard) -> u64 {
    // Of 0..x, the indices with x mod N == I.
    let below = |x: u64| x / shard.count() + u64::from(x % shard.count() > shard.index());
    below(range.end).saturating_sub(below(range.start))
}

/// The commands that complete the shards that are incomplete and have no live writer.
fn completing_commands(invocation: &Invocation, store: &Store, run: &RunDir, rows: &[Row], count: u64) -> Vec<String> {
    let base = format!(
        "{} run {} --resume {}",
        shell_quote(&invocation.program),
        run.manifest.experiment,
        shell_quote(&run.manifest.run)
    );
    let store = format!(" --store {}", shell_quote(&store.root().display().to_string()));
    rows.iter()
        .filter(|row| row.done < row.planned && row.live.is_empty())
        .map(|row| if count == 1 { format!("{base}{store}") } else { format!("{base} --shard {}{store}", row.shard) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicates_per_shard_add_up_to_the_range() {
        for (start, end) in [(0u64, 10u64), (3, 17), (5, 5), (0, 1)] {
            let total: u64 = (0..4).map(|i| replicates_in(start..end, Shard::new(i, 4).unwrap())).sum();
            assert_eq!(total, end - start);
            for i in 0..4 {
                let brute = (start..end).filter(|r| r % 4 == i).count() as u64;
                assert_eq!(replicates_in(start..end, Shard::new(i, 4).unwrap()), brute);
            }
        }
    }
}
