//! What the macros' expansions use. Not public API: hidden, not covered by semver, and only
//! reached by generated code as `::crystallize::__private`.

pub use crate::cli::{main as cli_main, App};
pub use crate::context::Ctx;
pub use crate::events::InputView;
pub use crate::events::Observer;
pub use crate::metrics::DeclaredMetrics;
pub use crate::params::{literal_slot, read_field, NoParams, ParamDecl, ParamKind, ParamValue, Params, TypedParams};
pub use crate::registry::{
    DatasourceEntry, DatasourceInfo, ExperimentEntry, Location, StepEntry, StepInfo, TreatmentDatasource,
    TreatmentEntry,
};
pub use crate::registry::{ExperimentVTable, RunDefaults, UnitFuture};
pub use crate::runner::{StepGuard, UnitOutcome};
pub use crate::testing::smoke;
pub use inventory;
pub use serde_json::Value as JsonValue;

pub use crate::registry::ExperimentType as Experiment;

/// Rebuilds an input from JSON when it is `DeserializeOwned`, and says it cannot otherwise,
/// chosen at compile time by autoref specialisation on a concrete type (like [`describe`]).
pub mod restore {
    use std::marker::PhantomData;

    /// Names the input type.
    pub struct Target<T>(pub PhantomData<T>);

    /// Chosen when the input is `DeserializeOwned`.
    pub trait RestoreJson<T> {
        /// The input, or the deserializer's message.
        fn restore(&self, value: serde_json::Value) -> Option<Result<T, String>>;
    }
    impl<T: serde::de::DeserializeOwned> RestoreJson<T> for &Target<T> {
        fn restore(&self, value: serde_json::Value) -> Option<Result<T, String>> {
            Some(serde_json::from_value(value).map_err(|error| error.to_string()))
        }
    }

    /// Chosen otherwise.
    pub trait RestoreNone<T> {
        /// Always `None`.
        fn restore(&self, value: serde_json::Value) -> Option<Result<T, String>>;
    }
    impl<T> RestoreNone<T> for Target<T> {
        fn restore(&self, _: serde_json::Value) -> Option<Result<T, String>> {
            None
        }
    }
}

/// Implemented by the marker type `#[datasource]` puts beside the function.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a datasource",
    label = "not a `#[datasource]` function",
    note = "`datasource = ...` names a function marked `#[datasource]`"
)]
pub trait Datasource: 'static {
    /// What it produces.
    type Output: 'static;
    /// Its name, location and fingerprint.
    const INFO: DatasourceInfo;
    /// Runs it.
    fn produce(ctx: &Ctx) -> Self::Output;
}

/// The metrics of an experiment that returns `()` or `Result<(), E>`: it records its metrics
/// with `ctx.record`, and declares none.
pub struct NoMetrics {}

/// What an `#[experiment]` function may return: `()`, a [`DeclaredMetrics`] struct (each field is
/// recorded), or `Result` of either, where an `Err` fails the unit.
#[diagnostic::on_unimplemented(
    message = "an experiment returns `()`, a `#[derive(Metrics)]` struct, or `Result` of either; not `{Self}`",
    label = "an experiment cannot return this",
    note = "declare what a unit measures in a `#[derive(Metrics)]` struct and return it, or record it with \
            `ctx.record(\"name\", value)`; return `Err(..)` to fail the unit"
)]
pub trait ExperimentOutput {
    /// The declared metrics ([`NoMetrics`] for `()`).
    type Metrics;
    /// The declared metrics' names; `None` when the experiment declares none.
    const METRICS: Option<&'static [&'static str]>;
    /// The declared metrics' bounds, parallel to `METRICS` (see `DeclaredMetrics::BOUNDS`).
    const METRIC_BOUNDS: &'static [(f64, f64)] = &[];
    /// Records the returned metrics in `ctx` and converts to the runner's outcome.
    fn finish(self, ctx: &Ctx) -> UnitOutcome;
}

impl ExperimentOutput for () {
    type Metrics = NoMetrics;
    const METRICS: Option<&'static [&'static str]> = None;
    fn finish(self, _: &Ctx) -> UnitOutcome {
        Ok(())
    }
}

impl<E: std::fmt::Display + 'static> ExperimentOutput for Result<(), E> {
    type Metrics = NoMetrics;
    const METRICS: Option<&'static [&'static str]> = None;
    fn finish(self, _: &Ctx) -> UnitOutcome {
        self.map_err(crate::results::Failure::of)
    }
}

impl<M: DeclaredMetrics> ExperimentOutput for M {
    type Metrics = M;
    const METRICS: Option<&'static [&'static str]> = Some(M::NAMES);
    const METRIC_BOUNDS: &'static [(f64, f64)] = M::BOUNDS;
    fn finish(self, ctx: &Ctx) -> UnitOutcome {
        self.record(ctx);
        Ok(())
    }
}

impl<M: DeclaredMetrics, E: std::fmt::Display + 'static> ExperimentOutput for Result<M, E> {
    type Metrics = M;
    const METRICS: Option<&'static [&'static str]> = Some(M::NAMES);
    const METRIC_BOUNDS: &'static [(f64, f64)] = M::BOUNDS;
    fn finish(self, ctx: &Ctx) -> UnitOutcome {
        self.map(|metrics| metrics.record(ctx)).map_err(crate::results::Failure::of)
    }
}

/// Requires that an experiment declares its metrics, for `expect(...)`.
#[diagnostic::on_unimplemented(
    message = "`expect(...)` needs the experiment to declare its metrics",
    label = "this experiment records its metrics with `ctx.record`: the compiler cannot check `expect(...)`",
    note = "return a `#[derive(Metrics)]` struct from the experiment, or write the hypothesis as a string in \
            `#[experiment(hypotheses = [\"...\"])]`"
)]
pub trait ExpectsMetrics {
    /// The declared metrics (`Self`): generated code reads `expect(...)`'s metrics as fields of
    /// it. `#[derive(Metrics)]` implements the trait itself, not a blanket impl, so that for an
    /// experiment without declared metrics the missing impl is the one error, and the field reads
    /// of an unknown type report nothing more.
    type Declared;
}

/// Implemented when a treatment's `&mut T` is the experiment's input `Input`: a treatment that
/// takes another type fails here, with a message naming the experiment's input type.
#[diagnostic::on_unimplemented(
    message = "this treatment mutates `{Self}`, but the input of experiment `{Experiment}` is `{Input}`",
    label = "expected `&mut {Input}`, found `&mut {Self}`",
    note = "a treatment mutates its experiment's input in place: take `input: &mut {Input}`"
)]
pub trait MutatesInputOf<Experiment, Input> {}
impl<Experiment, Input> MutatesInputOf<Experiment, Input> for Input {}

/// Type-checks a treatment's mutated type against the experiment's input (see
/// [`MutatesInputOf`]). Never called at run time.
pub fn mutates_input_of<E, Input, T: MutatesInputOf<E, Input>>() {}

pub use crate::results::IntoUnitOutcome;

/// Describes an input as JSON when it is `Serialize`, as debug text when it is only `Debug`, and
/// as opaque otherwise, chosen at compile time by autoref specialisation on a concrete type.
pub mod describe {
    use super::InputView;

    /// Wraps a reference to the input.
    pub struct Probe<'a, T>(pub &'a T);

    /// Chosen when the input is `Serialize`.
    pub trait DescribeJson {
        /// The input's view.
        fn describe(&self) -> InputView;
    }
    impl<T: serde::Serialize> DescribeJson for &&Probe<'_, T> {
        fn describe(&self) -> InputView {
            match serde_json::to_value(self.0) {
                Ok(value) => InputView::Json(value),
                Err(error) => InputView::Debug(format!("<input not serializable: {error}>")),
            }
        }
    }

    /// Chosen when the input is `Debug` but not `Serialize`.
    pub trait DescribeDebug {
        /// The input's view.
        fn describe(&self) -> InputView;
    }
    impl<T: std::fmt::Debug> DescribeDebug for &Probe<'_, T> {
        fn describe(&self) -> InputView {
            InputView::Debug(format!("{:#?}", self.0))
        }
    }

    /// Chosen otherwise.
    pub trait DescribeOpaque {
        /// The input's view.
        fn describe(&self) -> InputView;
    }
    impl<T> DescribeOpaque for Probe<'_, T> {
        fn describe(&self) -> InputView {
            InputView::Opaque
        }
    }
}

pub use crate::events::{AttachedObservers, ObserverEntry};

/// Boxes an observer that `#[experiment(observers = [...])]` or `observer!` names; a value that
/// is not an [`Observer`](crate::events::Observer) fails to compile here, at the user's tokens.
pub fn boxed_observer<O: crate::events::Observer + 'static>(observer: O) -> Box<dyn crate::events::Observer> {
    Box::new(observer)
}

/// The body of an `#[step] async fn`: times the step from its first poll to its end, inside the
/// step's `tracing` span, and reports both to the unit of the current task.
#[cfg(feature = "async")]
pub async fn step_async<F: std::future::Future>(step: &'static StepInfo, body: F) -> F::Output {
    use tracing::Instrument;
    let span = tracing::info_span!("step", name = step.name);
    async move {
        let _timing = crate::runner::AsyncStepTiming::start(step);
        body.await
    }
    .instrument(span)
    .await
}

/// What `#[step(limit = "NAME")]` on an `async fn` awaits first: a permit of the run's limit
/// `NAME`, held for the whole step. Outside a run nothing is limited.
#[cfg(feature = "async")]
pub fn limit(name: &'static str) -> impl std::future::Future<Output = crate::limits::LimitGuard> + Send + 'static {
    crate::limits::acquire(crate::runner::current_limits(), name.to_owned())
}

/// What `#[step(limit = "NAME")]` on a sync `fn` takes first (blocking this thread).
#[cfg(feature = "async")]
pub fn limit_blocking(name: &'static str) -> crate::limits::LimitGuard {
    crate::limits::acquire_blocking(crate::runner::current_limits(), name)
}

pub use crate::runner::StepRetries;

/// What `#[step(retries = N)]` retries: an `Err` holding a [`Failure`](crate::results::Failure)
/// marked retryable; its message.
pub fn retryable_error<T, E: 'static>(result: &Result<T, E>) -> Option<String> {
    let error = result.as_ref().err()?;
    let failure = (error as &dyn std::any::Any).downcast_ref::<crate::results::Failure>()?;
    failure.is_retryable().then(|| failure.message().to_owned())
}

/// Where the unit's random streams are (which stream `ctx.rng()` hands out next), so that each
/// attempt of a retried step starts from the same place.
pub fn rng_position(ctx: &crate::Ctx) -> u64 {
    ctx.rng_position()
}

/// Puts the unit's random streams back where [`rng_position`] found them.
pub fn set_rng_position(ctx: &crate::Ctx, position: u64) {
    ctx.set_rng_position(position)
}

/// The pause before a sync step's retry.
pub fn step_pause_blocking(pause: std::time::Duration) {
    std::thread::sleep(pause)
}

/// The pause before an async step's retry (a timer inside a run; outside one, on whatever runtime
/// polls the step, a plain thread sleep would block it, so the pause is skipped).
pub async fn step_pause(pause: std::time::Duration) {
    #[cfg(feature = "async")]
    if crate::runner::step_in_run() {
        tokio::time::sleep(pause).await;
    }
    #[cfg(not(feature = "async"))]
    let _ = pause;
}

/// One attempt of an async step with a deadline of `ms` (`#[step(timeout = ...)]`): `None` when
/// it passed. Outside a run there is no deadline.
#[cfg(feature = "async")]
pub async fn step_deadline<F: std::future::Future>(ms: u64, attempt: F) -> Option<F::Output> {
    if crate::runner::step_in_run() {
        tokio::time::timeout(std::time::Duration::from_millis(ms), attempt).await.ok()
    } else {
        Some(attempt.await)
    }
}

/// What a step's timed-out attempt is called in its `step_retry` event.
pub fn step_deadline_message(ms: u64) -> String {
    format!("timed out after {}", crate::results::human_duration(std::time::Duration::from_millis(ms)))
}

/// Ends the unit: a step ran out of time on its last attempt (a failure of kind `timeout`).
pub fn step_timed_out(step: &'static StepInfo, ms: u64, attempts: u32) -> ! {
    crate::runner::step_timed_out(step, std::time::Duration::from_millis(ms), attempts)
}

/// What `#[step(cache)]` generates code against: the key of a call, its lookup and its store.
pub mod cache {
    pub use crate::cache::{check_value, CacheArg, CacheSpec, CacheValue, Call, Codec, KeyBuilder, OkOnly, Whole};

    /// The body of a cached `#[step] async fn`: timed like any async step; a hit returns the
    /// stored output without running `body` (so it takes no limit's permit either).
    #[cfg(feature = "async")]
    pub async fn step_async<C, F>(step: &'static super::StepInfo, call: Call, codec: C, body: F) -> F::Output
    where
        F: std::future::Future,
        C: Codec<F::Output> + Copy,
    {
        super::step_async(step, async move {
            if let Some(hit) = call.lookup(codec) {
                return hit;
            }
            let out = body.await;
            call.store(codec, &out);
            out
        })
        .await
    }
}

/// Internals for this workspace's benchmarks and white-box tests; not public API, not covered
/// by semver.
pub mod internals {
    pub use crate::overrides::OverrideValue;
    pub use crate::plan::{Override, Plan};
    pub use crate::registry::Registry;
    pub use crate::resolve::{input_of, resolve, InputResolution, ResolvedCondition, Setting};
    pub use crate::runner::{default_jobs, execute, Cancel, RunOptions};
    pub use crate::seed::mix;
    pub use crate::summary::summarize;

    /// The HTML report of a stored run with `extra` hypotheses, as `report RUN --html` writes it
    /// (for `cargo xtask bench`, which times it on 100 000 units).
    pub fn html_report(store: &crate::store::Store, run: &crate::store::RunDir, extra: &[String]) -> String {
        let report = crate::report::Report::from_store(store, run, extra);
        crate::html::render(&report, run, "bench", &crate::html::Extras::default())
    }
}
