//! The resolved configuration of a condition, every value with where it came from: the datasource
//! the condition uses, the treatment's mutation, every param, and — when the input type is
//! `Serialize` — the input itself as replicate 0 gets it. This is what `show` prints, what `diff`
//! compares and what the manifest records.
//!
//! It is also where overrides of the input's fields (`--set players[2].model=x`) happen. A key is
//! a param if the experiment declares a param of that name; otherwise it is a path into the input
//! (`input.PATH` also works, for an input field that a param's name would shadow). Input overrides
//! need the input to round-trip through JSON (`Serialize + Deserialize`): the input is serialized,
//! the value is set at the path, and the result is deserialized, which checks it against the
//! field's type.
//!
//! Order of application, lowest precedence first:
//!
//! | step | params | input |
//! |---|---|---|
//! | 1 | declared defaults | the condition's datasource |
//! | 2 | `crystallize.toml` `[params]` | `crystallize.toml` `[params]` (input keys) |
//! | 3 | the treatment's `set(...)` | the treatment's mutation |
//! | 4 | `crystallize.toml` `[treatments.NAME]` | same, input keys |
//! | 5 | `--set` | `--set` (input keys) |
//!
//! The config file's `[params]` act like new defaults, so a treatment still varies what it sets;
//! its `[treatments.NAME]` sections edit one treatment; the command line wins over everything.

use std::any::Any;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use serde_json::Value;

use crate::context::Ctx;
use crate::error::{suggest, Error};
use crate::events::{InputView, Message, UnitKey};
use crate::overrides::{
    all_paths, settable_keys, BuildError, InputOverride, KeyPath, OverrideProblem, PathError, Segment, Stage, Traced,
};
use crate::params::{Origin, ParamValue, Params};
use crate::registry::ExperimentType as Experiment;
use crate::registry::{ExperimentEntry, ExperimentVTable, Location, TreatmentEntry, UnitFuture};
use crate::results::UnitOutcome;
use crate::seed::{unit_seed, SeedPolicy};

/// Runs one unit of a condition: produces its input and runs the experiment on it.
pub type UnitFn = Arc<dyn Fn(&mut Ctx) -> UnitOutcome + Send + Sync>;

/// Runs one async unit of a condition: produces its input and awaits the experiment on it.
pub type AsyncUnitFn = Arc<dyn Fn(Ctx) -> UnitFuture + Send + Sync>;

/// One condition of a run: the baseline or a treatment, with its resolved params.
#[derive(Clone)]
pub struct Condition {
    /// `baseline` or the treatment's name.
    pub name: Arc<str>,
    /// The treatment, or `None` for the baseline (and for the conditions of [`crate::quick()`]).
    pub treatment: Option<&'static TreatmentEntry>,
    /// Every param with its value in this condition and where that value came from.
    pub params: Arc<Params>,
    /// What a unit of this condition runs.
    pub run: UnitFn,
    /// What an async unit of this condition awaits (an `async fn` experiment), run on the
    /// runner's tokio runtime instead of `run`.
    pub run_async: Option<AsyncUnitFn>,
    /// Overrides of the input's fields, in the order they apply (see the table above).
    pub input_overrides: Arc<[InputOverride]>,
}

impl ExperimentVTable {
    /// The vtable of experiment `E`.
    pub const fn of<E: Experiment>() -> ExperimentVTable {
        ExperimentVTable {
            run_unit: run_unit::<E>,
            run_unit_async: if E::ASYNC { Some(run_unit_async::<E>) } else { None },
            trace_input: trace_input::<E>,
            input_type: std::any::type_name::<E::Input>,
        }
    }

    /// The vtable of an experiment that is not registered (the [`crate::quick`] on-ramp): its
    /// conditions carry their own unit functions, so the registered path is never taken.
    pub(crate) fn unregistered<Input: 'static>() -> ExperimentVTable {
        const UNREGISTERED: &str = "this experiment is not registered; its conditions run their own functions";
        fn no_registered_units(_: Option<&'static TreatmentEntry>, _: &[InputOverride], _: &mut Ctx) -> UnitOutcome {
            Err(UNREGISTERED.into())
        }
        fn no_input(_: Option<&'static TreatmentEntry>, _: &[InputOverride], _: &Ctx) -> Result<Traced, BuildError> {
            Err(BuildError::Failed(UNREGISTERED.into()))
        }
        ExperimentVTable {
            run_unit: no_registered_units,
            run_unit_async: None,
            trace_input: no_input,
            input_type: std::any::type_name::<Input>,
        }
    }
}

/// Produces the input of the unit's condition (datasource, the treatment's mutation, input
/// overrides: [`prepare_input`]) and runs the body.
fn run_unit<E: Experiment>(
    treatment: Option<&'static TreatmentEntry>,
    overrides: &[InputOverride],
    ctx: &mut Ctx,
) -> UnitOutcome {
    let input = prepare_input::<E>(treatment, overrides, ctx).map_err(|e| e.message())?;
    if let Some(sink) = ctx.sink().filter(|sink| sink.describe_input) {
        sink.send(Message::Input(sink.unit.clone(), E::describe_input(&input)));
    }
    E::run(input, ctx)
}

/// Like [`run_unit`], for an async experiment: the input is produced first (datasources and
/// mutations are sync), then the body is awaited.
fn run_unit_async<E: Experiment>(
    treatment: Option<&'static TreatmentEntry>,
    overrides: Arc<[InputOverride]>,
    ctx: Ctx,
) -> UnitFuture {
    // The input is produced when the task is first polled (inside the unit's time), in a plain
    // function: the input then never lives across an await of this future, so it need not be
    // `Send` for the experiment to be async.
    Box::pin(async move { start_async::<E>(treatment, &overrides, ctx).await })
}

/// Produces the input and starts the async body on it.
fn start_async<E: Experiment>(
    treatment: Option<&'static TreatmentEntry>,
    overrides: &[InputOverride],
    ctx: Ctx,
) -> UnitFuture {
    let input = match prepare_input::<E>(treatment, overrides, &ctx) {
        Ok(input) => input,
        Err(error) => return Box::pin(std::future::ready((ctx, Err(error.message().into())))),
    };
    if let Some(sink) = ctx.sink().filter(|sink| sink.describe_input) {
        sink.send(Message::Input(sink.unit.clone(), E::describe_input(&input)));
    }
    E::run_async(input, ctx)
}

/// Produces the input of a unit: the condition's datasource, the overrides that precede the
/// mutation, the treatment's mutation, the overrides that follow it. Used by the runner.
pub(crate) fn prepare_input<E: Experiment>(
    treatment: Option<&'static TreatmentEntry>,
    overrides: &[InputOverride],
    ctx: &Ctx,
) -> Result<E::Input, BuildError> {
    build::<E>(treatment, overrides, ctx, None)
}

/// Like [`prepare_input`], recording every stage for [`input_of`].
pub(crate) fn trace_input<E: Experiment>(
    treatment: Option<&'static TreatmentEntry>,
    overrides: &[InputOverride],
    ctx: &Ctx,
) -> Result<Traced, BuildError> {
    let mut traced = Traced { view: InputView::Opaque, before_mutation: None, after_mutation: None, marks: Vec::new() };
    let input = build::<E>(treatment, overrides, ctx, Some(&mut traced))?;
    traced.view = E::describe_input(&input);
    Ok(traced)
}

fn build<E: Experiment>(
    treatment: Option<&'static TreatmentEntry>,
    overrides: &[InputOverride],
    ctx: &Ctx,
    mut trace: Option<&mut Traced>,
) -> Result<E::Input, BuildError> {
    let mut input: E::Input = match treatment.and_then(|t| t.datasource.as_ref()) {
        Some(datasource) => match (datasource.produce)(ctx).downcast::<E::Input>() {
            Ok(input) => *input,
            Err(_) => {
                return Err(BuildError::Failed(format!(
                    "datasource '{}' produced a value that is not {} (a bug in crystallize's type check)",
                    datasource.info.name,
                    std::any::type_name::<E::Input>()
                )))
            }
        },
        None => E::produce_input(ctx),
    };
    let (before, after): (Vec<&InputOverride>, Vec<&InputOverride>) =
        overrides.iter().partition(|o| o.stage == Stage::BeforeMutation);
    input = apply::<E>(input, &before, trace.as_deref_mut())?;
    if let Some(trace) = trace.as_deref_mut() {
        trace.before_mutation = json_of::<E>(&input);
    }
    if let Some((treatment, mutate)) = treatment.and_then(|t| t.mutate.map(|m| (t, m))) {
        if !mutate(&mut input as &mut dyn Any, ctx) {
            return Err(BuildError::Failed(format!(
                "treatment '{}' could not mutate the input (a bug in crystallize's type check)",
                treatment.name
            )));
        }
    }
    if let Some(trace) = trace.as_deref_mut() {
        trace.after_mutation = json_of::<E>(&input);
    }
    apply::<E>(input, &after, trace)
}

fn json_of<E: Experiment>(input: &E::Input) -> Option<Value> {
    match E::describe_input(input) {
        InputView::Json(value) => Some(value),
        _ => None,
    }
}

/// Applies overrides one by one, deserializing after each so that a value that does not fit is
/// blamed on its own key.
fn apply<E: Experiment>(
    input: E::Input,
    overrides: &[&InputOverride],
    mut trace: Option<&mut Traced>,
) -> Result<E::Input, BuildError> {
    let Some(first) = overrides.first() else { return Ok(input) };
    let fail =
        |o: &InputOverride, problem| BuildError::Override { key: o.key.clone(), origin: o.origin.clone(), problem };
    let Some(mut document) = json_of::<E>(&input) else {
        return Err(fail(first, OverrideProblem::NotSettable("the input type is not Serialize")));
    };
    let mut typed = input;
    for o in overrides {
        let path = effective_path(&o.path, &document);
        let current = path.get(&document);
        let value = o.value.to_json(current).map_err(|why| fail(o, OverrideProblem::BadValue(why)))?;
        let mut next = document.clone();
        let spelled = match path.set(&mut next, value, o.add) {
            Ok(spelled) => spelled,
            Err(PathError::UnknownField { .. }) => {
                return Err(fail(
                    o,
                    OverrideProblem::UnknownField { paths: all_paths(&document), settable: settable_keys(&document) },
                ))
            }
            Err(PathError::NotAContainer { parent, .. }) if parent.is_empty() => {
                return Err(fail(o, OverrideProblem::UnknownField { paths: Vec::new(), settable: Vec::new() }))
            }
            Err(other) => return Err(fail(o, OverrideProblem::BadValue(other.to_string()))),
        };
        typed = match E::input_from_json(next.clone()) {
            None => return Err(fail(o, OverrideProblem::NotSettable("the input type is not Deserialize"))),
            Some(Err(why)) => {
                let now = current
                    .map(Value::to_string)
                    .filter(|c| c.chars().count() <= 60)
                    .map(|c| format!(" (it is {c} now)"))
                    .unwrap_or_default();
                return Err(fail(o, OverrideProblem::BadValue(format!("{why}{now}"))));
            }
            Some(Ok(value)) => value,
        };
        if o.add {
            // A new field that the type does not know is dropped by its deserializer: say so
            // rather than ignore the override.
            let kept = json_of::<E>(&typed).and_then(|again| KeyPath::parse(&spelled).ok()?.get(&again).cloned());
            if kept.is_none() {
                return Err(fail(
                    o,
                    OverrideProblem::BadValue(format!(
                        "the input type has no field '{spelled}' (its deserializer ignored it)"
                    )),
                ));
            }
        }
        if let Some(trace) = trace.as_deref_mut() {
            trace.marks.push((spelled, o.origin.clone(), o.stage));
        }
        document = next;
    }
    Ok(typed)
}

/// `input.PATH` means PATH, unless the input has a field called `input`.
fn effective_path(path: &KeyPath, document: &Value) -> KeyPath {
    match path.segments.split_first() {
        Some((Segment::Key(first), rest))
            if first == "input" && !rest.is_empty() && document.get("input").is_none() =>
        {
            KeyPath { segments: rest.to_vec() }
        }
        _ => path.clone(),
    }
}

/// One field of a resolved input.
#[derive(Clone, Debug, PartialEq)]
pub struct InputLeaf {
    /// Its path (`players[2].model`).
    pub path: String,
    /// Its value.
    pub value: Value,
    /// Where the value came from.
    pub origin: Origin,
}

/// The input of a condition for replicate 0, as far as it can be shown.
#[derive(Clone, Debug, PartialEq)]
pub enum InputResolution {
    /// The experiment takes no input (it has no datasource).
    None,
    /// The input as JSON, and each field with its origin.
    Json {
        /// The whole input.
        value: Value,
        /// Every leaf, in document order.
        leaves: Vec<InputLeaf>,
    },
    /// The input is not `Serialize`: its debug text, if it is `Debug`.
    Opaque(Option<String>),
    /// The datasource or the mutation failed or panicked.
    Failed(String),
}

/// A context like a unit's for replicate 0 of `condition`, outside any run.
fn preview_ctx(entry: &ExperimentEntry, condition: &Condition, seed: u64, policy: SeedPolicy) -> Ctx {
    let key = UnitKey {
        experiment: entry.name,
        condition: condition.name.clone(),
        replicate: 0,
        seed: unit_seed(seed, 0, &condition.name, policy),
    };
    Ctx::capturing(Arc::new(key), condition.params.clone())
}

/// The datasource a condition uses: its treatment's, else the experiment's.
pub fn datasource_of(
    entry: &ExperimentEntry,
    condition: &Condition,
) -> Option<(&'static crate::registry::DatasourceInfo, Origin)> {
    match condition.treatment.and_then(|t| t.datasource.as_ref().map(|d| (t, d))) {
        Some((treatment, swapped)) => Some((swapped.info, Origin::Treatment(treatment.name.to_owned()))),
        None => entry.datasource.map(|d| (d, Origin::Default)),
    }
}

/// Produces replicate 0's input of `condition` (run seed `seed`) and says where each field came
/// from. An override that does not fit is an [`Error`]; a datasource or mutation that fails or
/// panics gives [`InputResolution::Failed`].
pub fn input_of(
    entry: &ExperimentEntry,
    condition: &Condition,
    seed: u64,
    policy: SeedPolicy,
) -> Result<InputResolution, Error> {
    if entry.datasource.is_none() && condition.input_overrides.is_empty() {
        return Ok(InputResolution::None);
    }
    let ctx = preview_ctx(entry, condition, seed, policy);
    let traced = catch_unwind(AssertUnwindSafe(|| {
        entry.vtable.trace_input(condition.treatment, &condition.input_overrides, &ctx)
    }));
    let traced = match traced {
        Ok(Ok(traced)) => traced,
        Ok(Err(BuildError::Failed(message))) => return Ok(InputResolution::Failed(message)),
        Ok(Err(BuildError::Override { key, origin, problem })) => {
            return Err(override_error(entry, condition, key, origin, problem))
        }
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic with a non-string payload".into());
            return Ok(InputResolution::Failed(format!("panicked: {message}")));
        }
    };
    if entry.datasource.is_none() {
        return Ok(InputResolution::None);
    }
    let value = match traced.view {
        InputView::Json(value) => value,
        InputView::Debug(text) => return Ok(InputResolution::Opaque(Some(text))),
        InputView::Opaque => return Ok(InputResolution::Opaque(None)),
    };
    let datasource = datasource_of(entry, condition).map(|(d, _)| d.name).unwrap_or("(none)");
    let before: HashMap<String, Value> =
        traced.before_mutation.as_ref().map(leaves).unwrap_or_default().into_iter().collect();
    let after: HashMap<String, Value> =
        traced.after_mutation.as_ref().map(leaves).unwrap_or_default().into_iter().collect();
    let mutation = condition.treatment.filter(|t| t.mutate.is_some());
    let covering = |path: &str, stage: Stage| {
        traced
            .marks
            .iter()
            .rev()
            .find(|(mark, _, s)| *s == stage && covers(mark, path))
            .map(|(_, origin, _)| origin.clone())
    };
    let leaves = leaves(&value)
        .into_iter()
        .map(|(path, leaf)| {
            let origin = covering(&path, Stage::AfterMutation)
                .or_else(|| {
                    mutation
                        .filter(|_| before.get(&path) != after.get(&path))
                        .map(|t| Origin::Treatment(t.name.to_owned()))
                })
                .or_else(|| covering(&path, Stage::BeforeMutation))
                .unwrap_or_else(|| Origin::Datasource(datasource.to_owned()));
            InputLeaf { path, value: leaf, origin }
        })
        .collect();
    Ok(InputResolution::Json { value, leaves })
}

/// Whether an override at `mark` set (part of) the leaf at `path`: the mark is the leaf, above it,
/// or inside it (`models[1]` inside the list leaf `models`).
fn covers(mark: &str, path: &str) -> bool {
    let below = |inner: &str, outer: &str| {
        inner == outer || inner.strip_prefix(outer).is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    };
    below(path, mark) || below(mark, path)
}

/// Flattens a value into `path = value` leaves in document order, like [`crate::diff::flatten`],
/// except that a list of scalars is one leaf (`models = ["a", "b"]`, as the seed's `diff` shows
/// lists); lists holding objects or lists are flattened (`players[2].model`).
pub fn leaves(value: &Value) -> Vec<(String, Value)> {
    fn walk(path: String, value: &Value, out: &mut Vec<(String, Value)>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, child) in map {
                    walk(if path.is_empty() { key.clone() } else { format!("{path}.{key}") }, child, out);
                }
            }
            Value::Array(items) if items.iter().any(|i| i.is_object() || i.is_array()) => {
                for (index, child) in items.iter().enumerate() {
                    walk(format!("{path}[{index}]"), child, out);
                }
            }
            _ => out.push((path, value.clone())),
        }
    }
    let mut out = Vec::new();
    walk(String::new(), value, &mut out);
    out
}

/// Turns an override that does not fit into the error the user reads.
fn override_error(
    entry: &ExperimentEntry,
    condition: &Condition,
    key: String,
    origin: Origin,
    problem: OverrideProblem,
) -> Error {
    let params = condition.params.names();
    let params_text = if params.is_empty() {
        format!("'{}' has no params", entry.name)
    } else {
        format!("params of '{}': {}", entry.name, params.join(", "))
    };
    let input_type = short_type(entry.vtable.input_type());
    let unknown = |paths: &[String], input_text: String| {
        let mut candidates: Vec<&str> = params.clone();
        candidates.extend(paths.iter().map(String::as_str));
        Error::UnknownKey {
            key: key.clone(),
            origin: origin.to_string(),
            suggestion: suggest(&key, &candidates),
            valid: format!("{params_text}; {input_text}"),
        }
    };
    match problem {
        OverrideProblem::UnknownField { paths, settable } => {
            let input_text = if entry.datasource.is_none() {
                "the experiment has no input".to_owned()
            } else if settable.is_empty() {
                format!("the input ({input_type}) has no fields")
            } else {
                format!("input fields ({input_type}): {}", settable.join(", "))
            };
            unknown(&paths, input_text)
        }
        OverrideProblem::NotSettable(why) => unknown(
            &[],
            format!(
                "the fields of the input ({input_type}) cannot be set: {why}; derive Serialize and Deserialize for it"
            ),
        ),
        OverrideProblem::BadValue(problem) => Error::BadInputValue { key, origin: origin.to_string(), problem },
    }
}

/// `a::b::C<d::E>` → `C<E>`.
pub fn short_type(name: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    for c in name.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
        } else {
            out += word.rsplit("::").next().unwrap_or("");
            word.clear();
            out.push(c);
        }
    }
    out += word.rsplit("::").next().unwrap_or("");
    out
}

/// Checks every input override of `conditions` before any unit runs, by producing replicate 0's
/// input of each condition that has some. A datasource that fails here is only warned about: its
/// units will fail and say why.
pub fn check_input_overrides(
    entry: &ExperimentEntry,
    conditions: &[Condition],
    seed: u64,
    policy: SeedPolicy,
) -> Result<(), Error> {
    for condition in conditions.iter().filter(|c| !c.input_overrides.is_empty()) {
        if let InputResolution::Failed(message) = input_of(entry, condition, seed, policy)? {
            eprintln!(
                "warning: cannot check the input overrides of condition '{}': producing its input failed: {message}",
                condition.name
            );
        }
    }
    Ok(())
}

/// Inputs larger than this (as JSON) are recorded in a manifest by digest only.
pub const MANIFEST_INPUT_LIMIT: usize = 64 * 1024;

/// The input of `condition` as a manifest records it: the JSON of replicate 0's input, or, when
/// that is larger than [`MANIFEST_INPUT_LIMIT`], `{"bytes": N, "digest": "<fnv1a-64 hex>"}`;
/// `None` when the input is not JSON (or there is none, or producing it failed).
pub fn manifest_input(entry: &ExperimentEntry, condition: &Condition, seed: u64, policy: SeedPolicy) -> Option<Value> {
    match input_of(entry, condition, seed, policy) {
        Ok(InputResolution::Json { value, .. }) => {
            let text = value.to_string();
            if text.len() <= MANIFEST_INPUT_LIMIT {
                Some(value)
            } else {
                let digest = crate::seed::fnv1a(text.as_bytes());
                Some(serde_json::json!({"bytes": text.len(), "digest": format!("{digest:016x}")}))
            }
        }
        _ => None,
    }
}

/// A value with where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting<T> {
    /// The value.
    pub value: T,
    /// Its origin.
    pub origin: Origin,
}

/// A part of the user's code that a condition uses (a datasource, a mutation).
#[derive(Clone, Debug, PartialEq)]
pub struct PartRef {
    /// The function's name.
    pub name: &'static str,
    /// Where it is defined.
    pub location: Location,
    /// Why the condition uses it (the experiment's default, or a treatment).
    pub origin: Origin,
}

/// One param of a resolved condition.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSetting {
    /// Its name.
    pub name: &'static str,
    /// Its declared Rust type.
    pub rust_type: &'static str,
    /// Its value.
    pub value: ParamValue,
    /// Where the value came from.
    pub origin: Origin,
}

/// Everything a condition is made of, each value with its origin.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedCondition {
    /// The experiment.
    pub experiment: &'static str,
    /// The condition.
    pub condition: String,
    /// Replicates per condition.
    pub replicates: Setting<u64>,
    /// The run seed (replicate 0's input is produced with the unit seed derived from it).
    pub seed: Setting<u64>,
    /// The datasource, if the experiment takes an input.
    pub datasource: Option<PartRef>,
    /// The treatment's mutation of the input, if any.
    pub mutation: Option<PartRef>,
    /// Every param, in declaration order.
    pub params: Vec<ParamSetting>,
    /// The Rust type of the input.
    pub input_type: &'static str,
    /// The input for replicate 0.
    pub input: InputResolution,
}

/// Resolves `condition` of `entry` completely (runs its datasource and mutation once).
pub fn resolve(
    entry: &ExperimentEntry,
    condition: &Condition,
    replicates: Setting<u64>,
    seed: Setting<u64>,
) -> Result<ResolvedCondition, Error> {
    let datasource = datasource_of(entry, condition).map(|(info, origin)| PartRef {
        name: info.name,
        location: info.location,
        origin,
    });
    let mutation = condition.treatment.filter(|t| t.mutate.is_some()).map(|t| PartRef {
        name: t.name,
        location: t.location,
        origin: Origin::Treatment(t.name.to_owned()),
    });
    let params = condition
        .params
        .0
        .iter()
        .map(|p| ParamSetting {
            name: p.name,
            rust_type: entry.params.iter().find(|d| d.name == p.name).map(|d| d.rust_type).unwrap_or("?"),
            value: p.value.clone(),
            origin: p.origin.clone(),
        })
        .collect();
    let input = input_of(entry, condition, seed.value, SeedPolicy::default())?;
    Ok(ResolvedCondition {
        experiment: entry.name,
        condition: condition.name.to_string(),
        replicates,
        seed,
        datasource,
        mutation,
        params,
        input_type: entry.vtable.input_type(),
        input,
    })
}

/// One comparable line of a resolved condition: what `diff` lines up between two conditions.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The key: `datasource`, `mutation`, a param's name, or an input path.
    pub key: String,
    /// What kind of key it is.
    pub section: Section,
    /// The value as JSON (`null` for "none").
    pub value: Value,
    /// Where the value came from.
    pub origin: Origin,
    /// The source location, for datasources and mutations.
    pub location: Option<Location>,
}

/// The kinds of [`Entry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    /// The datasource.
    Datasource,
    /// The treatment's mutation.
    Mutation,
    /// A param.
    Param,
    /// A field of the input.
    Input,
    /// The input as a whole, when it is not JSON.
    InputText,
}

impl ResolvedCondition {
    /// The comparable lines: datasource, mutation, params in declaration order, input fields in
    /// document order.
    pub fn entries(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        let part =
            |part: &Option<PartRef>| part.as_ref().map(|p| Value::String(p.name.to_owned())).unwrap_or(Value::Null);
        if self.datasource.is_some() {
            out.push(Entry {
                key: "datasource".into(),
                section: Section::Datasource,
                value: part(&self.datasource),
                origin: self.datasource.as_ref().map(|d| d.origin.clone()).unwrap_or(Origin::Default),
                location: self.datasource.as_ref().map(|d| d.location),
            });
        }
        out.push(Entry {
            key: "mutation".into(),
            section: Section::Mutation,
            value: part(&self.mutation),
            origin: self.mutation.as_ref().map(|d| d.origin.clone()).unwrap_or(Origin::Default),
            location: self.mutation.as_ref().map(|d| d.location),
        });
        for param in &self.params {
            out.push(Entry {
                key: param.name.to_owned(),
                section: Section::Param,
                value: serde_json::to_value(&param.value).unwrap_or(Value::Null),
                origin: param.origin.clone(),
                location: None,
            });
        }
        match &self.input {
            InputResolution::Json { leaves, .. } => out.extend(leaves.iter().map(|leaf| Entry {
                key: leaf.path.clone(),
                section: Section::Input,
                value: leaf.value.clone(),
                origin: leaf.origin.clone(),
                location: None,
            })),
            InputResolution::Opaque(text) => out.push(Entry {
                key: "input".into(),
                section: Section::InputText,
                value: Value::String(text.clone().unwrap_or_else(|| "(neither Serialize nor Debug)".into())),
                origin: Origin::Default,
                location: None,
            }),
            InputResolution::Failed(message) => out.push(Entry {
                key: "input".into(),
                section: Section::InputText,
                value: Value::String(format!("(producing it failed: {message})")),
                origin: Origin::Default,
                location: None,
            }),
            InputResolution::None => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortens_type_names() {
        assert_eq!(short_type("social_deception::game::GameConfig"), "GameConfig");
        assert_eq!(short_type("alloc::vec::Vec<my::Row>"), "Vec<Row>");
        assert_eq!(short_type("()"), "()");
    }

    #[test]
    fn marks_cover_their_subtrees_only() {
        assert!(covers("players[2]", "players[2].model"));
        assert!(covers("players", "players[0].name"));
        assert!(covers("spoilers", "spoilers"));
        assert!(!covers("players[2]", "players[20].model"));
        assert!(!covers("max", "max_rounds"));
        assert!(covers("models[1]", "models"));
    }

    #[test]
    fn lists_of_scalars_are_one_leaf() {
        let value = serde_json::json!({"models": ["a", "b"], "players": [{"m": 1}], "empty": []});
        let paths: Vec<String> = leaves(&value).into_iter().map(|(p, _)| p).collect();
        assert_eq!(paths, ["models", "players[0].m", "empty"]);
    }
}
