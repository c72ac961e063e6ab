//! `debug`: one replicate of one condition, serially, printing every step, event and metric as it
//! happens. With `--run`, it reproduces a stored unit and says whether its metrics match.

use std::io::Write;
use std::process::ExitCode;

use super::DebugArgs;
use crate::config_file::Settings;
use crate::error::Error;
use crate::plan::Plan;
use crate::registry::{Experiment, Registry};
use crate::runner::UnitResult;
use crate::session::Session;
use crate::store::{manifest, RunDir, Store};
use crate::summary;

pub(super) fn debug(registry: &Registry, args: &DebugArgs, app: &super::App) -> Result<ExitCode, Error> {
    let (experiment, condition_name) = registry.condition(&args.condition)?;
    let settings = crate::config_file::settings(app.manifest_dir, registry, experiment)?;
    let stored = match &args.run {
        Some(id) => Some(Store::locate(args.store.store.as_deref()).run(id)?),
        None => None,
    };
    let session = Session::named(experiment.name());
    let session = match &stored {
        // The stored unit's configuration: its run's seed and overrides, nothing from the flags.
        Some(run) => {
            let seed = stored_seed(experiment, condition_name, run, &settings)?;
            session.seed(seed).sets(run.manifest.request.sets.iter().cloned())
        }
        None => {
            let session = session.sets(args.sets.iter().cloned());
            match args.seed {
                Some(seed) => session.seed(seed),
                None => session,
            }
        }
    };
    let session = args.cache.apply(session.store(Store::locate(args.store.store.as_deref()).root()));
    let unit = session.settings(settings).steps(args.steps).debug_replicate(condition_name, args.replicate)?;
    if let Some(line) = super::cache::summary_line(std::slice::from_ref(&unit)) {
        eprintln!("{line}");
    }
    // Exit 1 when the unit failed, even if it failed exactly as stored: `debug --run R && echo
    // fixed` must not say "fixed" for a unit that still fails.
    let matches = stored.as_ref().is_none_or(|run| compare_with_stored(&unit, run));
    Ok(if unit.is_ok() && matches { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The run seed of a stored run, as its manifest recorded it, after checking that it has the
/// condition; warns about code or configuration that changed since.
fn stored_seed(experiment: &Experiment, name: &str, run: &RunDir, settings: &Settings) -> Result<u64, Error> {
    let manifest = &run.manifest;
    if manifest.experiment != experiment.name() {
        return Err(Error::Store(format!("run {} is a run of experiment '{}'", manifest.run, manifest.experiment)));
    }
    let seed = manifest.config.seed.unwrap_or(experiment.entry.seed);
    let overrides = settings.overrides_with(&manifest.request.sets)?;
    let plan = Plan::new(experiment, &manifest.request.treatments, 1, seed, &overrides)?;
    let drift = manifest::drift(&manifest.config, &manifest::resolved_config(&plan));
    if !drift.is_empty() {
        eprintln!(
            "warning: run {} was made with other code or configuration; the unit may not reproduce:",
            manifest.run
        );
        for line in &drift {
            eprintln!("  {line}");
        }
    }
    if !plan.conditions.iter().any(|c| &*c.name == name) {
        return Err(Error::Store(format!(
            "run {} has no condition '{name}'; its conditions: {}",
            manifest.run,
            run.conditions().join(", ")
        )));
    }
    Ok(seed)
}

/// Compares a re-run unit with its stored record, bit for bit; says whether they match.
fn compare_with_stored(unit: &UnitResult, run: &RunDir) -> bool {
    let state = run.state();
    let stored = state.units.values().find(|u| u.condition == unit.condition && u.replicate == unit.replicate);
    let Some(stored) = stored else {
        println!(
            "run {} has no record of {} replicate {} to compare with",
            run.manifest.run, unit.condition, unit.replicate
        );
        return false;
    };
    let mut differences = Vec::new();
    if stored.seed != unit.seed {
        differences.push(format!("seed: stored {}, now {}", stored.seed, unit.seed));
    }
    if stored.status != unit.status {
        differences.push(format!("status: stored {:?}, now {:?}", stored.status, unit.status));
    }
    let names: std::collections::BTreeSet<&String> = stored.metrics.keys().chain(unit.metrics.keys()).collect();
    for name in names {
        let (before, now) = (stored.metrics.get(name), unit.metrics.get(name));
        if before.map(|v| v.to_bits()) != now.map(|v| v.to_bits()) {
            let show = |v: Option<&f64>| v.map(|v| summary::number(*v)).unwrap_or_else(|| "(none)".into());
            differences.push(format!("{name}: stored {}, now {}", show(before), show(now)));
        }
    }
    if differences.is_empty() {
        println!("matches the stored unit of run {} (metrics identical to the last bit)", run.manifest.run);
        true
    } else {
        println!("DIFFERS from the stored unit of run {}:", run.manifest.run);
        for difference in differences {
            println!("  {difference}");
        }
        false
    }
}

/// `text` as one shell word: unchanged when it is plain, single-quoted otherwise.
pub(super) fn shell_quote(text: &str) -> String {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "_-.=/:,+@".contains(c)) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Every failure with its message, location and the command that reproduces it.
pub(super) fn report_failures(units: &[UnitResult], program: &str, run: &RunDir) {
    let failed: Vec<&UnitResult> = units.iter().filter(|u| !u.is_ok()).collect();
    if failed.is_empty() {
        return;
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "\n{} unit(s) failed:", failed.len());
    for unit in failed {
        let Some(error) = &unit.error else { continue };
        let location = error.location.as_deref().map(|l| format!(" at {l}")).unwrap_or_default();
        let _ = writeln!(
            err,
            "  {} replicate {} (seed {}): {}{location}",
            unit.condition, unit.replicate, unit.seed, error.message
        );
        let _ = writeln!(
            err,
            "    reproduce: {} debug {}/{} --replicate {} --run {}",
            shell_quote(program),
            unit.experiment,
            unit.condition,
            unit.replicate,
            run.manifest.run
        );
    }
}
