//! `diff [EXP] A B`: what differs between two conditions — datasource, mutation, params, input
//! fields — one `-` line for A and one `+` line for B per changed key (the seed's format), nested
//! keys flattened to paths (`players[2].model`). `--all` also shows the keys that are the same;
//! `--md` prints a table to paste into a paper or a pull request; `--json` a machine-readable
//! object. `diff RUN_A RUN_B` compares two stored runs: their manifests the same way, then each
//! metric's summary side by side with the two-sample permutation test of the difference in means
//! (the default unpaired test of [`crate::hypothesis`]; exact when small, seeded otherwise).
//!
//! Colour (red `-`, green `+`) only when stdout is a terminal and `NO_COLOR` is unset or empty;
//! `CLICOLOR_FORCE` (non-empty, not `0`) forces it.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Args;
use serde_json::{json, Map, Value};

use super::show::resolve_named;
use super::{App, StoreArgs};
use crate::error::Error;
use crate::params::Origin;
use crate::registry::{Location, Registry};
use crate::resolve::{Entry, ResolvedCondition, Section};
use crate::stats::{self, Alternative, PermutationOptions};
use crate::store::{RunDir, Store};
use crate::summary::{self, MetricSummary};

/// Arguments of `diff`.
#[derive(Args, Debug)]
pub(super) struct DiffArgs {
    /// `[EXP] A B`: two conditions (`baseline`, a treatment, EXP/COND), or two stored runs.
    #[arg(value_name = "NAME", num_args = 2..=3, required = true)]
    names: Vec<String>,
    /// Also show the keys whose values are the same.
    #[arg(long)]
    all: bool,
    /// Print Markdown tables (for a paper or a pull request).
    #[arg(long, conflicts_with = "json")]
    md: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// One side of a key.
#[derive(Clone, Debug, PartialEq)]
struct Side {
    value: Value,
    origin: Option<Origin>,
    location: Option<Location>,
}

impl Side {
    /// The value as one line: compact JSON, at most [`WIDTH`] characters, then the location.
    fn text(&self) -> String {
        match self.location {
            Some(location) => format!("{}  ({location})", self.value_text()),
            None => self.value_text(),
        }
    }

    /// A Markdown cell: the value as code, the location after it.
    fn markdown(&self) -> String {
        match self.location {
            Some(location) => format!("{} ({location})", cell(&self.value_text())),
            None => cell(&self.value_text()),
        }
    }

    fn value_text(&self) -> String {
        let value = match &self.value {
            Value::Null if self.location.is_none() && self.origin.is_some() => "(none)".to_owned(),
            Value::String(s) if self.location.is_some() => s.clone(),
            other => other.to_string(),
        };
        if value.chars().count() > WIDTH {
            value.chars().take(WIDTH - 1).collect::<String>() + "…"
        } else {
            value
        }
    }
}

/// Values longer than this are cut in text and Markdown (JSON has them whole).
const WIDTH: usize = 100;

/// A key with its value on both sides.
#[derive(Clone, Debug, PartialEq)]
struct Row {
    key: String,
    section: &'static str,
    a: Option<Side>,
    b: Option<Side>,
}

impl Row {
    fn changed(&self) -> bool {
        self.a.as_ref().map(|s| &s.value) != self.b.as_ref().map(|s| &s.value)
    }
}

/// Lines up `a` and `b` by key: `a`'s order, then the keys only `b` has.
fn align(a: Vec<(String, &'static str, Side)>, b: Vec<(String, &'static str, Side)>) -> Vec<Row> {
    let mut rows: Vec<Row> =
        a.into_iter().map(|(key, section, side)| Row { key, section, a: Some(side), b: None }).collect();
    for (key, section, side) in b {
        match rows.iter_mut().find(|r| r.key == key && r.section == section) {
            Some(row) => row.b = Some(side),
            None => rows.push(Row { key, section, a: None, b: Some(side) }),
        }
    }
    rows
}

fn section_name(section: Section) -> &'static str {
    match section {
        Section::Datasource => "datasource",
        Section::Mutation => "mutation",
        Section::Param => "param",
        Section::Input | Section::InputText => "input",
    }
}

fn condition_rows(resolved: &ResolvedCondition) -> Vec<(String, &'static str, Side)> {
    resolved
        .entries()
        .into_iter()
        .map(|Entry { key, section, value, origin, location }| {
            (key, section_name(section), Side { value, origin: Some(origin), location })
        })
        .collect()
}

pub(super) fn diff(registry: &Registry, args: &DiffArgs, app: &App) -> Result<ExitCode, Error> {
    let format = if args.json {
        Format::Json
    } else if args.md {
        Format::Markdown
    } else {
        Format::Text(Paint::for_stdout())
    };
    let out = match args.names.as_slice() {
        [experiment, a, b] => {
            let experiment = registry.experiment(Some(experiment))?;
            let a = registry.condition(&format!("{}/{a}", experiment.name()))?;
            let b = registry.condition(&format!("{}/{b}", experiment.name()))?;
            conditions(registry, (a.0, a.1), (b.0, b.1), args.all, &format, app)?
        }
        [a, b] => match (registry.condition(a), registry.condition(b)) {
            (Ok(a), Ok(b)) => conditions(registry, a, b, args.all, &format, app)?,
            (first, second) => {
                let store = Store::locate(args.store.store.as_deref());
                match (store.run(a), store.run(b)) {
                    (Ok(a), Ok(b)) => runs(&a, &b, args.all, &format),
                    (Ok(_), Err(run_error)) | (Err(run_error), Ok(_)) => return Err(run_error),
                    (Err(_), Err(_)) => {
                        return Err(match (first, second) {
                            (Err(error), _) | (_, Err(error)) => error,
                            (Ok(_), Ok(_)) => unreachable!("this arm has a failed lookup"),
                        })
                    }
                }
            }
        },
        _ => unreachable!("clap takes 2 or 3 names"),
    };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
    Ok(ExitCode::SUCCESS)
}

fn conditions(
    registry: &Registry,
    a: (&crate::registry::Experiment, &str),
    b: (&crate::registry::Experiment, &str),
    all: bool,
    format: &Format,
    app: &App,
) -> Result<String, Error> {
    let left = resolve_named(registry, a.0, a.1, &[], None, app)?;
    let right = resolve_named(registry, b.0, b.1, &[], None, app)?;
    let rows = align(condition_rows(&left), condition_rows(&right));
    let label = |r: &ResolvedCondition| format!("{}/{}", r.experiment, r.condition);
    let (la, lb) = (label(&left), label(&right));
    Ok(match format {
        Format::Text(paint) => text(&la, &lb, &rows, all, paint),
        Format::Markdown => {
            let title = if left.experiment == right.experiment {
                format!("**{}**: `{}` vs `{}`\n\n", left.experiment, left.condition, right.condition)
            } else {
                format!("`{la}` vs `{lb}`\n\n")
            };
            title + &markdown(&left.condition, &right.condition, &rows, all)
        }
        Format::Json => {
            let mut object = Map::new();
            object.insert("a".into(), json!({"experiment": left.experiment, "condition": left.condition}));
            object.insert("b".into(), json!({"experiment": right.experiment, "condition": right.condition}));
            object.insert("entries".into(), json_rows(&rows, all));
            format!("{}\n", Value::Object(object))
        }
    })
}

/// `diff RUN_A RUN_B` as plain text without colour: what `view` shows when comparing two runs.
#[cfg(feature = "view")]
pub(super) fn runs_text(a: &RunDir, b: &RunDir) -> String {
    runs(a, b, false, &Format::Text(Paint { on: false }))
}

/// How to print.
enum Format {
    Text(Paint),
    Markdown,
    Json,
}

/// ANSI colours, or none.
pub(super) struct Paint {
    on: bool,
}

impl Paint {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset or empty; `CLICOLOR_FORCE`
    /// (non-empty, not `0`) forces it.
    pub(super) fn for_stdout() -> Paint {
        let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
        let forced = std::env::var_os("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0");
        Paint { on: !set("NO_COLOR") && (forced || std::io::stdout().is_terminal()) }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

fn text(label_a: &str, label_b: &str, rows: &[Row], all: bool, paint: &Paint) -> String {
    let mut out = paint.paint("1", &format!("--- {label_a}")) + "\n";
    out += &(paint.paint("1", &format!("+++ {label_b}")) + "\n");
    let mut shown = 0;
    for row in rows {
        if !row.changed() {
            if all {
                let side = row.a.as_ref().or(row.b.as_ref()).map(Side::text).unwrap_or_default();
                out += &paint.paint("2", &format!("  {}: {side}", row.key));
                out.push('\n');
            }
            continue;
        }
        shown += 1;
        if let Some(a) = &row.a {
            out += &paint.paint("31", &format!("- {}: {}", row.key, a.text()));
            out.push('\n');
        }
        if let Some(b) = &row.b {
            out += &paint.paint("32", &format!("+ {}: {}", row.key, b.text()));
            out.push('\n');
        }
    }
    if shown == 0 {
        out += "(no differences)\n";
    }
    out
}

fn cell(text: &str) -> String {
    format!("`{}`", text.replace('|', "\\|").replace('`', "'"))
}

fn markdown(label_a: &str, label_b: &str, rows: &[Row], all: bool) -> String {
    let mut out = format!("| key | {} | {} |\n|---|---|---|\n", cell(label_a), cell(label_b));
    let side = |s: &Option<Side>| s.as_ref().map(Side::markdown).unwrap_or_else(|| "(absent)".into());
    let mut shown = 0;
    for row in rows.iter().filter(|r| all || r.changed()) {
        shown += 1;
        out += &format!("| {} | {} | {} |\n", cell(&row.key), side(&row.a), side(&row.b));
    }
    if shown == 0 {
        out += "| (no differences) | | |\n";
    }
    out
}

fn json_rows(rows: &[Row], all: bool) -> Value {
    let side = |s: &Option<Side>| match s {
        None => Value::Null,
        Some(s) => {
            let mut object = Map::new();
            object.insert("value".into(), s.value.clone());
            if let Some(origin) = &s.origin {
                object.insert("origin".into(), json!(origin));
            }
            if let Some(location) = &s.location {
                object.insert("location".into(), json!(location));
            }
            Value::Object(object)
        }
    };
    Value::Array(
        rows.iter()
            .filter(|r| all || r.changed())
            .map(|r| json!({"key": r.key, "section": r.section, "changed": r.changed(), "a": side(&r.a), "b": side(&r.b)}))
            .collect(),
    )
}

/// What a stored run's manifest says: the document `diff RUN_A RUN_B` compares.
fn manifest_rows(run: &RunDir) -> Value {
    let manifest = &run.manifest;
    let config = &manifest.config;
    let document = json!({
        "experiment": manifest.experiment,
        // From the manifest and sessions: the journals are read once, for the metrics.
        "replicates": run.planned_replicates().0,
        "seed": config.seed,
        "seed_policy": config.seed_policy,
        "treatments": manifest.request.treatments,
        "set": manifest.request.sets,
        "conditions": config.conditions,
        "code": config.fingerprints,
        "versions": manifest.versions,
        "git": manifest.git,
    });
    document
}

/// Walks two documents together: objects key by key, lists of objects item by item; a subtree
/// only one side has is one row (so a condition only one run has is one line, not fifty).
fn pair(path: String, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<Row>) {
    let join = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
    let nested = |items: &[Value]| items.iter().any(|i| i.is_object() || i.is_array());
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) if !x.is_empty() || !y.is_empty() => {
            for key in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                pair(join(key), x.get(key), y.get(key), out);
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) if nested(x) || nested(y) => {
            for index in 0..x.len().max(y.len()) {
                pair(format!("{path}[{index}]"), x.get(index), y.get(index), out);
            }
        }
        _ => {
            let side = |v: Option<&Value>| v.map(|value| Side { value: value.clone(), origin: None, location: None });
            out.push(Row { key: path, section: "manifest", a: side(a), b: side(b) });
        }
    }
}

fn runs(a: &RunDir, b: &RunDir, all: bool, format: &Format) -> String {
    let mut rows = Vec::new();
    pair(String::new(), Some(&manifest_rows(a)), Some(&manifest_rows(b)), &mut rows);
    let metrics = metric_rows(a, b);
    let (ia, ib) = (&a.manifest.run, &b.manifest.run);
    match format {
        Format::Text(paint) => {
            let mut out = text(ia, ib, &rows, all, paint);
            out.push('\n');
            out += &metrics_table(&metrics);
            out
        }
        Format::Markdown => {
            let mut out = format!("runs `{ia}` vs `{ib}`\n\n");
            out += &markdown("A", "B", &rows, all);
            out += "\n| condition | metric | A | B | change | p (permutation) |\n|---|---|---|---|---|---|\n";
            for m in &metrics {
                out += &format!(
                    "| {} | {} | {} | {} | {} | {} |\n",
                    cell(&m.condition),
                    cell(&m.metric),
                    summary_text(&m.a),
                    summary_text(&m.b),
                    change_text(m),
                    p_text(m)
                );
            }
            out
        }
        Format::Json => {
            let metrics: Vec<Value> = metrics
                .iter()
                .map(|m| {
                    json!({
                        "condition": m.condition,
                        "metric": m.metric,
                        "a": m.a.as_ref().map(summary_json),
                        "b": m.b.as_ref().map(summary_json),
                        "change": change(m),
                        "test": m.test.as_ref().map(|(d, p, exact)| json!({"name": "permutation", "statistic": d, "p": p, "exact": exact})),
                    })
                })
                .collect();
            let value =
                json!({"a": {"run": ia}, "b": {"run": ib}, "entries": json_rows(&rows, all), "metrics": metrics});
            format!("{value}\n")
        }
    }
}

/// One metric of one condition in two runs.
struct MetricRow {
    condition: String,
    metric: String,
    a: Option<MetricSummary>,
    b: Option<MetricSummary>,
    /// The permutation test: the difference in means (B − A), the two-sided p value, and
    /// whether every arrangement was enumerated; when both runs have two or more values.
    test: Option<(f64, f64, bool)>,
}

fn metric_rows(a: &RunDir, b: &RunDir) -> Vec<MetricRow> {
    let (state_a, state_b) = (a.state(), b.state());
    let (units_a, units_b) = (state_a.results(), state_b.results());
    let mut conditions = state_a.conditions.clone();
    conditions.extend(state_b.conditions.iter().filter(|c| !state_a.conditions.contains(c)).cloned());
    let values = |units: &[crate::runner::UnitResult], condition: &str, metric: &str| -> Vec<f64> {
        units
            .iter()
            .filter(|u| u.is_ok() && u.condition == condition)
            .filter_map(|u| u.metrics.get(metric).copied())
            .collect()
    };
    let mut rows = Vec::new();
    for condition in &conditions {
        let mut metrics: Vec<String> = Vec::new();
        for unit in units_a.iter().chain(&units_b).filter(|u| &u.condition == condition) {
            for name in unit.metrics.keys() {
                if !metrics.contains(name) {
                    metrics.push(name.clone());
                }
            }
        }
        metrics.sort();
        for metric in metrics {
            let (x, y) = (values(&units_a, condition, &metric), values(&units_b, condition, &metric));
            let test = (x.len() >= 2 && y.len() >= 2)
                .then(|| {
                    stats::permutation_test(&y, &x, 0.0, Alternative::TwoSided, &PermutationOptions::default()).ok()
                })
                .flatten()
                .filter(|t| t.p.is_finite())
                .map(|t| (t.statistic, t.p, t.exact));
            rows.push(MetricRow {
                condition: condition.clone(),
                metric,
                a: MetricSummary::of(&x),
                b: MetricSummary::of(&y),
                test,
            });
        }
    }
    rows
}

fn summary_text(summary: &Option<MetricSummary>) -> String {
    match summary {
        None => "-".into(),
        Some(s) => match s.sd {
            Some(sd) => format!("{} ± {} (n={})", summary::number(s.mean), summary::number(sd), s.n),
            None => format!("{} (n={})", summary::number(s.mean), s.n),
        },
    }
}

fn summary_json(summary: &MetricSummary) -> Value {
    json!({"n": summary.n, "mean": summary.mean, "sd": summary.sd, "min": summary.min, "max": summary.max})
}

fn change(row: &MetricRow) -> Option<f64> {
    Some(row.b.as_ref()?.mean - row.a.as_ref()?.mean)
}

fn change_text(row: &MetricRow) -> String {
    change(row)
        .map(|d| format!("{}{}", if d >= 0.0 { "+" } else { "" }, summary::number(d)))
        .unwrap_or_else(|| "-".into())
}

fn p_text(row: &MetricRow) -> String {
    row.test.map(|(_, p, _)| summary::number(p)).unwrap_or_else(|| "-".into())
}

fn metrics_table(rows: &[MetricRow]) -> String {
    if rows.is_empty() {
        return "(no metrics in either run)\n".into();
    }
    let mut table = vec![["condition", "metric", "A", "B", "change", "p (permutation)"].map(String::from)];
    for row in rows {
        table.push([
            row.condition.clone(),
            row.metric.clone(),
            summary_text(&row.a),
            summary_text(&row.b),
            change_text(row),
            p_text(row),
        ]);
    }
    summary::align(&table, 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(value: Value) -> Side {
        Side { value, origin: None, location: None }
    }

    #[test]
    fn aligns_keys_and_prints_the_seed_format() {
        let a = vec![("x".to_owned(), "param", side(json!(1))), ("y".to_owned(), "param", side(json!("same")))];
        let b = vec![
            ("y".to_owned(), "param", side(json!("same"))),
            ("x".to_owned(), "param", side(json!(2))),
            ("z".to_owned(), "input", side(json!(true))),
        ];
        let rows = align(a, b);
        let plain = Paint { on: false };
        assert_eq!(text("A", "B", &rows, false, &plain), "--- A\n+++ B\n- x: 1\n+ x: 2\n+ z: true\n");
        assert_eq!(text("A", "B", &rows, true, &plain), "--- A\n+++ B\n- x: 1\n+ x: 2\n  y: \"same\"\n+ z: true\n");
        let colored = text("A", "B", &rows[..1], false, &Paint { on: true });
        assert!(colored.contains("\x1b[31m- x: 1\x1b[0m") && colored.contains("\x1b[32m+ x: 2\x1b[0m"), "{colored}");
        assert_eq!(
            markdown("a", "b", &rows, false),
            "| key | `a` | `b` |\n|---|---|---|\n| `x` | `1` | `2` |\n| `z` | (absent) | `true` |\n"
        );
    }
}
