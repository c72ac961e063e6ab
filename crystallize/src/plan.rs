//! From what the user asked for to the list of units: conditions (baseline first, then treatments
//! in declared order) with their resolved params, times replicate indices, each with its seed.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

use crate::context::Ctx;
use crate::runner::UnitOutcome;

use crate::error::{suggest, Error};
use crate::params::{Origin, Params, ResolvedParam};
use crate::registry::{Experiment, ExperimentEntry, TreatmentEntry};
use crate::seed::{unit_seed, SeedPolicy};

/// The name of the untreated condition.
pub const BASELINE: &str = "baseline";

/// Runs one unit of a condition: produces its input and runs the experiment on it.
pub type UnitFn = Arc<dyn Fn(&mut Ctx) -> UnitOutcome + Send + Sync>;

/// One condition of a run: the baseline or a treatment, with its resolved params.
#[derive(Clone)]
pub struct Condition {
    /// `baseline` or the treatment's name.
    pub name: Arc<str>,
    /// The treatment, or `None` for the baseline (and for the conditions of [`crate::quick`]).
    pub treatment: Option<&'static TreatmentEntry>,
    /// Every param with its value in this condition and where that value came from.
    pub params: Arc<Params>,
    /// What a unit of this condition runs.
    pub run: UnitFn,
}

/// A `--set KEY=VALUE` override, already checked against the param's type.
#[derive(Clone, Debug)]
pub struct Override {
    /// The param.
    pub key: String,
    /// The text after `=`.
    pub value: String,
}

impl Override {
    /// Parses `KEY=VALUE`.
    pub fn parse(text: &str) -> Result<Override, Error> {
        match text.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                Ok(Override { key: key.trim().to_owned(), value: value.to_owned() })
            }
            _ => Err(Error::BadSetSyntax(text.to_owned())),
        }
    }
}

/// Resolves one condition's params: declared defaults, then the treatment's `set`, then `--set`
/// (which applies to every condition and wins).
pub fn resolve_condition(
    experiment: &ExperimentEntry,
    treatment: Option<&'static TreatmentEntry>,
    overrides: &[Override],
) -> Result<Condition, Error> {
    let mut params: Vec<ResolvedParam> = experiment
        .params
        .iter()
        .map(|decl| ResolvedParam {
            name: decl.name,
            kind: decl.kind,
            value: decl.default.clone(),
            origin: Origin::Default,
        })
        .collect();
    if let Some(treatment) = treatment {
        for (key, value) in treatment.sets {
            if let Some(param) = params.iter_mut().find(|p| p.name == *key) {
                param.value = value.clone();
                param.origin = Origin::Treatment(treatment.name.to_owned());
            }
        }
    }
    for Override { key, value } in overrides {
        let names: Vec<&str> = params.iter().map(|p| p.name).collect();
        let Some(param) = params.iter_mut().find(|p| p.name == key) else {
            return Err(Error::UnknownParam {
                experiment: experiment.name.to_owned(),
                key: key.clone(),
                suggestion: suggest(key, &names),
                valid: if names.is_empty() { "(none)".to_owned() } else { names.join(", ") },
            });
        };
        let decl = experiment.params.iter().find(|d| d.name == param.name);
        param.value = param.kind.parse(value).map_err(|problem| Error::BadParamValue {
            key: key.clone(),
            rust_type: decl.map(|d| d.rust_type).unwrap_or("?").to_owned(),
            problem,
        })?;
        param.origin = Origin::CommandLine;
    }
    let name: Arc<str> = Arc::from(treatment.map(|t| t.name).unwrap_or(BASELINE));
    let vtable = experiment.vtable;
    let run: UnitFn = Arc::new(move |ctx: &mut Ctx| vtable.run_unit(treatment, ctx));
    Ok(Condition { name, treatment, params: Arc::new(Params(params)), run })
}

/// What one invocation runs.
pub struct Plan {
    /// The experiment (owned only for experiments built at run time, like [`crate::quick`]'s).
    pub experiment: Cow<'static, ExperimentEntry>,
    /// The conditions, baseline first.
    pub conditions: Vec<Condition>,
    /// The replicate indices each condition runs.
    pub replicates: Vec<u64>,
    /// The run's seed.
    pub seed: u64,
    /// How unit seeds relate to conditions.
    pub policy: SeedPolicy,
    /// Units already done (condition, replicate), which a resumed run skips.
    pub done: HashSet<(String, u64)>,
}

/// One unit: a condition (by index into [`Plan::conditions`]) and a replicate, with its seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unit {
    /// Index into the plan's conditions.
    pub condition: usize,
    /// The replicate index.
    pub replicate: u64,
    /// The unit's seed.
    pub seed: u64,
}

impl Plan {
    /// Plans the baseline and `treatments` (every treatment when empty) of `experiment` for
    /// `replicates` replicates, with `--set` overrides. Every name is checked here, before any
    /// unit runs.
    pub fn new(
        experiment: &Experiment,
        treatments: &[String],
        replicates: u64,
        seed: u64,
        overrides: &[Override],
    ) -> Result<Plan, Error> {
        let mut selected: Vec<&'static TreatmentEntry> = Vec::new();
        for name in treatments {
            let treatment = experiment.treatment(name)?;
            if !selected.iter().any(|t| t.name == treatment.name) {
                selected.push(treatment);
            }
        }
        let chosen: Vec<Option<&'static TreatmentEntry>> = std::iter::once(None)
            .chain(
                experiment
                    .treatments
                    .iter()
                    .filter(|t| selected.is_empty() || selected.iter().any(|s| s.name == t.name))
                    .map(|t| Some(*t)),
            )
            .collect();
        let conditions = chosen
            .into_iter()
            .map(|treatment| resolve_condition(experiment.entry, treatment, overrides))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Plan {
            experiment: Cow::Borrowed(experiment.entry),
            conditions,
            replicates: (0..replicates).collect(),
            seed,
            policy: SeedPolicy::default(),
            done: HashSet::new(),
        })
    }

    /// Every unit not yet done, condition by condition, replicate by replicate.
    pub fn units(&self) -> Vec<Unit> {
        self.conditions
            .iter()
            .enumerate()
            .flat_map(|(index, condition)| {
                self.replicates
                    .iter()
                    .filter(move |&&replicate| !self.done.contains(&(condition.name.to_string(), replicate)))
                    .map(move |&replicate| Unit {
                        condition: index,
                        replicate,
                        seed: unit_seed(self.seed, replicate, &condition.name, self.policy),
                    })
            })
            .collect()
    }
}
