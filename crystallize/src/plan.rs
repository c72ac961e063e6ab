//! From what the user asked for to the list of units: conditions (baseline first, then treatments
//! in declared order) with their resolved params, times replicate indices, each with its seed.

use std::borrow::Cow;
use std::sync::Arc;

use crate::context::Ctx;

use crate::error::Error;
use crate::overrides::OverrideValue;
use crate::overrides::{InputOverride, Stage};
use crate::params::{Origin, Params, ResolvedParam};
use crate::registry::{Experiment, ExperimentEntry, TreatmentEntry};
use crate::resolve::{AsyncUnitFn, Condition, UnitFn};
use crate::seed::{unit_seed, SeedPolicy};

pub use crate::registry::BASELINE;

/// The most replicates per condition a run may plan (`--replicates`, `crystallize.toml`, a
/// stored manifest or session): far more than any experiment needs, and small enough that the
/// plan's list of replicate indices (8 bytes each) and every count derived from it stay sane.
/// Larger values are refused before anything is allocated.
pub const MAX_REPLICATES: u64 = 100_000_000;

/// An override of a param or of a field of the input: `--set KEY=VALUE`, or a key of
/// `crystallize.toml`. Checked against the param's or the field's type when the plan is made.
#[derive(Clone, Debug)]
pub struct Override {
    /// A param's name or a path into the input (`players[2].model`); `+key` may add a field.
    pub key: String,
    /// The value.
    pub value: OverrideValue,
    /// Where it came from: [`Origin::CommandLine`] or [`Origin::ConfigFile`].
    pub origin: Origin,
    /// The only condition it applies to (a config file's `[treatments.NAME]`); `None`: all.
    pub scope: Option<String>,
}

impl Override {
    /// Parses `KEY=VALUE` from the command line.
    pub fn parse(text: &str) -> Result<Override, Error> {
        match text.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => Ok(Override {
                key: key.trim().to_owned(),
                value: OverrideValue::Text(value.to_owned()),
                origin: Origin::CommandLine,
                scope: None,
            }),
            _ => Err(Error::BadSetSyntax(text.to_owned())),
        }
    }

    /// When it applies relative to the treatment (see the table in [`crate::resolve`]): 0 before
    /// the treatment (config-file defaults), 2 after it (a config file's per-treatment section),
    /// 3 last (the command line).
    fn rank(&self) -> u8 {
        match (&self.origin, &self.scope) {
            (Origin::CommandLine, _) => 3,
            (_, Some(_)) => 2,
            _ => 0,
        }
    }
}

/// Resolves one condition: declared defaults, the config file's `[params]`, the treatment's
/// `set(...)` (and mutation), the config file's section of this treatment, then `--set` (which
/// applies to every condition and wins). A key that is not a param is a path into the input; it
/// is checked when the input is produced ([`crate::resolve::check_input_overrides`]).
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
    let condition_name = treatment.map(|t| t.name).unwrap_or(BASELINE);
    let applies = |o: &&Override| match o.scope.as_deref() {
        None => true,
        Some(scope) => scope == condition_name,
    };
    let mine: Vec<&Override> = overrides.iter().filter(applies).collect();
    let mut inputs = Vec::new();
    let mut apply = |o: &Override, params: &mut Vec<ResolvedParam>| -> Result<(), Error> {
        let (add, key) = match o.key.strip_prefix('+') {
            Some(key) => (true, key),
            None => (false, o.key.as_str()),
        };
        let Some(param) = params.iter_mut().find(|p| p.name == key) else {
            let stage = if o.rank() == 0 { Stage::BeforeMutation } else { Stage::AfterMutation };
            inputs.push(InputOverride::new(key, add, o.value.clone(), o.origin.clone(), stage)?);
            return Ok(());
        };
        let parsed = match &o.value {
            OverrideValue::Text(text) => param.kind.parse(text),
            OverrideValue::Json(value) => param.kind.from_json(value),
        };
        let decl = experiment.params.iter().find(|d| d.name == param.name);
        param.value = parsed.map_err(|problem| Error::BadParamValue {
            key: key.to_owned(),
            rust_type: decl.map(|d| d.rust_type).unwrap_or("?").to_owned(),
            origin: o.origin.to_string(),
            problem,
        })?;
        param.origin = o.origin.clone();
        Ok(())
    };
    for o in mine.iter().filter(|o| o.rank() == 0) {
        apply(o, &mut params)?;
    }
    if let Some(treatment) = treatment {
        for (key, value) in treatment.sets {
            if let Some(param) = params.iter_mut().find(|p| p.name == *key) {
                param.value = value.clone();
                param.origin = Origin::Treatment(treatment.name.to_owned());
            }
        }
    }
    for rank in [2, 3] {
        for o in mine.iter().filter(|o| o.rank() == rank) {
            apply(o, &mut params)?;
        }
    }
    let name: Arc<str> = Arc::from(condition_name);
    let vtable = experiment.vtable;
    let input_overrides: Arc<[InputOverride]> = inputs.into();
    let captured = input_overrides.clone();
    let run: UnitFn = Arc::new(move |ctx: &mut Ctx| vtable.run_unit(treatment, &captured, ctx));
    let run_async: Option<AsyncUnitFn> = vtable.run_unit_async.map(|run_unit_async| {
        let overrides = input_overrides.clone();
        Arc::new(move |ctx: Ctx| run_unit_async(treatment, overrides.clone(), ctx)) as AsyncUnitFn
    });
    Ok(Condition { name, treatment, params: Arc::new(Params(params)), run, run_async, input_overrides })
}

/// What one invocation runs.
pub struct Plan {
    /// The experiment (owned only for experiments built at run time, like [`crate::quick()`]'s).
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
    pub done: DoneUnits,
    /// The shard this process runs (`None`: every unit); the others' units are skipped.
    pub shard: Option<crate::shard::Shard>,
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
        if replicates > MAX_REPLICATES {
            return Err(Error::BadOption {
                option: "replicates".into(),
                value: replicates.to_string(),
                why: format!("at most {MAX_REPLICATES} replicates per condition"),
            });
        }
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
        crate::resolve::check_input_overrides(experiment.entry, &conditions, seed, SeedPolicy::default())?;
        Ok(Plan {
            experiment: Cow::Borrowed(experiment.entry),
            conditions,
            replicates: (0..replicates).collect(),
            seed,
            policy: SeedPolicy::default(),
            done: DoneUnits::default(),
            shard: None,
        })
    }

    /// Every unit not yet done (of this process's shard), condition by condition, replicate by
    /// replicate.
    pub fn units(&self) -> Vec<Unit> {
        self.each_unit().collect()
    }

    /// Whether any unit is left to run: [`Plan::units`] is not empty, without listing them (24
    /// bytes a unit, which the allocator then kept through the whole run).
    pub fn has_units(&self) -> bool {
        self.each_unit().next().is_some()
    }

    /// [`Plan::units`], one at a time.
    fn each_unit(&self) -> impl Iterator<Item = Unit> + '_ {
        self.conditions.iter().enumerate().flat_map(move |(index, condition)| {
            let done = self.done.replicates(&condition.name);
            let shard = self.shard;
            let mine = move |replicate: &&u64| shard.is_none_or(|shard| shard.contains(**replicate));
            self.replicates.iter().filter(mine).filter(move |replicate| done.binary_search(replicate).is_err()).map(
                move |&replicate| Unit {
                    condition: index,
                    replicate,
                    seed: unit_seed(self.seed, replicate, &condition.name, self.policy),
                },
            )
        })
    }
}

/// The units already done, by condition: a resumed run skips them.
///
/// Each condition's replicates are one sorted vector, not a `(String, u64)` per unit: a resumed
/// run of a million units would otherwise copy a condition name and hash it a million times
/// (most of the time `run --resume` spent before running anything), while a run has only a few
/// conditions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DoneUnits {
    /// Per condition (in the order first added), its done replicates, sorted, without repeats.
    by_condition: Vec<(String, Vec<u64>)>,
}

impl DoneUnits {
    /// Marks `replicates` of `condition` done (in any order; repeats are fine).
    pub fn extend(&mut self, condition: &str, replicates: impl IntoIterator<Item = u64>) {
        let index = match self.by_condition.iter().position(|(name, _)| name == condition) {
            Some(index) => index,
            None => {
                self.by_condition.push((condition.to_owned(), Vec::new()));
                self.by_condition.len() - 1
            }
        };
        let list = &mut self.by_condition[index].1;
        let before = list.len();
        list.extend(replicates);
        // Callers usually add them in order: then there is nothing to sort.
        if !list[before.saturating_sub(1)..].windows(2).all(|w| w[0] < w[1]) {
            list.sort_unstable();
            list.dedup();
        }
    }

    /// Marks one unit done.
    pub fn insert(&mut self, condition: &str, replicate: u64) {
        self.extend(condition, [replicate]);
    }

    /// Whether the unit is done.
    pub fn contains(&self, condition: &str, replicate: u64) -> bool {
        self.replicates(condition).binary_search(&replicate).is_ok()
    }

    /// The done replicates of `condition`, sorted (empty for a condition with none).
    pub fn replicates(&self, condition: &str) -> &[u64] {
        self.by_condition.iter().find(|(name, _)| name == condition).map_or(&[], |(_, list)| list.as_slice())
    }

    /// How many units are done.
    pub fn len(&self) -> usize {
        self.by_condition.iter().map(|(_, list)| list.len()).sum()
    }

    /// Whether no unit is done.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every done unit, `(condition, replicate)`, condition by condition in the order first
    /// added, replicates in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.by_condition.iter().flat_map(|(name, list)| list.iter().map(move |&r| (name.as_str(), r)))
    }
}

impl<S: AsRef<str>> FromIterator<(S, u64)> for DoneUnits {
    fn from_iter<I: IntoIterator<Item = (S, u64)>>(units: I) -> DoneUnits {
        // Gathered per condition first and sorted once each: inserting one by one would sort a
        // condition's list again at every replicate that comes out of order.
        let mut gathered: Vec<(String, Vec<u64>)> = Vec::new();
        for (condition, replicate) in units {
            let condition = condition.as_ref();
            match gathered.iter_mut().find(|(name, _)| name == condition) {
                Some((_, list)) => list.push(replicate),
                None => gathered.push((condition.to_owned(), vec![replicate])),
            }
        }
        let mut done = DoneUnits::default();
        for (condition, list) in gathered {
            done.extend(&condition, list);
        }
        done
    }
}

#[cfg(test)]
mod done_tests {
    use super::DoneUnits;

    #[test]
    fn done_units_are_a_set_per_condition() {
        let mut done: DoneUnits = [("a", 3), ("b", 1), ("a", 1), ("a", 3)].into_iter().collect();
        done.extend("b", [0, 1, 2]);
        assert_eq!(done.len(), 5);
        assert!(done.contains("a", 1) && done.contains("a", 3) && !done.contains("a", 2));
        assert!(done.contains("b", 0) && !done.contains("c", 0));
        assert_eq!(done.replicates("b"), [0, 1, 2]);
        assert_eq!(done.iter().collect::<Vec<_>>(), [("a", 1), ("a", 3), ("b", 0), ("b", 1), ("b", 2)]);
        assert!(DoneUnits::default().is_empty());
    }
}
