//! The on-ramp: run a plain function over named configs, no attributes and no `main!`.
//!
//! ```
//! use crystallize::prelude::*;
//!
//! #[derive(Clone)]
//! struct Config { bias: f64 }
//!
//! fn play_once(config: Config, ctx: &mut Ctx) {
//!     let mut rng = ctx.rng();
//!     ctx.record("win", rng.random_bool(config.bias));
//! }
//!
//! let results = crystallize::quick(play_once, [("baseline", Config { bias: 0.5 }), ("biased", Config { bias: 0.8 })], 20)?;
//! println!("{}", results.table());
//! assert_eq!(results.values("biased", "win").len(), 20);
//! # Ok::<(), crystallize::Error>(())
//! ```
//!
//! It is the same machinery as the attribute path — the same planner, seeds, runner, store and
//! report — so graduating to `#[experiment]` later changes no result: the first config plays the
//! role of the baseline, and replicate *k* gets the same seed in every config.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

use crate::context::Ctx;
use crate::error::Error;
use crate::events::Observer;
use crate::params::Params;
use crate::plan::Plan;
use crate::registry::ExperimentVTable;
use crate::registry::{ExperimentEntry, Location};
use crate::resolve::{Condition, UnitFn};
use crate::results::IntoUnitOutcome;
use crate::runner::{self, RunResults};
use crate::session::Session;
use crate::store::recorder::Origin;
use crate::summary;

/// Runs `f` on every config for `replicates` replicates (seed 0, all cores, nothing stored) and
/// returns the results. The first config is the reference condition. For more options, use
/// [`Quick`].
#[track_caller]
pub fn quick<C, F, O, N>(
    f: F,
    configs: impl IntoIterator<Item = (N, C)>,
    replicates: u64,
) -> Result<QuickResults, Error>
where
    C: Clone + Send + Sync + 'static,
    F: Fn(C, &mut Ctx) -> O + Send + Sync + 'static,
    O: IntoUnitOutcome,
    N: Into<String>,
{
    let mut builder = Quick::new(f).replicates(replicates);
    for (name, config) in configs {
        builder = builder.config(name, config);
    }
    builder.run()
}

/// The unit function of a [`Quick`] run, shared by the conditions it builds.
type QuickUnit<C> = Arc<dyn Fn(C, &mut Ctx) -> crate::results::UnitOutcome + Send + Sync>;

/// A [`quick`] run with options: seed, jobs, a store, observers.
pub struct Quick<C> {
    unit: QuickUnit<C>,
    name: &'static str,
    location: Location,
    configs: Vec<(String, C)>,
    replicates: u64,
    seed: u64,
    jobs: usize,
    store: Option<PathBuf>,
    observers: Vec<Box<dyn Observer>>,
}

impl<C: Clone + Send + Sync + 'static> Quick<C> {
    /// Starts a run of `f`. The experiment is named after the function (`play_once`).
    #[track_caller]
    pub fn new<F, O>(f: F) -> Quick<C>
    where
        F: Fn(C, &mut Ctx) -> O + Send + Sync + 'static,
        O: IntoUnitOutcome,
    {
        let caller = std::panic::Location::caller();
        let type_name = std::any::type_name::<F>();
        let name = type_name.rsplit("::").next().filter(|n| !n.contains('{')).unwrap_or("quick");
        Quick {
            unit: Arc::new(move |config, ctx| f(config, ctx).into_unit_outcome()),
            name,
            location: Location { module_path: "quick", file: caller.file(), line: caller.line() },
            configs: Vec::new(),
            replicates: 10,
            seed: 0,
            jobs: runner::default_jobs(),
            store: None,
            observers: Vec::new(),
        }
    }

    /// Names the experiment (in the store and in reports).
    pub fn name(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// Adds a named config; the first one added is the reference condition.
    pub fn config(mut self, name: impl Into<String>, config: C) -> Self {
        self.configs.push((name.into(), config));
        self
    }

    /// Replicates per config (default 10).
    pub fn replicates(mut self, replicates: u64) -> Self {
        self.replicates = replicates;
        self
    }

    /// The run's seed (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Units in parallel (default: available cores).
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }

    /// Stores the run in `dir` (as `--store` does), so `runs`/`report` of any crystallize binary
    /// can read it later.
    pub fn store(mut self, dir: impl Into<PathBuf>) -> Self {
        self.store = Some(dir.into());
        self
    }

    /// Adds an observer of the run.
    pub fn observer(mut self, observer: impl Observer + 'static) -> Self {
        self.observers.push(Box::new(observer));
        self
    }

    /// Runs every config for every replicate.
    pub fn run(self) -> Result<QuickResults, Error> {
        if self.configs.is_empty() {
            return Err(Error::InvalidQuick("give at least one named config".into()));
        }
        if self.replicates == 0 {
            return Err(Error::InvalidQuick("replicates must be at least 1".into()));
        }
        for (index, (name, _)) in self.configs.iter().enumerate() {
            if name.is_empty() || name.contains(['/', '.', ' ']) {
                return Err(Error::InvalidQuick(format!(
                    "config name '{name}' must be non-empty, without '/', '.' or spaces (it is used in hypotheses like 'a.metric > b.metric')"
                )));
            }
            if self.configs[..index].iter().any(|(other, _)| other == name) {
                return Err(Error::InvalidQuick(format!("config name '{name}' is given twice")));
            }
        }
        let entry = ExperimentEntry {
            name: self.name,
            location: self.location,
            datasource: None,
            replicates: self.replicates,
            seed: self.seed,
            params: &[],
            hypotheses: &[],
            metrics: None,
            metric_bounds: &[],
            fingerprint: 0,
            run: crate::registry::RunDefaults::NONE,
            vtable: ExperimentVTable::unregistered::<C>(),
        };
        let conditions = self
            .configs
            .into_iter()
            .map(|(name, config)| {
                let unit = self.unit.clone();
                let run: UnitFn = Arc::new(move |ctx: &mut Ctx| unit(config.clone(), ctx));
                Condition {
                    name: Arc::from(name),
                    treatment: None,
                    params: Arc::new(Params::default()),
                    run,
                    run_async: None,
                    input_overrides: Arc::new([]),
                }
            })
            .collect();
        let plan = Plan {
            experiment: Cow::Owned(entry),
            conditions,
            replicates: (0..self.replicates).collect(),
            seed: self.seed,
            policy: Default::default(),
            done: Default::default(),
            shard: None,
        };
        let mut session = Session::from_plan(plan).jobs(self.jobs).origin(Origin {
            crate_name: self.name.to_owned(),
            crate_version: String::new(),
            command: crate::store::recorder::command_line(),
        });
        if let Some(dir) = self.store {
            session = session.store(dir);
        }
        for observer in self.observers {
            session = session.boxed_observer(observer);
        }
        let finished = session.run()?;
        Ok(QuickResults { run_id: finished.run, results: finished.results })
    }
}

/// What a [`quick`] run produced.
#[derive(Clone, Debug)]
pub struct QuickResults {
    /// The stored run's id, when a store was given.
    pub run_id: Option<String>,
    /// Every unit, in plan order.
    pub results: RunResults,
}

impl QuickResults {
    /// The summary table (condition, metric, n, mean, sd, min, max).
    pub fn table(&self) -> String {
        summary::to_table(&self.results)
    }

    /// The values of `metric` in `condition`'s successful units, by replicate.
    pub fn values(&self, condition: &str, metric: &str) -> Vec<f64> {
        self.results.values(condition, metric)
    }

    /// Decides a hypothesis about this run (`"dolphin.win < baseline.win"`) with the default
    /// test for its design; see [`crate::hypothesis`].
    pub fn hypothesis(&self, text: &str) -> Result<crate::hypothesis::HypothesisResult, String> {
        crate::hypothesis::check(text, &self.results.units)
    }

    /// How many units failed.
    pub fn failed(&self) -> usize {
        self.results.failed()
    }

    /// The same JSON object as `run --json`.
    pub fn to_json(&self) -> serde_json::Value {
        summary::to_json(self.run_id.as_deref(), &self.results)
    }
}

impl std::fmt::Display for QuickResults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.table())
    }
}
