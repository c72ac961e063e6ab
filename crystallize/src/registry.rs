//! The parts the attribute macros register through `inventory`, and the validated view of them
//! that every command starts from. Lookups by name answer "did you mean".

use std::any::Any;
use std::collections::BTreeMap;

use crate::context::Ctx;
use crate::error::{suggest, Error};
use crate::overrides::{BuildError, InputOverride, Traced};
use crate::params::{ParamDecl, ParamValue, TypedParams};
use crate::results::UnitOutcome;
pub use crate::source::{Location, StepInfo};

/// The name of the untreated condition.
pub const BASELINE: &str = "baseline";

/// A `#[datasource]`.
#[derive(Debug)]
pub struct DatasourceInfo {
    /// The function's name.
    pub name: &'static str,
    /// Where it is defined.
    pub location: Location,
    /// A hash of its tokens; changes whenever its code changes.
    pub fingerprint: u64,
}

/// The registration of a `#[datasource]`.
pub struct DatasourceEntry(pub &'static DatasourceInfo);

/// The registration of a `#[step]`.
pub struct StepEntry(pub &'static StepInfo);

/// The datasource a treatment swaps in, type-erased (the macro checked its type).
pub struct TreatmentDatasource {
    /// Which datasource.
    pub info: &'static DatasourceInfo,
    /// Produces the experiment's input, boxed.
    pub produce: fn(&Ctx) -> Box<dyn Any>,
}

/// A `#[treatment]`.
pub struct TreatmentEntry {
    /// The experiment it varies.
    pub experiment: &'static str,
    /// Its name, which is the condition's name.
    pub name: &'static str,
    /// Where it is defined.
    pub location: Location,
    /// The datasource it swaps in, if any.
    pub datasource: Option<TreatmentDatasource>,
    /// Its in-place mutation of the input, if any; returns false on a type mismatch that the
    /// macro's compile-time check makes impossible.
    pub mutate: Option<fn(&mut dyn Any, &Ctx) -> bool>,
    /// The params it sets.
    pub sets: &'static [(&'static str, ParamValue)],
    /// The hypotheses its `expect(...)` declares, written out in full (`dolphin.win < baseline.win`):
    /// they join the experiment's declared hypotheses ([`Registry::collect`]).
    pub hypotheses: &'static [&'static str],
    /// A hash of its tokens.
    pub fingerprint: u64,
}

/// An `#[experiment]` (or the experiment that [`crate::quick()`] builds at run time).
#[derive(Clone)]
pub struct ExperimentEntry {
    /// The function's name.
    pub name: &'static str,
    /// Where it is defined.
    pub location: Location,
    /// Its datasource, or `None` for an experiment without input.
    pub datasource: Option<&'static DatasourceInfo>,
    /// Default replicates per condition.
    pub replicates: u64,
    /// Default seed of a run.
    pub seed: u64,
    /// Declared params, in order.
    pub params: &'static [ParamDecl],
    /// Declared hypotheses: its `hypotheses = [...]` and `expect(...)`; once collected into a
    /// [`Registry`], also its treatments' `expect(...)`.
    pub hypotheses: &'static [&'static str],
    /// The metrics it declares (the fields of the `#[derive(Metrics)]` struct it returns), or
    /// `None` when it records them with `ctx.record` only. A hypothesis may name only declared
    /// metrics, which the command line checks before any unit runs.
    pub metrics: Option<&'static [&'static str]>,
    /// The declared metrics' bounds `(low, high)`, parallel to `metrics` (infinite ends when
    /// unbounded; empty when none are declared).
    pub metric_bounds: &'static [(f64, f64)],
    /// A hash of its tokens.
    pub fingerprint: u64,
    /// How to run its units.
    pub vtable: ExperimentVTable,
    /// Its defaults for how a run goes (`jobs`, `timeout`, `retries`, `limits(...)`).
    pub run: RunDefaults,
}

/// An experiment's defaults for how its runs go, from its attribute; the command line and
/// `crystallize.toml` override each.
#[derive(Clone, Copy, Debug)]
pub struct RunDefaults {
    /// Units in flight (`jobs = 16`).
    pub jobs: Option<usize>,
    /// A unit's deadline in milliseconds (`timeout = "120s"`).
    pub timeout_ms: Option<u64>,
    /// Attempts after a retryable failure (`retries = 3`).
    pub retries: Option<u32>,
    /// Named limits and their capacities (`limits(ollama = 2)`).
    pub limits: &'static [(&'static str, usize)],
}

impl RunDefaults {
    /// No defaults: the command line's, or the runner's.
    pub const NONE: RunDefaults = RunDefaults { jobs: None, timeout_ms: None, retries: None, limits: &[] };
}

inventory::collect!(ExperimentEntry);
inventory::collect!(TreatmentEntry);
inventory::collect!(DatasourceEntry);
inventory::collect!(StepEntry);

/// An experiment with its treatments in declared order.
pub struct Experiment {
    /// The registered experiment.
    pub entry: &'static ExperimentEntry,
    /// Its treatments, ordered by source file and line (declared order within a file).
    pub treatments: Vec<&'static TreatmentEntry>,
}

impl Experiment {
    /// Its name.
    pub fn name(&self) -> &'static str {
        self.entry.name
    }

    /// Every condition's name: `baseline`, then each treatment.
    pub fn condition_names(&self) -> Vec<&'static str> {
        std::iter::once(BASELINE).chain(self.treatments.iter().map(|t| t.name)).collect()
    }

    /// The treatment called `name`, with a suggestion when there is none.
    pub fn treatment(&self, name: &str) -> Result<&'static TreatmentEntry, Error> {
        self.treatments.iter().copied().find(|t| t.name == name).ok_or_else(|| {
            let valid: Vec<&str> = self.treatments.iter().map(|t| t.name).collect();
            Error::UnknownTreatment {
                experiment: self.name().to_owned(),
                name: name.to_owned(),
                suggestion: suggest(name, &valid),
                valid: valid.join(", "),
            }
        })
    }
}

/// Produces a condition's input and records its stages (see [`crate::resolve`]).
pub(crate) type TraceInput = fn(Option<&'static TreatmentEntry>, &[InputOverride], &Ctx) -> Result<Traced, BuildError>;

/// Runs one unit of a condition: its input, then the experiment's body.
pub(crate) type RunUnit = fn(Option<&'static TreatmentEntry>, &[InputOverride], &mut Ctx) -> UnitOutcome;

/// The future of one async unit: it owns the unit's context and gives it back with the outcome,
/// so the runner can read what the unit recorded.
pub type UnitFuture = std::pin::Pin<Box<dyn std::future::Future<Output = (Ctx, UnitOutcome)> + Send>>;

/// Runs one async unit of a condition (see [`RunUnit`]).
pub(crate) type RunUnitAsync = fn(Option<&'static TreatmentEntry>, std::sync::Arc<[InputOverride]>, Ctx) -> UnitFuture;

/// How to run an experiment's units without knowing its types; built by the `#[experiment]`
/// macro with `ExperimentVTable::of` (in `crate::resolve`, which builds inputs).
#[derive(Clone, Copy)]
pub struct ExperimentVTable {
    pub(crate) run_unit: RunUnit,
    pub(crate) run_unit_async: Option<RunUnitAsync>,
    pub(crate) trace_input: TraceInput,
    pub(crate) input_type: fn() -> &'static str,
}

impl ExperimentVTable {
    /// The Rust type of the experiment's input.
    pub fn input_type(&self) -> &'static str {
        (self.input_type)()
    }

    /// Runs one unit of the condition that `treatment` defines (`None`: the baseline), with
    /// `overrides` of the input's fields.
    pub fn run_unit(
        &self,
        treatment: Option<&'static TreatmentEntry>,
        overrides: &[InputOverride],
        ctx: &mut Ctx,
    ) -> UnitOutcome {
        (self.run_unit)(treatment, overrides, ctx)
    }

    /// Produces the input of a condition as a unit would, recording each stage (for `show`,
    /// `diff`, the manifest and the checks of `--set` before a run).
    pub fn trace_input(
        &self,
        treatment: Option<&'static TreatmentEntry>,
        overrides: &[InputOverride],
        ctx: &Ctx,
    ) -> Result<Traced, BuildError> {
        (self.trace_input)(treatment, overrides, ctx)
    }
}

/// Implemented by the marker type `#[experiment]` puts beside the function (same name, type
/// namespace), so that treatments reach the experiment's types by naming it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an experiment",
    label = "not an `#[experiment]` function",
    note = "a treatment names the `#[experiment]` function it varies: `#[treatment(my_experiment, ...)]`"
)]
pub trait ExperimentType: 'static {
    /// What the datasource produces and the function consumes.
    type Input: 'static;
    /// The experiment's params struct (`#[derive(Params)]`, the struct the `params(...)` sugar
    /// generates, or `NoParams`); treatments' `set(...)` is type-checked against its fields.
    type Params: TypedParams;
    /// The experiment's declared metrics (its `#[derive(Metrics)]` return type), or
    /// `NoMetrics`; `expect(...)` is type-checked against its fields.
    type Metrics;
    /// The experiment's name.
    const NAME: &'static str;
    /// Whether `cargo test` smoke-tests every condition (`#[experiment(smoke_test = false)]`
    /// turns it off).
    const SMOKE_TEST: bool = true;
    /// Runs the experiment's own datasource.
    fn produce_input(ctx: &Ctx) -> Self::Input;
    /// Runs one replicate.
    fn run(input: Self::Input, ctx: &mut Ctx) -> UnitOutcome;
    /// Whether the experiment is an `async fn`: its units run on the runner's tokio runtime
    /// through [`ExperimentType::run_async`].
    const ASYNC: bool = false;
    /// Runs one replicate of an async experiment; the context comes back with the outcome.
    fn run_async(input: Self::Input, ctx: Ctx) -> UnitFuture {
        let mut ctx = ctx;
        let outcome = Self::run(input, &mut ctx);
        Box::pin(std::future::ready((ctx, outcome)))
    }
    /// The input, for display (`debug`, `show`).
    fn describe_input(input: &Self::Input) -> crate::events::InputView;
    /// The input rebuilt from JSON, for overrides of its fields (`--set players[2].model=x`):
    /// `None` when the input type is not `Deserialize`, else the deserializer's verdict.
    fn input_from_json(value: serde_json::Value) -> Option<Result<Self::Input, String>> {
        let _ = value;
        None
    }
}

/// Every registered part, validated.
pub struct Registry {
    experiments: Vec<Experiment>,
}

impl Registry {
    /// Collects what the macros registered in this binary and checks it is consistent.
    pub fn collect() -> Result<Registry, Error> {
        Registry::from_entries(
            inventory::iter::<ExperimentEntry>.into_iter().collect(),
            inventory::iter::<TreatmentEntry>.into_iter().collect(),
        )
    }

    fn from_entries(
        experiments: Vec<&'static ExperimentEntry>,
        treatments: Vec<&'static TreatmentEntry>,
    ) -> Result<Registry, Error> {
        if experiments.is_empty() {
            return Err(Error::EmptyRegistry);
        }
        let mut problems = Vec::new();
        let mut by_name: BTreeMap<&str, Experiment> = BTreeMap::new();
        for entry in experiments {
            if let Some(existing) = by_name.get(entry.name) {
                problems.push(format!(
                    "two experiments are named '{}': {} and {}",
                    entry.name, existing.entry.location, entry.location
                ));
                continue;
            }
            by_name.insert(entry.name, Experiment { entry, treatments: Vec::new() });
        }
        for treatment in treatments {
            let Some(experiment) = by_name.get_mut(treatment.experiment) else {
                problems.push(format!(
                    "treatment '{}' at {} varies experiment '{}', which is not registered",
                    treatment.name, treatment.location, treatment.experiment
                ));
                continue;
            };
            if treatment.name == BASELINE {
                problems.push(format!(
                    "treatment at {} is named 'baseline', the name of the untreated condition; rename it",
                    treatment.location
                ));
            }
            if let Some(twin) = experiment.treatments.iter().find(|t| t.name == treatment.name) {
                problems.push(format!(
                    "experiment '{}' has two treatments named '{}': {} and {}",
                    treatment.experiment, treatment.name, twin.location, treatment.location
                ));
            }
            for (key, value) in treatment.sets {
                match experiment.entry.params.iter().find(|p| p.name == *key) {
                    None => problems.push(format!("treatment '{}' sets unknown param '{key}'", treatment.name)),
                    Some(decl) if !decl.kind.accepts(value) => problems.push(format!(
                        "treatment '{}' sets param '{key}' to {value}; expected {}",
                        treatment.name,
                        decl.kind.expected()
                    )),
                    Some(_) => {}
                }
            }
            experiment.treatments.push(treatment);
        }
        if !problems.is_empty() {
            return Err(Error::InvalidRegistry(problems.join("\n")));
        }
        let mut experiments: Vec<Experiment> = by_name.into_values().collect();
        for experiment in &mut experiments {
            experiment.treatments.sort_by_key(|t| (t.location.file, t.location.line, t.name));
            experiment.entry = with_treatment_hypotheses(experiment.entry, &experiment.treatments);
        }
        experiments.sort_by_key(|e| (e.entry.location.file, e.entry.location.line));
        Ok(Registry { experiments })
    }

    /// Every experiment, in source order.
    pub fn experiments(&self) -> &[Experiment] {
        &self.experiments
    }

    fn names(&self) -> Vec<&'static str> {
        self.experiments.iter().map(|e| e.name()).collect()
    }

    /// The experiment called `name`; with `None`, the only experiment if there is exactly one.
    pub fn experiment(&self, name: Option<&str>) -> Result<&Experiment, Error> {
        match name {
            Some(name) => self.experiments.iter().find(|e| e.name() == name).ok_or_else(|| {
                let valid = self.names();
                Error::UnknownExperiment {
                    name: name.to_owned(),
                    suggestion: suggest(name, &valid),
                    valid: valid.join(", "),
                }
            }),
            None => match self.experiments.as_slice() {
                [only] => Ok(only),
                _ => Err(Error::ExperimentRequired { valid: self.names().join(", ") }),
            },
        }
    }

    /// Finds a condition written `COND`, `EXP/COND`, or `EXP` (its baseline); returns its
    /// experiment and name.
    pub fn condition(&self, spec: &str) -> Result<(&Experiment, &'static str), Error> {
        // An experiment's name stands for its baseline (`run-once social_deception`).
        if let Some(experiment) = self.experiments.iter().find(|e| e.name() == spec) {
            return Ok((experiment, BASELINE));
        }
        if let Some((experiment, condition)) = spec.split_once('/') {
            let experiment = self.experiment(Some(experiment))?;
            return Ok((experiment, condition_name(experiment, condition)?));
        }
        if spec == BASELINE {
            let experiment = self.experiment(None).map_err(|_| Error::AmbiguousCondition {
                name: spec.to_owned(),
                candidates: self.names().iter().map(|e| format!("{e}/baseline")).collect::<Vec<_>>().join(", "),
            })?;
            return Ok((experiment, BASELINE));
        }
        let matches: Vec<&Experiment> =
            self.experiments.iter().filter(|e| e.treatments.iter().any(|t| t.name == spec)).collect();
        match matches.as_slice() {
            [one] => Ok((one, one.treatment(spec)?.name)),
            [] => {
                let all: Vec<String> =
                    self.experiments.iter().flat_map(|e| e.condition_names().into_iter().map(String::from)).collect();
                let valid: Vec<&str> = all.iter().map(String::as_str).collect();
                let mut valid_sorted = valid.clone();
                valid_sorted.dedup();
                Err(Error::UnknownCondition {
                    name: spec.to_owned(),
                    suggestion: suggest(spec, &valid),
                    valid: valid_sorted.join(", "),
                })
            }
            many => Err(Error::AmbiguousCondition {
                name: spec.to_owned(),
                candidates: many.iter().map(|e| format!("{}/{spec}", e.name())).collect::<Vec<_>>().join(", "),
            }),
        }
    }
}

/// The entry with its treatments' `expect(...)` hypotheses after its own. Each `#[treatment]` is
/// expanded on its own, so only here, once every part is known, can the experiment's list be
/// complete; every command then reads one list (`entry.hypotheses`). The merged entry is leaked:
/// one per experiment with such treatments, per registry collected (once per command).
fn with_treatment_hypotheses(
    entry: &'static ExperimentEntry,
    treatments: &[&'static TreatmentEntry],
) -> &'static ExperimentEntry {
    if treatments.iter().all(|t| t.hypotheses.is_empty()) {
        return entry;
    }
    let mut hypotheses: Vec<&'static str> = entry.hypotheses.to_vec();
    for hypothesis in treatments.iter().flat_map(|t| t.hypotheses.iter()) {
        if !hypotheses.contains(hypothesis) {
            hypotheses.push(hypothesis);
        }
    }
    let mut merged = entry.clone();
    merged.hypotheses = Box::leak(hypotheses.into_boxed_slice());
    Box::leak(Box::new(merged))
}

/// The metrics that the registered experiment `name` declares (see [`ExperimentEntry::metrics`]),
/// looked up in what this binary registered; `None` for an experiment that declares none or is
/// not registered (a [`crate::quick()`] run). Every check of a hypothesis before a run, and of a
/// stored run's `report --hypothesis`, asks here, so they all see the same declaration.
pub fn declared_metrics(name: &str) -> Option<&'static [&'static str]> {
    inventory::iter::<ExperimentEntry>.into_iter().find(|entry| entry.name == name).and_then(|entry| entry.metrics)
}

/// The bounds `(low, high)` that the registered experiment `name` declares for `metric` (see
/// [`ExperimentEntry::metric_bounds`]); `None` when it declares no bound for it.
pub fn declared_bounds(name: &str, metric: &str) -> Option<(f64, f64)> {
    let entry = inventory::iter::<ExperimentEntry>.into_iter().find(|entry| entry.name == name)?;
    let index = entry.metrics?.iter().position(|m| *m == metric)?;
    entry.metric_bounds.get(index).copied().filter(|(low, high)| low.is_finite() || high.is_finite())
}

fn condition_name(experiment: &Experiment, name: &str) -> Result<&'static str, Error> {
    if name == BASELINE {
        return Ok(BASELINE);
    }
    experiment.treatment(name).map(|t| t.name).map_err(|_| {
        let valid = experiment.condition_names();
        Error::UnknownCondition {
            name: format!("{}/{name}", experiment.name()),
            suggestion: suggest(name, &valid),
            valid: valid.join(", "),
        }
    })
}
