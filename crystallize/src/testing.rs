//! Testing experiments with the tools Rust users already run (`cargo test`, `cargo nextest`).
//!
//! - [`StandaloneCtx`]: a context for unit-testing one step or datasource, with chosen params,
//!   seed, replicate and condition; read back what it recorded and emitted.
//! - [`TestRun`]: run a registered experiment from a test with chosen replicates, seed, treatments
//!   and `--set`-style overrides; get the results; render a deterministic report for snapshots.
//! - [`smoke`]: what the test that `#[experiment]` and `#[treatment]` generate for every condition
//!   runs: one replicate, serially, storing nothing.
//!
//! ```
//! use crystallize::prelude::*;
//! use crystallize::testing::StandaloneCtx;
//!
//! #[step]
//! fn roll(ctx: &mut Ctx) -> u32 {
//!     let sides: u32 = ctx.param("sides");
//!     let value = ctx.rng().random_range(1..=sides);
//!     ctx.emit("rolled", value);
//!     ctx.record("value", value);
//!     value
//! }
//!
//! let mut ctx = StandaloneCtx::new().seed(3).param("sides", 6).build();
//! let value = roll(&mut ctx);
//! assert!((1..=6).contains(&value));
//! assert_eq!(ctx.recorded()[0].value, f64::from(value));
//! assert_eq!(ctx.emitted()[0].payload, value);
//! ```

use std::borrow::Cow;
use std::sync::Arc;

use crate::context::Ctx;
use crate::error::Error;
use crate::events::UnitKey;
use crate::params::{Origin, ParamKind, ParamValue, Params, ResolvedParam};
use crate::runner::{RunResults, UnitResult};
use crate::session::Session;
use crate::summary;

/// Builds a [`Ctx`] outside any run, for unit tests of steps and datasources.
#[derive(Clone, Debug)]
pub struct StandaloneCtx {
    seed: u64,
    replicate: u64,
    condition: String,
    params: Vec<ResolvedParam>,
}

impl Default for StandaloneCtx {
    fn default() -> Self {
        StandaloneCtx { seed: 0, replicate: 0, condition: "standalone".into(), params: Vec::new() }
    }
}

impl StandaloneCtx {
    /// Seed 0, replicate 0, condition `standalone`, no params.
    pub fn new() -> StandaloneCtx {
        StandaloneCtx::default()
    }

    /// The unit's seed (what [`Ctx::rng`] derives from).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The replicate index.
    pub fn replicate(mut self, replicate: u64) -> Self {
        self.replicate = replicate;
        self
    }

    /// The condition's name.
    pub fn condition(mut self, condition: impl Into<String>) -> Self {
        self.condition = condition.into();
        self
    }

    /// A param and its value (`0.7`, `5`, `true`, `"llama"`).
    pub fn param(mut self, name: &'static str, value: impl Into<ParamValue>) -> Self {
        let value = value.into();
        let kind = match &value {
            ParamValue::Bool(_) => ParamKind::Bool,
            ParamValue::Int(_) => ParamKind::Int,
            ParamValue::Float(_) => ParamKind::Float,
            // An absent optional value has no kind of its own; it only needs one to be shown.
            ParamValue::Str(_) | ParamValue::None => ParamKind::Str,
        };
        self.params.retain(|p| p.name != name);
        self.params.push(ResolvedParam { name, kind, value, origin: Origin::Default });
        self
    }

    /// The context.
    pub fn build(self) -> Ctx {
        let unit = Arc::new(UnitKey {
            experiment: "standalone",
            condition: Arc::from(self.condition),
            replicate: self.replicate,
            seed: self.seed,
        });
        Ctx::capturing(unit, Arc::new(Params(self.params)))
    }
}

macro_rules! param_value_from {
    ($($ty:ty => $variant:ident),* $(,)?) => {$(
        impl From<$ty> for ParamValue {
            fn from(value: $ty) -> ParamValue {
                ParamValue::$variant(value.into())
            }
        }
    )*};
}
param_value_from!(bool => Bool, i8 => Int, i16 => Int, i32 => Int, i64 => Int, u8 => Int, u16 => Int, u32 => Int, f32 => Float, f64 => Float);

impl From<&'static str> for ParamValue {
    fn from(value: &'static str) -> ParamValue {
        ParamValue::Str(Cow::Borrowed(value))
    }
}

impl From<String> for ParamValue {
    fn from(value: String) -> ParamValue {
        ParamValue::Str(Cow::Owned(value))
    }
}

/// Runs a registered experiment from a test.
///
/// ```no_run
/// let results = crystallize::testing::TestRun::new("social_deception")
///     .replicates(3)
///     .treatment("dolphin")
///     .set("think_ms=0")
///     .run()
///     .expect("valid names");
/// results.assert_ok();
/// println!("{}", results.report()); // deterministic: `insta::assert_snapshot!(results.report())`
/// ```
#[derive(Clone, Debug)]
pub struct TestRun {
    experiment: String,
    replicates: Option<u64>,
    seed: Option<u64>,
    treatments: Vec<String>,
    sets: Vec<String>,
    jobs: usize,
}

impl TestRun {
    /// A run of the experiment called `experiment`, with its own replicates and seed, every
    /// treatment, serially.
    pub fn new(experiment: impl Into<String>) -> TestRun {
        TestRun {
            experiment: experiment.into(),
            replicates: None,
            seed: None,
            treatments: Vec::new(),
            sets: Vec::new(),
            jobs: 1,
        }
    }

    /// Replicates per condition.
    pub fn replicates(mut self, replicates: u64) -> Self {
        self.replicates = Some(replicates);
        self
    }

    /// The run's seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Runs this treatment (repeatable; without any, every treatment runs). The baseline always runs.
    pub fn treatment(mut self, name: impl Into<String>) -> Self {
        self.treatments.push(name.into());
        self
    }

    /// An override, as `--set KEY=VALUE` takes it.
    pub fn set(mut self, key_value: impl Into<String>) -> Self {
        self.sets.push(key_value.into());
        self
    }

    /// Units in parallel (default 1: tests already run in parallel with each other).
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }

    /// Runs it. Names and overrides are checked before any unit runs.
    pub fn run(self) -> Result<TestResults, Error> {
        let mut session = Session::named(self.experiment).treatments(self.treatments).sets(self.sets).jobs(self.jobs);
        if let Some(replicates) = self.replicates {
            session = session.replicates(replicates);
        }
        if let Some(seed) = self.seed {
            session = session.seed(seed);
        }
        Ok(TestResults { results: session.run()?.results })
    }
}

/// The results of a [`TestRun`].
#[derive(Clone, Debug)]
pub struct TestResults {
    /// Every unit, in plan order.
    pub results: RunResults,
}

impl TestResults {
    /// Every unit, in plan order.
    pub fn units(&self) -> &[UnitResult] {
        &self.results.units
    }

    /// The values of `metric` in `condition`'s successful units, by replicate.
    pub fn values(&self, condition: &str, metric: &str) -> Vec<f64> {
        self.results.values(condition, metric)
    }

    /// Panics, naming every failed unit and how to reproduce it, if any unit failed.
    #[track_caller]
    pub fn assert_ok(&self) {
        let failures: Vec<String> = self.results.units.iter().filter(|u| !u.is_ok()).map(describe_failure).collect();
        if !failures.is_empty() {
            panic!("{} unit(s) failed:\n{}", failures.len(), failures.join("\n"));
        }
    }

    /// Panics unless `hypothesis` (`"dolphin.win < baseline.win"`) is supported by this run,
    /// with the verdict, effect, interval and p in the message.
    #[track_caller]
    pub fn assert_hypothesis(&self, hypothesis: &str) -> crate::hypothesis::HypothesisResult {
        match crate::hypothesis::check(hypothesis, &self.results.units) {
            Ok(result) if result.verdict == crate::hypothesis::Verdict::Supported => result,
            Ok(result) => panic!(
                "hypothesis '{hypothesis}' is {}: effect {:.4}, p {:?}, adjusted p {:?} ({}); {}",
                result.verdict, result.effect, result.p, result.p_adjusted, result.test_detail, result.explanation
            ),
            Err(error) => panic!("{error}"),
        }
    }

    /// A report with no timings and no paths: the same text for the same code and seed, so it
    /// can be snapshot-tested.
    pub fn report(&self) -> String {
        let info = &self.results.info;
        let mut text = format!(
            "{}: {} x {} replicates, seed {}: {} units, {} failed\n",
            info.experiment,
            info.conditions.join(", "),
            info.replicates.len(),
            info.seed,
            self.results.units.len(),
            self.results.failed()
        );
        text += &summary::to_table(&self.results);
        for unit in self.results.units.iter().filter(|u| !u.is_ok()) {
            let message = unit.error.as_ref().map(|e| e.message.as_str()).unwrap_or("failed");
            text += &format!("FAILED {} replicate {}: {message}\n", unit.condition, unit.replicate);
        }
        text
    }
}

fn describe_failure(unit: &UnitResult) -> String {
    let (message, location) = match &unit.error {
        Some(error) => {
            (error.message.as_str(), error.location.as_deref().map(|l| format!(" at {l}")).unwrap_or_default())
        }
        None => ("failed", String::new()),
    };
    format!(
        "  {}/{} replicate {} (seed {}): {message}{location}\n    reproduce: cargo run -- debug {}/{} --replicate {} --seed <run seed>",
        unit.experiment, unit.condition, unit.replicate, unit.seed, unit.experiment, unit.condition, unit.replicate
    )
}

/// Runs one replicate (replicate 0, the experiment's seed) of one condition, serially, storing
/// nothing; panics with the condition, replicate, seed and the `debug` command that reproduces a
/// failure. This is the body of the smoke tests the attributes generate.
#[track_caller]
pub fn smoke(experiment: &str, condition: &str) {
    let treatments = if condition == crate::plan::BASELINE { Vec::new() } else { vec![condition.to_owned()] };
    let session = Session::named(experiment).treatments(treatments).only_condition(condition).replicates(1).jobs(1);
    let results = match session.run() {
        Ok(finished) => finished.results,
        Err(error) => panic!("smoke test of {experiment}/{condition}: {error}"),
    };
    if let Some(unit) = results.units.iter().find(|u| !u.is_ok()) {
        let (message, location) = match &unit.error {
            Some(error) => {
                (error.message.clone(), error.location.clone().map(|l| format!(" at {l}")).unwrap_or_default())
            }
            None => ("failed".into(), String::new()),
        };
        panic!(
            "smoke test failed: {experiment}/{condition} replicate {} (seed {}): {message}{location}\n\
             reproduce with: cargo run -- debug {experiment}/{condition} --replicate {} --seed {}",
            unit.replicate, unit.seed, unit.replicate, results.info.seed
        );
    }
}
