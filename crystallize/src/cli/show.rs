//! `show [EXP/]COND`: the resolved configuration of one condition, every value annotated with
//! where it came from (like Hydra's `--cfg job` or Sacred's `print_config`).

use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use serde_json::{json, Value};

use super::App;
use crate::config_file;
use crate::error::Error;
use crate::plan::{resolve_condition, BASELINE};
use crate::registry::{Experiment, Registry};
use crate::resolve::{self, InputResolution, ResolvedCondition};

/// Arguments of `show`.
#[derive(Args, Debug)]
pub(super) struct ShowArgs {
    /// The condition: `baseline`, a treatment, or EXP/COND.
    condition: String,
    /// Override a param or an input field: KEY=VALUE (repeatable), as `run` takes it.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// The run seed replicate 0's input is produced with (default: the config file's, else the
    /// experiment's).
    #[arg(long)]
    seed: Option<u64>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub(super) fn show(registry: &Registry, args: &ShowArgs, app: &App) -> Result<ExitCode, Error> {
    let (experiment, condition) = registry.condition(&args.condition)?;
    let resolved = resolve_named(registry, experiment, condition, &args.sets, args.seed, app)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let _ = writeln!(out, "{}", to_json(&resolved));
    } else {
        let _ = write!(out, "{}", to_text(&resolved));
    }
    Ok(ExitCode::SUCCESS)
}

/// Resolves the condition `name` of `experiment` with the config file and `sets` applied.
pub(super) fn resolve_named(
    registry: &Registry,
    experiment: &Experiment,
    name: &str,
    sets: &[String],
    seed: Option<u64>,
    app: &App,
) -> Result<ResolvedCondition, Error> {
    let entry = experiment.entry;
    let settings = config_file::settings(app.manifest_dir, registry, experiment)?;
    let overrides = settings.overrides_with(sets)?;
    let treatment = if name == BASELINE { None } else { Some(experiment.treatment(name)?) };
    let condition = resolve_condition(entry, treatment, &overrides)?;
    let seed = settings.seed(seed, entry.seed);
    let replicates = settings.replicates(None, entry.replicates);
    resolve::resolve(entry, &condition, replicates, seed)
}

/// A value as one line: compact JSON.
pub(super) fn value_text(value: &Value) -> String {
    value.to_string()
}

/// The text of `show`: a header, then aligned `key  value  origin` lines in three groups.
pub(super) fn to_text(resolved: &ResolvedCondition) -> String {
    let mut rows: Vec<Option<[String; 3]>> = Vec::new();
    let mut headers = Vec::new();
    let mut header = |rows: &mut Vec<Option<[String; 3]>>, text: String| {
        headers.push(text);
        rows.push(None);
    };
    let part = |p: &Option<resolve::PartRef>| match p {
        Some(p) => (p.name.to_owned(), format!("{}  ({})", p.origin, p.location)),
        None => ("(none)".to_owned(), String::new()),
    };
    if resolved.datasource.is_some() {
        let (value, origin) = part(&resolved.datasource);
        rows.push(Some(["datasource".into(), value, origin]));
    }
    let (value, origin) = part(&resolved.mutation);
    rows.push(Some(["mutation".into(), value, origin]));
    rows.push(Some([
        "replicates".into(),
        resolved.replicates.value.to_string(),
        resolved.replicates.origin.to_string(),
    ]));
    // A seed from the command line came from `--seed`, not `--set` (what the origin says for
    // params and input fields).
    let seed_origin = match &resolved.seed.origin {
        crate::params::Origin::CommandLine => "--seed".to_owned(),
        other => other.to_string(),
    };
    rows.push(Some(["seed".into(), resolved.seed.value.to_string(), seed_origin]));
    header(&mut rows, if resolved.params.is_empty() { "params  (none)".into() } else { "params".into() });
    for param in &resolved.params {
        let value = serde_json::to_value(&param.value).map(|v| value_text(&v)).unwrap_or_default();
        rows.push(Some([param.name.to_owned(), value, param.origin.to_string()]));
    }
    let input_type = resolve::short_type(resolved.input_type);
    match &resolved.input {
        InputResolution::None => header(&mut rows, "input  (none: the experiment has no datasource)".into()),
        InputResolution::Json { leaves, .. } => {
            header(&mut rows, format!("input  {input_type}, replicate 0"));
            for leaf in leaves {
                rows.push(Some([leaf.path.clone(), value_text(&leaf.value), leaf.origin.to_string()]));
            }
        }
        InputResolution::Opaque(Some(text)) => {
            header(
                &mut rows,
                format!("input  {input_type}, replicate 0 (not Serialize: fields cannot be shown or set)"),
            );
            for line in text.lines() {
                headers.push(format!("  {line}"));
                rows.push(None);
            }
        }
        InputResolution::Opaque(None) => {
            header(&mut rows, format!("input  {input_type} (neither Serialize nor Debug: cannot be shown)"))
        }
        InputResolution::Failed(message) => {
            header(&mut rows, format!("input  {input_type}: producing replicate 0's input failed: {message}"))
        }
    }
    let widths: Vec<usize> =
        (0..2).map(|c| rows.iter().flatten().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut text = format!("{}/{}\n", resolved.experiment, resolved.condition);
    let mut headers = headers.into_iter();
    for row in &rows {
        match row {
            None => {
                text += &headers.next().unwrap_or_default();
                text.push('\n');
            }
            Some([key, value, origin]) => {
                let line = format!("  {key:<w0$}  {value:<w1$}  {origin}", w0 = widths[0], w1 = widths[1]);
                text += line.trim_end();
                text.push('\n');
            }
        }
    }
    text
}

/// The JSON of `show --json`.
pub(super) fn to_json(resolved: &ResolvedCondition) -> Value {
    let part = |p: &Option<resolve::PartRef>| {
        p.as_ref().map(|p| json!({"name": p.name, "location": p.location, "origin": p.origin}))
    };
    let params: Vec<Value> = resolved
        .params
        .iter()
        .map(|p| json!({"name": p.name, "type": p.rust_type, "value": p.value, "origin": p.origin}))
        .collect();
    let input = match &resolved.input {
        InputResolution::None => Value::Null,
        InputResolution::Json { value, leaves } => json!({
            "type": resolved.input_type,
            "replicate": 0,
            "value": value,
            "fields": leaves.iter().map(|l| json!({"path": l.path, "value": l.value, "origin": l.origin})).collect::<Vec<_>>(),
        }),
        InputResolution::Opaque(text) => json!({"type": resolved.input_type, "replicate": 0, "debug": text}),
        InputResolution::Failed(message) => json!({"type": resolved.input_type, "replicate": 0, "error": message}),
    };
    json!({
        "experiment": resolved.experiment,
        "condition": resolved.condition,
        "replicates": {"value": resolved.replicates.value, "origin": resolved.replicates.origin},
        "seed": {"value": resolved.seed.value, "origin": resolved.seed.origin},
        "datasource": part(&resolved.datasource),
        "mutation": part(&resolved.mutation),
        "params": params,
        "input": input,
    })
}
