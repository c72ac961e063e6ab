//! `cache stats|clear|gc`: the step cache of a store (logic in `crate::cache::admin`), and the
//! line of hits and misses that `run`, `stream` and `debug` print.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::StoreArgs;
use crate::cache::{self, admin};
use crate::error::Error;
use crate::results::{CacheCount, UnitResult};
use crate::store::Store;

/// Arguments of `cache`.
#[derive(Args, Debug)]
pub(super) struct CacheArgs {
    #[command(subcommand)]
    command: CacheCommand,
}

#[derive(Subcommand, Debug)]
enum CacheCommand {
    /// Entries, bytes and hit rate per step (hits and misses from every run's journal).
    Stats {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove every entry, or only those of the cached step STEP.
    Clear {
        /// A `#[step(cache)]` of this binary.
        step: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove the entries no current step can reach (their step's code or version changed),
    /// damaged entries and leftovers of writers that died.
    Gc {
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub(super) fn cache(args: &CacheArgs) -> Result<ExitCode, Error> {
    match &args.command {
        CacheCommand::Stats { json, store } => {
            let stats = admin::stats(&Store::locate(store.store.as_deref()));
            if *json {
                let value = serde_json::json!({
                    "dir": stats.dir,
                    "entries": stats.entries,
                    "bytes": stats.bytes,
                    "damaged": stats.damaged,
                    "steps": stats.steps.iter().map(|s| serde_json::json!({
                        "step": s.step, "entries": s.entries, "bytes": s.bytes,
                        "hits": s.hits, "misses": s.misses, "hit_rate": s.hit_rate(),
                    })).collect::<Vec<_>>(),
                });
                println!("{value}");
            } else {
                println!("cache {}: {} entries, {}", stats.dir, stats.entries, human_bytes(stats.bytes));
                if stats.damaged > 0 {
                    println!("  {} damaged entries (removed by `cache gc`)", stats.damaged);
                }
                if !stats.steps.is_empty() {
                    println!(
                        "{:<24} {:>8} {:>10} {:>8} {:>8} {:>9}",
                        "step", "entries", "bytes", "hits", "misses", "hit rate"
                    );
                }
                for step in &stats.steps {
                    let rate = step.hit_rate().map(|r| format!("{:.1}%", r * 100.0)).unwrap_or_else(|| "-".into());
                    println!(
                        "{:<24} {:>8} {:>10} {:>8} {:>8} {:>9}",
                        step.step,
                        step.entries,
                        human_bytes(step.bytes),
                        step.hits,
                        step.misses,
                        rate
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CacheCommand::Clear { step, store } => {
            if let Some(step) = step {
                cache::check_step("cache clear", step)?;
            }
            let dir = cache::dir_of(Store::locate(store.store.as_deref()).root());
            let (entries, bytes) = admin::clear(&dir, step.as_deref());
            let which = step.as_ref().map(|s| format!(" of step {s}")).unwrap_or_default();
            println!("removed {entries} entries{which} ({}) from {}", human_bytes(bytes), dir.display());
            Ok(ExitCode::SUCCESS)
        }
        CacheCommand::Gc { store } => {
            let dir = cache::dir_of(Store::locate(store.store.as_deref()).root());
            let all: Vec<&'static crate::registry::StepInfo> =
                inventory::iter::<crate::registry::StepEntry>.into_iter().map(|entry| entry.0).collect();
            let collected = admin::gc(&dir, &all);
            println!(
                "removed {} unreachable, {} damaged, {} leftover files ({}); kept {} current entries{}",
                collected.unreachable,
                collected.damaged,
                collected.leftovers,
                human_bytes(collected.bytes),
                collected.kept,
                if collected.foreign > 0 {
                    format!(" and {} of other crates", collected.foreign)
                } else {
                    String::new()
                }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `cache: 30 hits, 0 misses (ask 30/0)` for the units of a run, when a cached step ran.
pub(super) fn summary_line(units: &[UnitResult]) -> Option<String> {
    let mut tally = Tally::default();
    units.iter().for_each(|unit| tally.add(unit));
    tally.summary_line()
}

/// The hits and misses of each cached step, summed over the units that finished: an observer,
/// so that `run` can say them without keeping every unit's result.
#[derive(Default)]
pub(super) struct Tally {
    steps: BTreeMap<String, CacheCount>,
}

impl Tally {
    fn add(&mut self, unit: &UnitResult) {
        for (name, count) in &unit.cache {
            let total = match self.steps.get_mut(name) {
                Some(total) => total,
                None => self.steps.entry(name.clone()).or_default(),
            };
            total.hits = total.hits.saturating_add(count.hits);
            total.misses = total.misses.saturating_add(count.misses);
        }
    }

    /// [`summary_line`] of the units seen.
    pub(super) fn summary_line(&self) -> Option<String> {
        summary_of(&self.steps)
    }
}

impl crate::events::Observer for Tally {
    fn unit_finished(&mut self, result: &UnitResult) {
        self.add(result);
    }

    fn interest(&self) -> crate::events::Interest {
        crate::events::Interest::RESULTS
    }
}

fn summary_of(steps: &BTreeMap<String, CacheCount>) -> Option<String> {
    if steps.is_empty() {
        return None;
    }
    let hits: u64 = steps.values().map(|c| u64::from(c.hits)).sum();
    let misses: u64 = steps.values().map(|c| u64::from(c.misses)).sum();
    let each: Vec<String> = steps.iter().map(|(name, c)| format!("{name} {}/{}", c.hits, c.misses)).collect();
    Some(format!("cache: {hits} hits, {misses} misses (hits/misses: {})", each.join(", ")))
}

fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}
