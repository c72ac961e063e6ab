//! One run, put together in one place: a [`Session`] plans the units, opens the store (a new run,
//! or a stored one to resume), records the session with its journal and events log, attaches the
//! observers and runs the units — all of them ([`Session::run`]), one result at a time as they
//! finish ([`Session::stream`]), or one replicate verbosely ([`Session::debug`]).
//!
//! The command line's `run`, `stream`, `debug` and `confirm`, [`crate::quick()`] and
//! [`crate::testing::TestRun`] are thin callers of it, so a library caller gets exactly what the
//! command line does: the same plan, seeds, store records and resume.
//!
//! ```no_run
//! use crystallize::session::Session;
//! # #[crystallize::experiment(replicates = 10)]
//! # fn social_deception(ctx: &mut crystallize::Ctx) {}
//!
//! # fn demo() -> Result<(), crystallize::Error> {
//! // A stored run, read as it goes; breaking out of the loop cancels the rest (resumable).
//! for unit in Session::of::<social_deception>().replicates(10).store(".crystallize").stream()? {
//!     println!("{} #{}: {:?}", unit.condition, unit.replicate, unit.metrics);
//! }
//! // Later, from any process: continue it where it stopped.
//! let finished = Session::of::<social_deception>().store(".crystallize").resume_latest().run()?;
//! println!("{} units, {} failed", finished.results.units.len(), finished.results.failed());
//! # Ok(()) }
//! ```
//!
//! An experiment defined in a library crate is reached from another binary by its marker type,
//! which also makes the linker keep the library's registrations:
//! `Session::of::<my_experiments::social_deception>().run()?`.

use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::config_file::Settings;
use crate::error::Error;
use crate::events::{Interest, Observer};
use crate::plan::{resolve_condition, Plan, BASELINE};
use crate::registry::{Experiment, Registry};
use crate::results::UnitResult;
use crate::runner::{self, Cancel, RetryPolicy, RunOptions, RunResults};
use crate::store::events::EventLog;
use crate::store::journal::JournalWriter;
use crate::store::lease;
use crate::store::manifest::{self, Manifest, Request};
use crate::store::recorder::{self, Origin};
use crate::store::{RunDir, Status, Store};
use crate::verbose::{StepLines, VerbosePrinter};

pub use crate::cache::CacheMode;
use crate::sequential::Monitor;
pub use crate::sequential::{SequentialResult, Status as SequentialStatus, StoppingRule};

/// A run to put together: which experiment and conditions, how many replicates, the seed,
/// overrides, where it is stored (if anywhere), and how it runs. Every name and value is checked
/// when the run starts, before any unit runs.
pub struct Session {
    source: Source,
    treatments: Vec<String>,
    replicates: Option<u64>,
    seed: Option<u64>,
    sets: Vec<String>,
    store: Option<PathBuf>,
    resume: Option<String>,
    force: bool,
    jobs: Option<usize>,
    fail_fast: bool,
    observers: Vec<Box<dyn Observer>>,
    settings: Settings,
    origin: Option<Origin>,
    only_condition: Option<String>,
    first_replicate: u64,
    steps: StepLines,
    timeout: Option<Duration>,
    limits: Vec<(String, usize)>,
    retries: Option<u32>,
    retry: RetryPolicy,
    shard: Option<Shard>,
    run_id: Option<String>,
    lease_stale: Duration,
    until_decided: Option<StoppingRule>,
    decision_lines: bool,
    cache: CacheChoice,
}

/// What a session does with the step cache (see [`Session::cache`]).
#[derive(Default)]
struct CacheChoice {
    /// `None`: the default (on for a run, read for `debug`).
    mode: Option<CacheMode>,
    refresh: Vec<String>,
}

pub use crate::shard::Shard;

/// Where the plan comes from.
enum Source {
    /// A registered experiment by name; `None`: the only one of the binary.
    Registered(Option<String>),
    /// A plan built by the caller ([`crate::quick()`]'s unregistered experiments).
    Built(Box<Plan>),
}

impl Session {
    fn with_source(source: Source) -> Session {
        Session {
            source,
            treatments: Vec::new(),
            replicates: None,
            seed: None,
            sets: Vec::new(),
            store: None,
            resume: None,
            force: false,
            jobs: None,
            fail_fast: false,
            observers: Vec::new(),
            settings: Settings::default(),
            origin: None,
            only_condition: None,
            first_replicate: 0,
            steps: StepLines::default(),
            timeout: None,
            limits: Vec::new(),
            retries: None,
            retry: RetryPolicy::default(),
            shard: None,
            run_id: None,
            lease_stale: lease::DEFAULT_STALE,
            until_decided: None,
            decision_lines: false,
            cache: CacheChoice::default(),
        }
    }

    /// What the run does with the outputs of `#[step(cache)]` steps, kept in the store's
    /// `cache/` (default [`CacheMode::On`]; `debug` reads only). A run without a store caches
    /// nothing.
    pub fn cache(mut self, mode: CacheMode) -> Self {
        self.cache.mode = Some(mode);
        self
    }

    /// Runs every call of the cached step `step` again and stores its new outputs (checked
    /// when the run starts: an unknown or uncached step is an error).
    pub fn refresh(mut self, step: impl Into<String>) -> Self {
        self.cache.refresh.push(step.into());
        self
    }

    /// A run of the experiment `E`: the marker type `#[experiment]` puts beside the function
    /// (`Session::of::<social_deception>()`). Naming the type also keeps a library crate's
    /// experiments linked into the binary that runs them.
    pub fn of<E: crate::registry::ExperimentType>() -> Session {
        Session::named(E::NAME)
    }

    /// A run of the registered experiment called `name` (checked when the run starts, with a
    /// "did you mean").
    pub fn named(name: impl Into<String>) -> Session {
        Session::with_source(Source::Registered(Some(name.into())))
    }

    /// A run of the only experiment registered in this binary (an error names them all when
    /// there are several).
    pub fn only() -> Session {
        Session::with_source(Source::Registered(None))
    }

    /// A run of a plan built by the caller (the conditions carry their own unit functions).
    pub(crate) fn from_plan(plan: Plan) -> Session {
        Session::with_source(Source::Built(Box::new(plan)))
    }

    /// Runs this treatment besides the baseline (repeatable); without any, every treatment runs.
    pub fn treatment(mut self, name: impl Into<String>) -> Self {
        self.treatments.push(name.into());
        self
    }

    /// Runs these treatments besides the baseline; without any, every treatment runs.
    pub fn treatments<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.treatments.extend(names.into_iter().map(Into::into));
        self
    }

    /// Replicates per condition (default: `crystallize.toml`'s, else the experiment's; when
    /// resuming, the stored run's).
    pub fn replicates(mut self, replicates: u64) -> Self {
        self.replicates = Some(replicates);
        self
    }

    /// The run's seed (default: `crystallize.toml`'s, else the experiment's; when resuming, the
    /// stored run's).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Overrides a param or an input field (`players[2].model`) in every condition, exactly as
    /// `--set KEY=VALUE` does; checked against its type when the run starts.
    pub fn set(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        self.sets.push(format!("{key}={value}"));
        self
    }

    /// Overrides given as `KEY=VALUE` text, as the command line has them.
    pub(crate) fn sets(mut self, sets: impl IntoIterator<Item = String>) -> Self {
        self.sets.extend(sets);
        self
    }

    /// Stores the run in the store at `dir` (a new run, or the one resumed), as `--store DIR`
    /// does. Without a store nothing is written, and the run cannot be resumed.
    pub fn store(mut self, dir: impl Into<PathBuf>) -> Self {
        self.store = Some(dir.into());
        self
    }

    /// Continues the stored run `id` (a unique prefix is enough) instead of starting one: the
    /// units already done are not run again. Needs [`Session::store`].
    pub fn resume(mut self, id: impl Into<String>) -> Self {
        self.resume = Some(id.into());
        self
    }

    /// Continues the latest unfinished run of the experiment in the store.
    pub fn resume_latest(self) -> Self {
        self.resume("")
    }

    /// Resumes even though the configuration or code changed since the run started (the session
    /// record keeps what changed).
    pub fn force(mut self) -> Self {
        self.force = true;
        self
    }

    /// Units in parallel (default: the available cores); 1 runs them serially on the calling
    /// thread.
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = Some(jobs.max(1));
        self
    }

    /// Stops scheduling new units after the first failure.
    pub fn fail_fast(mut self) -> Self {
        self.fail_fast = true;
        self
    }

    /// Adds an observer of the run (see [`crate::events::Observer`]).
    pub fn observer(mut self, observer: impl Observer + 'static) -> Self {
        self.observers.push(Box::new(observer));
        self
    }

    /// Fails a unit still running after `timeout` as timed out; an async unit is cancelled at
    /// its deadline (it is re-run by a resume, like any failed unit).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Tries a unit that failed in a way worth it (a timeout, an error returned as
    /// [`crate::results::Failure::retryable`]) up to `retries` more times, with the same seed,
    /// after pauses that double each time; every failed attempt is kept in the journal.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = Some(retries);
        self
    }

    /// Also retries units that panicked (off by default: a panic is usually a bug, which
    /// another attempt repeats).
    pub fn retry_panics(mut self) -> Self {
        self.retry.panics = true;
        self
    }

    /// The pause before the first retry (default 200 ms); each later one doubles.
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry.first_delay = delay;
        self
    }

    /// Lets at most `capacity` units hold the limit `name` at once (see `crate::limits`); a
    /// later call for the same name replaces the earlier one.
    pub fn limit(mut self, name: impl Into<String>, capacity: usize) -> Self {
        let name = name.into();
        self.limits.retain(|(existing, _)| *existing != name);
        self.limits.push((name, capacity.max(1)));
        self
    }

    /// Runs only the units of `shard` (those whose replicate index is `shard.index()` modulo
    /// `shard.count()`): one of several processes sharing the run, each with its own shard. Give
    /// every shard the same run ([`Session::run_id`] or [`Session::resume`]).
    pub fn shard(mut self, shard: Shard) -> Self {
        self.shard = Some(shard);
        self
    }

    /// Stores the run as the run `id` of the store: created by whichever process comes first,
    /// joined by the others (which must plan it identically: the same experiment, treatments,
    /// overrides, replicates, seed and code, or they are refused with what differs). What the
    /// shards of one run started at once are given.
    pub fn run_id(mut self, id: impl Into<String>) -> Self {
        self.run_id = Some(id.into());
        self
    }

    /// How old the heartbeat of another process's lease on the same units may be before it is
    /// taken over as the lease of a process that is gone (default 60 s). This process refreshes
    /// its own every quarter of it.
    pub fn lease_stale(mut self, stale: Duration) -> Self {
        self.lease_stale = stale;
        self
    }

    /// Which step lines [`Session::debug`] prints (default: [`StepLines::Summary`]).
    pub fn steps(mut self, steps: StepLines) -> Self {
        self.steps = steps;
        self
    }

    /// Adds an observer already boxed.
    /// Runs until every hypothesis of `rule` is decided (or its maximum): replicate indices run
    /// in rounds, an anytime-valid confidence sequence per hypothesis is updated after each
    /// completed index, and scheduling stops once all are decided; the units in flight finish
    /// and are kept. The rule is recorded in the manifest. Resuming a run that has a rule
    /// continues its sequence (this rule's maximum and minimum replace the recorded ones).
    pub fn until_decided(mut self, rule: StoppingRule) -> Self {
        self.until_decided = Some(rule);
        self
    }

    /// Prints a JSON line on stdout when a hypothesis is decided (`stream`).
    pub(crate) fn decision_lines(mut self) -> Self {
        self.decision_lines = true;
        self
    }

    pub(crate) fn boxed_observer(mut self, observer: Box<dyn Observer>) -> Self {
        self.observers.push(observer);
        self
    }

    /// What `crystallize.toml` says about the experiment (the command line loads it).
    pub(crate) fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Who runs it, for the store's records (default: the experiment's crate and this process's
    /// command line).
    pub(crate) fn origin(mut self, origin: Origin) -> Self {
        self.origin = Some(origin);
        self
    }

    /// Runs replicate indices from `first` on (a confirmation's fresh ones) instead of from 0.
    pub(crate) fn first_replicate(mut self, first: u64) -> Self {
        self.first_replicate = first;
        self
    }

    /// Runs only this condition of the plan (a smoke test's).
    pub(crate) fn only_condition(mut self, condition: impl Into<String>) -> Self {
        self.only_condition = Some(condition.into());
        self
    }

    /// Runs every unit (the remaining ones of a resumed run) and returns their results in plan
    /// order. A unit that fails is a result, not an error: errors are bad input found before any
    /// unit ran, or a store that cannot be written.
    pub fn run(self) -> Result<Finished, Error> {
        self.prepare()?.open()?.execute(Cancel::default(), &mut [])
    }

    /// Runs the units in the background and yields each unit's result as it finishes. A stored
    /// run is stored and resumable exactly as with [`Session::run`]; dropping the stream cancels
    /// the units not yet started and waits for those in flight, which are stored.
    pub fn stream(self) -> Result<SessionStream, Error> {
        Ok(self.prepare()?.open()?.stream())
    }

    /// Runs replicate 0 of `condition` (`baseline`, a treatment, or `EXP/COND`) serially,
    /// printing its params, seed, input, steps, events and metrics to stdout as they happen.
    /// Stores nothing.
    pub fn debug(self, condition: &str) -> Result<UnitResult, Error> {
        self.debug_replicate(condition, 0)
    }

    /// Like [`Session::debug`], for replicate `replicate`: the unit a run reported as failed.
    pub fn debug_replicate(self, condition: &str, replicate: u64) -> Result<UnitResult, Error> {
        let registry = Registry::collect()?;
        let is_experiment = registry.experiments().iter().any(|e| e.name() == condition);
        let (experiment, condition_name) = match &self.source {
            Source::Registered(Some(name)) if !condition.contains('/') && !is_experiment => {
                registry.condition(&format!("{name}/{condition}"))?
            }
            Source::Registered(_) => registry.condition(condition)?,
            Source::Built(_) => return Err(Error::InvalidQuick("debug runs registered experiments only".into())),
        };
        let entry = experiment.entry;
        let treatment = match condition_name {
            BASELINE => None,
            name => Some(experiment.treatment(name)?),
        };
        let condition = resolve_condition(entry, treatment, &self.settings.overrides_with(&self.sets)?)?;
        let seed = self.settings.seed(self.seed, entry.seed).value;
        crate::resolve::check_input_overrides(entry, std::slice::from_ref(&condition), seed, Default::default())?;
        let plan = Plan {
            experiment: std::borrow::Cow::Borrowed(entry),
            conditions: vec![condition.clone()],
            replicates: vec![replicate],
            seed,
            policy: Default::default(),
            done: Default::default(),
            shard: None,
        };
        let cache = match &self.store {
            Some(dir) => crate::cache::Cache::open(
                Store::locate(Some(dir)).root(),
                self.cache.mode.unwrap_or(CacheMode::Read),
                &self.cache.refresh,
                true,
            )?,
            None => None,
        };
        let options = RunOptions { jobs: 1, live_metrics: true, describe_input: true, cache, ..RunOptions::default() };
        let mut printer = VerbosePrinter::new(std::io::stdout(), &condition, experiment, self.steps);
        let mut observers: Vec<&mut dyn Observer> = vec![&mut printer];
        let mut own = self.observers;
        observers.extend(own.iter_mut().map(|o| &mut **o as &mut dyn Observer));
        let results = runner::execute(&plan, &options, &mut observers);
        results.units.into_iter().next().ok_or_else(|| Error::Store("the unit did not run (interrupted)".into()))
    }

    /// Builds the plan and decides where it is stored, checking every name and value; writes
    /// nothing yet.
    pub(crate) fn prepare(self) -> Result<Prepared, Error> {
        let Session {
            source,
            treatments,
            replicates,
            seed,
            sets,
            store,
            resume,
            force,
            jobs,
            fail_fast,
            observers,
            settings,
            origin,
            only_condition,
            first_replicate,
            steps: _,
            timeout,
            limits,
            retries,
            retry,
            shard,
            run_id,
            lease_stale,
            until_decided,
            decision_lines,
            cache,
        } = self;
        // A sequential run plans its maximum: scheduling stops early when decided.
        let replicates = until_decided.as_ref().map(|rule| rule.max_replicates).filter(|&max| max > 0).or(replicates);
        let store = store.map(|dir| Store::locate(Some(&dir)));
        // Checked before anything is planned: a bad --refresh or an unwritable cache costs nothing.
        let cache = match &store {
            Some(store) => {
                crate::cache::Cache::open(store.root(), cache.mode.unwrap_or_default(), &cache.refresh, false)?
            }
            None => {
                for name in &cache.refresh {
                    crate::cache::check_step("--refresh", name)?;
                }
                None
            }
        };
        let mut notes = Vec::new();
        let mut run_defaults = crate::registry::RunDefaults::NONE;
        let mut is_async = false;
        let (mut plan, mut target, origin) = match source {
            Source::Built(plan) => {
                let origin = origin.unwrap_or_else(|| default_origin(plan.experiment.name));
                let target = match &store {
                    None => Target::Memory,
                    Some(store) => {
                        let manifest = recorder::new_manifest(&plan, Request::default(), &origin, Vec::new())?;
                        Target::New { store: store.clone(), manifest }
                    }
                };
                (*plan, target, origin)
            }
            Source::Registered(name) => {
                let registry = Registry::collect()?;
                let experiment = registry.experiment(name.as_deref())?;
                check_declared_hypotheses(experiment)?;
                run_defaults = experiment.entry.run;
                is_async = experiment.entry.vtable.run_unit_async.is_some();
                check_limits(&limits, run_defaults.limits)?;
                check_file_limits(&settings, run_defaults.limits)?;
                let origin = origin.unwrap_or_else(|| default_origin(experiment.entry.location.module_path));
                let wanted = Wanted { treatments: &treatments, replicates, seed, sets: &sets, settings: &settings };
                if let Some(id) = &run_id {
                    crate::store::shared::check_run_id(id)?;
                    if resume.is_some() {
                        return Err(Error::Store(
                            "--run-id names a run to create or join, --resume one to continue: give one of them".into(),
                        ));
                    }
                    if store.is_none() {
                        return Err(Error::Store("a run id needs a store: add .store(dir)".into()));
                    }
                }
                match (resume, &store) {
                    (Some(_), None) => {
                        return Err(Error::Store("resuming a run needs the store it is in: add .store(dir)".into()))
                    }
                    (Some(id), Some(store)) => {
                        let (plan, run_dir, drift) =
                            resume_plan(experiment, &wanted, store, &id, force, shard, &mut notes)?;
                        (plan, Target::Resumed { run_dir, drift }, origin)
                    }
                    (None, store) => {
                        let entry = experiment.entry;
                        let replicates = settings.replicates(replicates, entry.replicates).value;
                        let seed = settings.seed(seed, entry.seed).value;
                        let overrides = settings.overrides_with(&sets)?;
                        let mut plan = Plan::new(experiment, &treatments, replicates, seed, &overrides)?;
                        if first_replicate > 0 {
                            let last = first_replicate.checked_add(replicates).ok_or_else(|| {
                                Error::Store(format!("replicates {first_replicate} + {replicates} overflow"))
                            })?;
                            plan.replicates = (first_replicate..last).collect();
                        }
                        let target = match store {
                            None => Target::Memory,
                            Some(store) => {
                                let request = Request { treatments: treatments.clone(), sets: sets.clone() };
                                let mut manifest = recorder::new_manifest(
                                    &plan,
                                    request,
                                    &origin,
                                    recorder::applicable_hypotheses(&plan),
                                )?;
                                manifest.shards = shard.map(Shard::count);
                                match &run_id {
                                    None => Target::New { store: store.clone(), manifest },
                                    Some(id) => {
                                        manifest.run = id.clone();
                                        match crate::store::shared::existing(store, id)? {
                                            Some(run_dir) => {
                                                plan.done = run_dir.scan().done_set();
                                                let run_dir = joined(run_dir, &manifest, &mut notes)?;
                                                Target::Resumed { run_dir, drift: Vec::new() }
                                            }
                                            None => Target::Shared { store: store.clone(), manifest },
                                        }
                                    }
                                }
                            }
                        };
                        (plan, target, origin)
                    }
                }
            }
        };
        if let Some(only) = only_condition {
            plan.conditions.retain(|c| *c.name == *only);
        }
        plan.shard = shard;
        let stopping = stopping_rule(until_decided, &mut plan, &mut target)?;
        // What the caller asked for wins over the experiment's attribute, which wins over the
        // runner's defaults: units in flight for async work (which mostly waits), cores for sync.
        let from_file = settings.jobs.as_ref().map(|setting| usize::try_from(setting.value).unwrap_or(usize::MAX));
        let jobs = jobs.or(from_file).or(run_defaults.jobs).unwrap_or_else(|| {
            if is_async {
                ASYNC_JOBS
            } else {
                runner::default_jobs()
            }
        });
        let timeout = timeout
            .or(settings.timeout.as_ref().map(|setting| setting.value))
            .or(run_defaults.timeout_ms.map(Duration::from_millis));
        let retries =
            retries.or(settings.retries.as_ref().map(|setting| setting.value)).or(run_defaults.retries).unwrap_or(0);
        let retry = RetryPolicy { retries, ..retry };
        let mut capacities: Vec<(String, usize)> =
            run_defaults.limits.iter().map(|(name, capacity)| ((*name).to_owned(), *capacity)).collect();
        let from_file = settings.limits.iter().map(|(name, capacity, _)| (name.clone(), *capacity));
        for (name, capacity) in from_file.chain(limits) {
            capacities.retain(|(existing, _)| *existing != name);
            capacities.push((name, capacity));
        }
        // A step's limit with no capacity given anywhere limits nothing beyond --jobs.
        for name in step_limits() {
            if !capacities.iter().any(|(existing, _)| existing == name) {
                capacities.push((name.to_owned(), jobs));
            }
        }
        Ok(Prepared {
            plan,
            target,
            origin,
            notes,
            running: Running {
                jobs,
                fail_fast,
                observers,
                timeout,
                limits: capacities,
                retry,
                lease_stale,
                stopping,
                decision_lines,
                cache,
                keep_successes: true,
            },
        })
    }
}

/// Units in flight of an async experiment that declares no `jobs`: they mostly wait on I/O, so
/// many more than cores; a server's own limit belongs in a named limit.
pub const ASYNC_JOBS: usize = 16;

/// The limit names steps declare (`#[step(limit = "...")]`), in this binary.
fn step_limits() -> Vec<&'static str> {
    let mut names: Vec<&'static str> =
        inventory::iter::<crate::registry::StepEntry>.into_iter().filter_map(|step| step.0.limit).collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Refuses a capacity for a limit that neither a step nor the experiment declares: a typo
/// would otherwise limit nothing.
fn check_limits(wanted: &[(String, usize)], declared: &[(&'static str, usize)]) -> Result<(), Error> {
    let mut valid: Vec<&str> = step_limits();
    valid.extend(declared.iter().map(|(name, _)| *name));
    valid.sort_unstable();
    valid.dedup();
    for (name, _) in wanted {
        if !valid.contains(&name.as_str()) {
            return Err(Error::UnknownLimit {
                name: name.clone(),
                suggestion: crate::error::suggest(name, &valid),
                valid: if valid.is_empty() { "none (no step declares a limit)".into() } else { valid.join(", ") },
            });
        }
    }
    Ok(())
}

/// `crystallize.toml`'s `[limits]` name limits a step or the experiment declares; the error
/// points at the file's line.
fn check_file_limits(settings: &Settings, declared: &[(&'static str, usize)]) -> Result<(), Error> {
    for (name, capacity, location) in &settings.limits {
        if let Err(Error::UnknownLimit { valid, suggestion, .. }) = check_limits(&[(name.clone(), *capacity)], declared)
        {
            let hint = suggestion.map(|s| format!(" (did you mean '{s}'?)")).unwrap_or_default();
            return Err(Error::ConfigFile {
                location: location.clone(),
                message: format!("[limits]: no step or experiment uses a limit named '{name}'{hint}; limits: {valid}"),
            });
        }
    }
    Ok(())
}

/// What the caller asked for, for planning a new or a resumed run.
struct Wanted<'a> {
    treatments: &'a [String],
    replicates: Option<u64>,
    seed: Option<u64>,
    sets: &'a [String],
    settings: &'a Settings,
}

/// The experiment's declared hypotheses, checked before anything runs: a bad one is exit code 2.
fn check_declared_hypotheses(experiment: &Experiment) -> Result<(), Error> {
    let conditions = experiment.condition_names();
    for text in experiment.entry.hypotheses {
        let origin = format!("declared in #[experiment] at {}", experiment.entry.location);
        crate::hypothesis::checked_hypothesis(text, &origin, experiment.name(), &conditions)?;
    }
    Ok(())
}

/// The records' origin when the caller gives none: the crate the experiment is in, this
/// process's command line.
fn default_origin(module_path: &str) -> Origin {
    Origin {
        crate_name: module_path.split("::").next().unwrap_or(module_path).to_owned(),
        crate_version: String::new(),
        command: recorder::command_line(),
    }
}

/// Re-plans a stored run with what it was asked for (what is asked now takes precedence),
/// refuses if its configuration or code drifted (unless `force`), and marks the units already
/// done so that they are skipped.
fn resume_plan(
    experiment: &Experiment,
    wanted: &Wanted<'_>,
    store: &Store,
    id: &str,
    force: bool,
    shard: Option<Shard>,
    notes: &mut Vec<String>,
) -> Result<(Plan, RunDir, Vec<String>), Error> {
    let run_dir = if id.is_empty() { latest_unfinished(experiment, store)? } else { store.run(id)? };
    let manifest = &run_dir.manifest;
    if manifest.experiment != experiment.name() {
        return Err(Error::Store(format!(
            "run {} is a run of experiment '{}', not '{}'",
            manifest.run,
            manifest.experiment,
            experiment.name()
        )));
    }
    // Only which units are done matters here, not their results: the scan reads no more.
    let state = run_dir.scan();
    notes.extend(state.warnings.iter().map(|warning| format!("warning: {warning}")));
    let treatments = if wanted.treatments.is_empty() { &manifest.request.treatments } else { wanted.treatments };
    let sets = if wanted.sets.is_empty() { &manifest.request.sets } else { wanted.sets };
    let seed = wanted.seed.or(manifest.config.seed).unwrap_or(0);
    let replicates = wanted.replicates.unwrap_or(state.replicates).max(1);
    let mut plan = Plan::new(experiment, treatments, replicates, seed, &wanted.settings.overrides_with(sets)?)?;
    // A confirmation runs replicate indices from its first one on, not from 0.
    let first = manifest.first_replicate;
    let last = first
        .checked_add(replicates)
        .ok_or_else(|| Error::Store(format!("run {}: replicates {first} + {replicates} overflow", manifest.run)))?;
    plan.replicates = (first..last).collect();
    let drift = manifest::drift(&manifest.config, &manifest::resolved_config(&plan));
    if !drift.is_empty() && !force {
        return Err(Error::Drift {
            run: manifest.run.clone(),
            changes: drift.iter().map(|line| format!("  {line}")).collect::<Vec<_>>().join("\n"),
        });
    }
    if !drift.is_empty() {
        notes.push(format!("warning: resuming {} with --force although it changed:", manifest.run));
        notes.extend(drift.iter().map(|line| format!("  {line}")));
    }
    plan.done = state.done_set();
    match shard {
        None => notes.push(format!(
            "resuming run {}: {} of {} units already done",
            manifest.run,
            state.done(),
            plan.conditions.len() * plan.replicates.len()
        )),
        Some(shard) => {
            let mine = plan.replicates.iter().filter(|r| shard.contains(**r)).count() * plan.conditions.len();
            let left = plan
                .conditions
                .iter()
                .map(|c| {
                    plan.replicates.iter().filter(|r| shard.contains(**r) && !plan.done.contains(&c.name, **r)).count()
                })
                .sum::<usize>();
            notes.push(format!(
                "resuming shard {shard} of run {}: {} of its {mine} units already done",
                manifest.run,
                mine - left
            ));
        }
    }
    Ok((plan, run_dir, drift))
}

/// The latest run of `experiment` in `store` that is not complete.
fn latest_unfinished(experiment: &Experiment, store: &Store) -> Result<RunDir, Error> {
    let (runs, _) = store.runs();
    let mine: Vec<(RunDir, Status)> = runs
        .into_iter()
        .filter(|r| r.manifest.experiment == experiment.name())
        .map(|r| {
            let status = r.scan().status();
            (r, status)
        })
        .collect();
    let known = mine.iter().map(|(r, s)| format!("{} ({s})", r.manifest.run)).collect::<Vec<_>>().join(", ");
    // Every run complete: the latest, which has nothing to do (a requeued job finds its work done).
    let latest = mine.last().map(|(run, _)| run.clone());
    mine.into_iter().rev().find(|(_, status)| *status != Status::Complete).map(|(run, _)| run).or(latest).ok_or_else(
        || Error::NothingToResume {
            experiment: experiment.name().to_owned(),
            store: store.root().display().to_string(),
            known: if known.is_empty() { "none".into() } else { known },
        },
    )
}

/// How the units run, once planned.
struct Running {
    jobs: usize,
    fail_fast: bool,
    observers: Vec<Box<dyn Observer>>,
    timeout: Option<Duration>,
    limits: Vec<(String, usize)>,
    retry: RetryPolicy,
    lease_stale: Duration,
    stopping: Option<StoppingRule>,
    decision_lines: bool,
    cache: Option<Arc<crate::cache::Cache>>,
    /// Whether the results keep the successful units (see [`RunOptions::keep_successes`]).
    keep_successes: bool,
}

/// The stopping rule a run goes by: the one asked for (on a resumed run, the recorded rule with
/// the new maximum and minimum), or the recorded one of a resumed run; checked against the
/// experiment before any unit, its hypotheses filled from the declared ones when none were
/// named, and written into a new run's manifest.
fn stopping_rule(
    wanted: Option<StoppingRule>,
    plan: &mut Plan,
    target: &mut Target,
) -> Result<Option<StoppingRule>, Error> {
    let stored = match target {
        Target::Resumed { run_dir, .. } => run_dir.manifest.stopping.clone(),
        _ => None,
    };
    let mut rule = match (wanted, stored) {
        (None, None) => return Ok(None),
        (Some(rule), None) => rule,
        (None, Some(stored)) => stored,
        (Some(rule), Some(stored)) => StoppingRule {
            max_replicates: if rule.max_replicates > 0 { rule.max_replicates } else { stored.max_replicates },
            min_replicates: if rule.min_replicates > 0 { rule.min_replicates } else { stored.min_replicates },
            ..stored
        },
    };
    if rule.hypotheses.is_empty() {
        rule.hypotheses = recorder::applicable_hypotheses(plan);
    }
    let parsed = rule.check(plan.experiment.name)?;
    let names: Vec<&str> = plan.conditions.iter().map(|c| &*c.name).collect();
    for hypothesis in &parsed {
        crate::hypothesis::validate_conditions(hypothesis, &names)?;
    }
    let first = plan.replicates.first().copied().unwrap_or(0);
    let last = first.saturating_add(rule.max_replicates);
    if plan.replicates.last().is_none_or(|&l| l + 1 < last) {
        plan.replicates = (first..last).collect();
    }
    if let Target::New { manifest, .. } = target {
        manifest.replicates = rule.max_replicates;
        manifest.stopping = Some(rule.clone());
    }
    Ok(Some(rule))
}

/// Where a planned run is recorded.
pub(crate) enum Target {
    /// Nowhere: the results are only returned.
    Memory,
    /// A new run of the store, with the manifest it will be created with.
    New { store: Store, manifest: Manifest },
    /// A stored run, resumed (with what changed when it was forced through a drift).
    Resumed { run_dir: RunDir, drift: Vec<String> },
    /// A run of the store with the id of its manifest, created by this process unless another
    /// one creates it first (then joined, if it planned the same).
    Shared { store: Store, manifest: Manifest },
}

/// A planned run, checked and not yet written: a caller may still refuse it or add to its
/// manifest (a confirmation's pre-registration digest).
pub(crate) struct Prepared {
    /// The units to run.
    pub(crate) plan: Plan,
    /// Where they are recorded.
    pub(crate) target: Target,
    /// Who runs them.
    pub(crate) origin: Origin,
    /// Diagnostics for the user (warnings of the resume scan, the forced drift, "resuming").
    pub(crate) notes: Vec<String>,
    running: Running,
}

impl Prepared {
    /// The retry and timeout policy the units will run with.
    pub(crate) fn policy(&self) -> crate::store::preregistration::RunPolicy {
        let running = &self.running;
        crate::store::preregistration::RunPolicy {
            retries: running.retry.retries,
            retry_panics: running.retry.panics,
            timeout_ms: running.timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        }
    }

    /// The manifest of a new stored run, before it is written.
    pub(crate) fn manifest_mut(&mut self) -> Option<&mut Manifest> {
        match &mut self.target {
            Target::New { manifest, .. } | Target::Shared { manifest, .. } => Some(manifest),
            _ => None,
        }
    }

    /// Creates the run in the store (its directory and manifest) when it is new, and takes the
    /// lease of the units this process will run (refused if another live process holds them);
    /// the units done meanwhile are read again once it holds them.
    pub(crate) fn open(self) -> Result<Opened, Error> {
        let Prepared { mut plan, target, origin, running, mut notes } = self;
        // The caller printed the notes so far; a join found only now is said here.
        let printed = notes.len();
        let (run_dir, drift) = match target {
            Target::Memory => (None, Vec::new()),
            Target::New { store, manifest } => (Some(store.create_run(&manifest)?), Vec::new()),
            Target::Resumed { run_dir, drift } => (Some(run_dir), drift),
            Target::Shared { store, manifest } => match crate::store::shared::create_or_open(&store, &manifest)? {
                crate::store::shared::Created::New(run_dir) => (Some(run_dir), Vec::new()),
                crate::store::shared::Created::Existing(run_dir) => {
                    plan.done = run_dir.scan().done_set();
                    (Some(joined(run_dir, &manifest, &mut notes)?), Vec::new())
                }
            },
        };
        for note in &notes[printed..] {
            eprintln!("{note}");
        }
        Ok(Opened { plan, run_dir, drift, origin, running })
    }
}

/// A run that exists already, joined by a process that planned it as `mine`: refused with what
/// differs unless it planned the same; then resumed (its done units skipped).
fn joined(run_dir: RunDir, mine: &Manifest, notes: &mut Vec<String>) -> Result<RunDir, Error> {
    let changes = crate::store::shared::join_differences(&run_dir.manifest, mine);
    if !changes.is_empty() {
        return Err(Error::ShardDrift {
            run: run_dir.manifest.run.clone(),
            changes: changes.iter().map(|line| format!("  {line}")).collect::<Vec<_>>().join("\n"),
        });
    }
    notes.push(format!("joining run {}, created by another process", run_dir.manifest.run));
    Ok(run_dir)
}

/// A run ready to go: planned, and created in the store when it is stored.
pub(crate) struct Opened {
    plan: Plan,
    run_dir: Option<RunDir>,
    drift: Vec<String>,
    origin: Origin,
    running: Running,
}

impl Opened {
    /// The stored run, when the run is stored.
    pub(crate) fn run_dir(&self) -> Option<&RunDir> {
        self.run_dir.as_ref()
    }

    /// The plan.
    pub(crate) fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Whether every unit it would run is done already (a complete run or shard resumed).
    pub(crate) fn nothing_to_do(&self) -> bool {
        !self.plan.has_units()
    }

    /// The results of [`Opened::execute`] keep only the failed units (the command line reports
    /// from the store; see [`RunOptions::keep_successes`]), unless the session has observers of
    /// its own, which are promised every result at the end.
    pub(crate) fn keeping_failures_only(mut self) -> Opened {
        self.running.keep_successes = !self.running.observers.is_empty();
        self
    }

    /// Records this process's session (its journal and events log beside it, when stored) and
    /// runs the remaining units, reporting to the session's observers and then `extra`.
    pub(crate) fn execute(self, cancel: Cancel, extra: &mut [&mut dyn Observer]) -> Result<Finished, Error> {
        let Opened { mut plan, run_dir, drift, origin, running } = self;
        let Running {
            jobs,
            fail_fast,
            mut observers,
            timeout,
            limits,
            retry,
            lease_stale,
            stopping,
            decision_lines,
            cache,
            keep_successes,
        } = running;
        // The lease of the units it runs, held until their records are on disk; its writer id
        // is also its session record's and its journal's. Nothing to run: no lease, no records.
        let writer = crate::store::writer_id();
        let mut lease = None;
        if let Some(dir) = run_dir.as_ref().filter(|_| plan.has_units()) {
            let scope = plan.shard.unwrap_or(Shard::WHOLE);
            let task = crate::shard::scheduler_task(|name| std::env::var(name).ok());
            let held = lease::acquire(dir, scope, &writer, lease_stale, task, cancel.clone())?;
            for warning in &held.warnings {
                eprintln!("{warning}");
            }
            lease = Some(held);
            // What another process finished before this one held the lease is done.
            plan.done = dir.scan().done_set();
        }
        let mut recording = match &run_dir {
            Some(dir) if lease.is_some() => {
                Some(Recording::begin(dir, &plan, &origin, drift, cancel.clone(), &writer)?)
            }
            _ => None,
        };
        let options = RunOptions {
            jobs,
            fail_fast,
            live_metrics: true,
            describe_input: false,
            cancel,
            artifacts: run_dir.as_ref().map(|dir| Arc::new(dir.artifacts_dir())),
            timeout,
            retry,
            #[cfg(feature = "async")]
            limits: Some(Arc::new(crate::limits::Limits::new(limits.iter().map(|(n, c)| (n.as_str(), *c))))),
            rounds: None,
            cache,
            keep_successes,
        };
        let run_id = run_dir.as_ref().map(|dir| dir.manifest.run.clone());
        let mut options = options;
        let mut monitor = stopping.map(|rule| {
            let first = plan.replicates.first().copied().unwrap_or(0);
            // Indices ahead of the last complete one that may run meanwhile: enough to keep
            // every job busy, no more.
            let window = (jobs.max(1) as u64).div_ceil(plan.conditions.len().max(1) as u64);
            let gate = runner::Gate::new(first + window);
            options.rounds = Some(gate.clone());
            let stream = decision_lines.then(|| run_id.clone().unwrap_or_default());
            let mut monitor =
                Monitor::new(rule, plan.experiment.name, first, options.cancel.clone(), stream, gate, window);
            // A resumed run continues its sequence: the stored units come first, in index order.
            if let Some(dir) = &run_dir {
                monitor.preload(&dir.state().results());
            }
            monitor
        });
        #[cfg(not(feature = "async"))]
        let _ = limits;
        let mut all: Vec<&mut dyn Observer> = Vec::new();
        if let Some(recording) = recording.as_mut() {
            all.push(&mut recording.journal);
            all.extend(recording.events.as_mut().map(|log| log as &mut dyn Observer));
        }
        all.extend(observers.iter_mut().map(|o| &mut **o as &mut dyn Observer));
        all.extend(extra.iter_mut().map(|o| &mut **o as &mut dyn Observer));
        all.extend(monitor.as_mut().map(|m| m as &mut dyn Observer));
        let results = runner::execute(&plan, &options, &mut all);
        let sequential = monitor.map(|m| Decisions { all_decided: m.decided(), results: m.results() });
        let mut warnings = Vec::new();
        // Where the sequence stopped, and why, closes this session's journal.
        if let (Some(recording), Some(decisions)) = (recording.as_mut(), &sequential) {
            let stop = crate::sequential::Stop::new(&decisions.results, options.cancel.is_cancelled());
            if let Err(error) = recording.journal.append_record(crate::store::stops::KIND, &stop) {
                warnings.push(error);
            }
        }
        let mut records_lost = false;
        if let Some(recording) = recording {
            let (problems, lost) = recording.finish();
            warnings.extend(problems);
            records_lost = lost;
        }
        // Given back only once every record it wrote is on disk.
        drop(lease);
        Ok(Finished { run: run_id, results, warnings, records_lost, run_dir, sequential })
    }

    /// Runs on a thread of its own; each result is yielded as it finishes.
    pub(crate) fn stream(self) -> SessionStream {
        /// Sends each finished unit to the stream's reader.
        struct Forward(mpsc::Sender<UnitResult>);
        impl Observer for Forward {
            fn unit_finished(&mut self, result: &UnitResult) {
                let _ = self.0.send(result.clone());
            }
            fn interest(&self) -> Interest {
                Interest::RESULTS
            }
        }
        let (tx, rx) = mpsc::channel();
        let cancel = Cancel::default();
        let run_cancel = cancel.clone();
        let run = std::thread::spawn(move || self.execute(run_cancel, &mut [&mut Forward(tx)]));
        SessionStream { results: rx, cancel, run: Some(run) }
    }
}

/// What this process writes of a stored run: its journal and its events log.
struct Recording {
    journal: JournalWriter,
    events: Option<EventLog>,
}

impl Recording {
    fn begin(
        run: &RunDir,
        plan: &Plan,
        origin: &Origin,
        drift: Vec<String>,
        cancel: Cancel,
        writer: &str,
    ) -> Result<Recording, Error> {
        let journal = recorder::begin_session_as(run, plan, origin, drift, cancel, writer, plan.shard)?;
        // Beside the journal, the events log: what `watch` follows, and a replay of the run. A
        // run goes on without it rather than not at all.
        let events = match EventLog::beside(&journal) {
            Ok(log) => Some(log),
            Err(error) => {
                eprintln!(
                    "warning: cannot create the events log of {}: {error}; the run goes on without it",
                    run.manifest.run
                );
                None
            }
        };
        Ok(Recording { journal, events })
    }

    /// Flushes both files; says what could not be written, and whether it was the journal
    /// (records lost, not only events).
    fn finish(self) -> (Vec<String>, bool) {
        let mut problems = Vec::new();
        let journal = self.journal.finish();
        let lost = journal.is_err();
        if let Err(error) = journal {
            problems.push(error);
        }
        if let Some(Err(error)) = self.events.map(EventLog::finish) {
            problems.push(error);
        }
        (problems, lost)
    }
}

/// What a [`Session`] ran.
#[derive(Debug)]
pub struct Finished {
    /// The stored run's id, when the run is stored.
    pub run: Option<String>,
    /// Every unit this session ran, in plan order.
    pub results: RunResults,
    /// What could not be written to the store (the units whose records are missing run again
    /// on resume).
    pub warnings: Vec<String>,
    /// Whether the journal could not be written to the end: some finished units have no
    /// record, so the run is not complete whatever ran (an events log that could not be
    /// written loses only events).
    pub records_lost: bool,
    pub(crate) run_dir: Option<RunDir>,
    /// For a run with a stopping rule: where its hypotheses stand at the end.
    pub sequential: Option<Decisions>,
}

/// Where the hypotheses of a sequential run stand when it ends.
#[derive(Clone, Debug, PartialEq)]
pub struct Decisions {
    /// Whether every one was decided (the run stopped for that, not at its maximum).
    pub all_decided: bool,
    /// Each hypothesis: its interval, status and where it was decided.
    pub results: Vec<SequentialResult>,
}

impl Finished {
    /// The stored run's directory, when the run is stored.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.run_dir.as_ref().map(RunDir::path)
    }
}

/// Unit results in completion order, from a [`Session`] running in the background.
///
/// Dropping it cancels the units not yet started and waits for the ones in flight, which are
/// stored; [`SessionStream::finish`] waits for every unit instead.
pub struct SessionStream {
    results: mpsc::Receiver<UnitResult>,
    cancel: Cancel,
    run: Option<std::thread::JoinHandle<Result<Finished, Error>>>,
}

impl SessionStream {
    /// Waits for every remaining unit and returns what the session ran.
    pub fn finish(mut self) -> Result<Finished, Error> {
        match self.run.take() {
            Some(run) => run.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            None => Err(Error::Store("the stream was already finished".into())),
        }
    }

    /// Stops scheduling new units; those in flight finish (and are yielded and stored).
    pub fn cancel(&self) {
        self.cancel.cancel();
    }
}

impl Iterator for SessionStream {
    type Item = UnitResult;

    fn next(&mut self) -> Option<UnitResult> {
        self.results.recv().ok()
    }
}

impl Drop for SessionStream {
    fn drop(&mut self) {
        if let Some(run) = self.run.take() {
            self.cancel.cancel();
            let _ = run.join();
        }
    }
}
