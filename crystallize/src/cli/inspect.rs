//! Commands that read and print without running anything: `list`, `runs`, `report`; and the
//! report that `run` and `confirm` print at their end.

use std::io::Write;
use std::process::ExitCode;

use serde_json::json;

use super::{ReportArgs, RunsArgs};
use crate::error::Error;
use crate::hypothesis::{checked_hypothesis, EvalOptions};
use crate::registry::{Experiment, Registry};
use crate::report::Report;
use crate::store::{Listing, RunDir, RunScan, Store};
use crate::summary;

pub(super) fn list(registry: &Registry, json: bool) -> Result<ExitCode, Error> {
    let mut out = std::io::stdout().lock();
    if json {
        let all: Vec<serde_json::Value> = registry.experiments().iter().map(experiment_json).collect();
        let _ = writeln!(out, "{}", serde_json::Value::Array(all));
        return Ok(ExitCode::SUCCESS);
    }
    for (index, experiment) in registry.experiments().iter().enumerate() {
        if index > 0 {
            let _ = writeln!(out);
        }
        let _ = write!(out, "{}", experiment_text(experiment));
    }
    Ok(ExitCode::SUCCESS)
}

fn experiment_text(experiment: &Experiment) -> String {
    let entry = experiment.entry;
    let mut text = format!("{}  ({})\n", entry.name, entry.location);
    let datasource =
        entry.datasource.map(|d| format!("{}  ({})", d.name, d.location)).unwrap_or_else(|| "(none)".into());
    text += &format!("  datasource  {datasource}\n");
    text += &format!("  input       {}\n", entry.vtable.input_type());
    text += &format!("  replicates  {}, seed {}\n", entry.replicates, entry.seed);
    let params: Vec<String> =
        entry.params.iter().map(|p| format!("{}: {} = {}", p.name, p.rust_type, p.default)).collect();
    text += &format!("  params      {}\n", if params.is_empty() { "(none)".into() } else { params.join(", ") });
    if let Some(metrics) = entry.metrics {
        text += &format!("  metrics     {}\n", metrics.join(", "));
    }
    if experiment.treatments.is_empty() {
        text += "  treatments  (none)\n";
    }
    for (index, treatment) in experiment.treatments.iter().enumerate() {
        let label = if index == 0 { "treatments" } else { "" };
        let mut changes = Vec::new();
        if let Some(datasource) = &treatment.datasource {
            changes.push(format!("datasource {}", datasource.info.name));
        }
        if treatment.mutate.is_some() {
            changes.push("mutates input".into());
        }
        for (key, value) in treatment.sets {
            changes.push(format!("{key} = {value}"));
        }
        text += &format!("  {label:<10}  {}: {}  ({})\n", treatment.name, changes.join(", "), treatment.location);
    }
    for (index, hypothesis) in entry.hypotheses.iter().enumerate() {
        let label = if index == 0 { "hypotheses" } else { "" };
        text += &format!("  {label:<10}  {hypothesis}\n");
    }
    text
}

fn experiment_json(experiment: &Experiment) -> serde_json::Value {
    let entry = experiment.entry;
    let params: Vec<serde_json::Value> = entry
        .params
        .iter()
        .map(|p| json!({"name": p.name, "type": p.rust_type, "kind": p.kind, "default": p.default}))
        .collect();
    let treatments: Vec<serde_json::Value> = experiment
        .treatments
        .iter()
        .map(|t| {
            let sets: serde_json::Map<String, serde_json::Value> =
                t.sets.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
            json!({
                "name": t.name,
                "location": t.location,
                "datasource": t.datasource.as_ref().map(|d| json!({"name": d.info.name, "location": d.info.location})),
                "mutates_input": t.mutate.is_some(),
                "sets": sets,
            })
        })
        .collect();
    json!({
        "name": entry.name,
        "location": entry.location,
        "datasource": entry.datasource.map(|d| json!({"name": d.name, "location": d.location})),
        "input_type": entry.vtable.input_type(),
        "replicates": entry.replicates,
        "seed": entry.seed,
        "params": params,
        "treatments": treatments,
        "hypotheses": entry.hypotheses,
        "metrics": entry.metrics,
    })
}

/// One stored run as `runs --json` and the viewer's `/api/runs` list it.
pub(super) fn run_json(run: &crate::store::RunDir, state: &crate::store::RunScan) -> serde_json::Value {
    json!({
        "id": run.manifest.run,
        "experiment": run.manifest.experiment,
        "created": run.manifest.created,
        "status": state.status(),
        "units_done": state.done(),
        "units_planned": state.planned(),
        "units_failed": state.failed(),
        "damage": state.damage,
        // Lossily: a path that is not UTF-8 cannot be a JSON string (serializing it fails).
        "path": run.path().to_string_lossy(),
    })
}

/// A run directory that cannot be read, as `runs --json` and `/api/runs` list it.
pub(super) fn damaged_json(run: &crate::store::DamagedRun) -> serde_json::Value {
    json!({"id": run.id, "status": "damaged", "reason": run.reason, "path": run.path.to_string_lossy()})
}

pub(super) fn runs(registry: &Registry, args: &RunsArgs) -> Result<ExitCode, Error> {
    if let Some(name) = &args.experiment {
        registry.experiment(Some(name))?;
    }
    let store = Store::locate(args.store.store.as_deref());
    // A store that is not a directory, or cannot be read, is an error: "no runs" would hide it.
    let Listing { runs, damaged } = store.list()?;
    // A damaged run is listed as such (its reason on stderr), so one bad directory neither hides
    // the others nor disappears; with an experiment filter, the experiment it was is unknown.
    for run in &damaged {
        eprintln!("warning: run {} is damaged: {}", run.id, run.reason);
    }
    // Which units are done is all a listing needs: the scan reads no results.
    let rows: Vec<(RunDir, RunScan)> = runs
        .into_iter()
        .filter(|run| args.experiment.as_ref().is_none_or(|e| *e == run.manifest.experiment))
        .map(|run| {
            let state = run.scan();
            (run, state)
        })
        .collect();
    // Damage in a run's journals is said, not only counted: `report RUN` lists every line.
    for (run, state) in &rows {
        let damage = state.damage;
        if damage.total() > 0 {
            eprintln!(
                "warning: run {} has {} damaged journal line(s), {} record(s) outside its plan and {} disagreeing \
                 record(s) ({} unit(s) in doubt); `report {}` names each file and line{}",
                run.manifest.run,
                damage.lines,
                damage.rejected,
                damage.conflicts,
                damage.in_doubt,
                run.manifest.run,
                if state.status() == crate::store::Status::Damaged {
                    format!(
                        "; `run {} --resume {}` runs the affected units again",
                        run.manifest.experiment, run.manifest.run
                    )
                } else {
                    String::new()
                }
            );
        }
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let list: Vec<serde_json::Value> =
            rows.iter().map(|(run, state)| run_json(run, state)).chain(damaged.iter().map(damaged_json)).collect();
        let _ = writeln!(out, "{}", serde_json::Value::Array(list));
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() && damaged.is_empty() {
        eprintln!("no runs in {}", store.root().display());
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = vec![[
        "run".to_owned(),
        "experiment".into(),
        "created".into(),
        "done".into(),
        "failed".into(),
        "status".into(),
    ]];
    for (run, state) in &rows {
        table.push([
            run.manifest.run.clone(),
            run.manifest.experiment.clone(),
            run.manifest.created.clone(),
            format!("{}/{}", state.done(), state.planned()),
            state.failed().to_string(),
            state.status().to_string(),
        ]);
    }
    for run in &damaged {
        table.push([run.id.clone(), "?".into(), "?".into(), "-".into(), "-".into(), "damaged".into()]);
    }
    let _ = write!(out, "{}", summary::align(&table, 3));
    Ok(ExitCode::SUCCESS)
}

/// How a report is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Format {
    /// Tables for a terminal.
    Text,
    /// One JSON object on one line.
    Json,
    /// Markdown tables.
    Markdown,
}

impl Format {
    /// The format `--json` and `--md` ask for (`--json` wins; clap keeps them apart anyway).
    pub(super) fn from_flags(json: bool, md: bool) -> Format {
        match (json, md) {
            (true, _) => Format::Json,
            (_, true) => Format::Markdown,
            _ => Format::Text,
        }
    }
}

/// Prints the report of a stored run — what `run` prints at its end and `report` prints later —
/// with the hypotheses recorded in the run and `extra` ones; returns it. Hypotheses that could
/// not be decided are also printed on stderr as errors.
pub(super) fn print_report(
    store: &Store,
    run: &RunDir,
    format: Format,
    extra: &[String],
    options: &EvalOptions,
) -> Report {
    let report = Report::from_store_with(store, run, extra, options);
    let mut out = std::io::stdout().lock();
    let _ = match format {
        Format::Json => {
            let mut buffered = std::io::BufWriter::with_capacity(1 << 16, &mut out);
            let written = report.write_json(&mut buffered).and_then(|()| writeln!(buffered));
            written.and_then(|()| buffered.flush())
        }
        Format::Text => write!(out, "{}", report.to_text()),
        Format::Markdown => write!(out, "{}", report.to_markdown()),
    };
    let _ = out.flush();
    for undecided in &report.undecided {
        eprintln!("error: {}", undecided.error);
    }
    if let Some(integrity) = &report.integrity {
        if integrity.status != crate::confirmation::Status::Valid && format == Format::Json {
            eprintln!("integrity: {}", integrity.summary);
        }
    }
    report
}

pub(super) fn report(args: &ReportArgs, invocation: &super::Invocation) -> Result<ExitCode, Error> {
    let store = Store::locate(args.store.store.as_deref());
    let run = store.run(&args.run)?;
    let html = args.html.as_deref().map(super::outfile::Target::of);
    if let Some(target) = &html {
        target.check("--html")?;
    }
    // Every --hypothesis is checked against the run's conditions before anything is computed.
    let conditions = run.conditions();
    let names: Vec<&str> = conditions.iter().map(String::as_str).collect();
    for text in &args.hypotheses {
        checked_hypothesis(text, "in --hypothesis", &run.manifest.experiment, &names)?;
    }
    let format = Format::from_flags(args.json, args.md);
    let options = EvalOptions {
        alpha: args.alpha,
        correction: args.correction,
        test: args.test,
        min_effect: args.min_effect,
        ..EvalOptions::default()
    };
    let report = match &html {
        Some(target) => {
            let report = Report::from_store_with(&store, &run, &args.hypotheses, &options);
            super::html::write(&report, &run, &invocation.program, target)?;
            report
        }
        None => print_report(&store, &run, format, &args.hypotheses, &options),
    };
    Ok(if report.has_problems() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypothesis::checked_hypothesis_with;

    #[test]
    fn hypotheses_are_checked_with_a_caret_and_a_did_you_mean() {
        let conditions = ["baseline", "dolphin"];
        let origin = "declared in #[experiment] at src/main.rs:75";
        assert!(checked_hypothesis("dolphin.win < baseline.win", origin, "exp", &conditions).is_ok());
        assert!(checked_hypothesis("exp/dolphin.win < exp/baseline.win", origin, "exp", &conditions).is_ok());

        let error = checked_hypothesis("dolphin.win >> baseline.win", origin, "exp", &conditions).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert_eq!(
            error.to_string(),
            "bad hypothesis declared in #[experiment] at src/main.rs:75: expected a condition name for the right \
             side, found '>'\n  dolphin.win >> baseline.win\n               ^"
        );

        let error = checked_hypothesis("dolphn.win < baseline.win", "in --hypothesis", "exp", &conditions).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert_eq!(
            error.to_string(),
            "in hypothesis 'dolphn.win < baseline.win' (in --hypothesis): unknown condition 'dolphn'; did you mean \
             'dolphin'? conditions: baseline, dolphin"
        );
        // Another experiment's condition is not this experiment's.
        assert!(checked_hypothesis("other/dolphin.win < baseline.win", origin, "exp", &conditions).is_err());
    }

    #[test]
    fn a_metric_the_experiment_does_not_declare_is_rejected_with_a_did_you_mean() {
        let conditions = ["baseline", "dolphin"];
        let declared = Some(&["win", "rounds"][..]);
        let check = |text| checked_hypothesis_with(text, "in --hypothesis", "exp", &conditions, declared);
        assert!(check("dolphin.win < baseline.win").is_ok());
        let error = check("dolphin.wn < baseline.win").unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert_eq!(
            error.to_string(),
            "in hypothesis 'dolphin.wn < baseline.win' (in --hypothesis): unknown metric 'wn' of experiment 'exp'; \
             did you mean 'win'? declared metrics: win, rounds"
        );
        assert!(check("dolphin.rounds > baseline.score").unwrap_err().to_string().contains("metric 'score'"));
        // Undeclared metrics (`ctx.record` only) are known only once units ran: not checked here.
        assert!(checked_hypothesis_with("dolphin.x < baseline.y", "", "exp", &conditions, None).is_ok());
    }
}
