//! Attribute macros of [crystallize](https://docs.rs/crystallize).
//!
//! Do not depend on this crate directly: use the re-exports in `crystallize::prelude`. Every macro
//! follows the same shape, one module each: **parse** the attribute and the item into a plain model
//! (collecting every error, each at the offending tokens), **validate** it, **render** the
//! expansion. On error the user's item is emitted unchanged beside the errors, so IDEs keep working.
//! Generated code reaches the runtime only through `__private` of the crystallize crate: by default
//! `::crystallize::__private`, or `PATH::__private` with `crate = PATH` (`#[crystallize(crate = PATH)]`
//! on a derive), for crates that re-export or rename crystallize.

mod args;
mod datasource;
mod expect;
mod experiment;
mod fingerprint;
mod metrics;
mod params;
mod signature;
#[cfg(test)]
mod snapshot_tests;
mod step;
mod treatment;

use proc_macro::TokenStream;

/// Declares an experiment: a function that runs one replicate on the input its datasource produces.
///
/// The function takes, in this order: the input (when there is a datasource), the params struct by
/// shared reference (`params: &MyParams`, where `MyParams` derives `Params`; recognised by its
/// place and its `&`), and the context. It returns `()`, a `#[derive(Metrics)]` struct, or
/// `Result` of either.
///
/// ```ignore
/// #[experiment(datasource = llama_table, replicates = 10, seed = 42,
///              hypotheses = ["dolphin.win > baseline.win"], expect(dolphin.rounds > baseline.rounds))]
/// fn social_deception(config: GameConfig, params: &GameParams, ctx: &mut Ctx) -> GameMetrics { /* ... */ }
/// ```
///
/// `params(temperature = 0.7, think_ms: u64 = 0)` instead declares the params in the attribute: it
/// generates `SocialDeceptionParams` (the function's name in PascalCase, then `Params`), which the
/// function may take as `params: &SocialDeceptionParams`.
///
/// An `async fn` experiment takes the same shapes (the context as `ctx: &mut Ctx`); its units run
/// as tasks on the runner's tokio runtime, and its future must be `Send`. `jobs = 16`,
/// `timeout = "120s"`, `retries = 3` and `limits(ollama = 2)` give the defaults of its runs.
#[proc_macro_attribute]
pub fn experiment(attr: TokenStream, item: TokenStream) -> TokenStream {
    experiment::expand(attr.into(), item.into()).into()
}

/// Declares a datasource: a function of the context (or of nothing) that produces a condition's input.
#[proc_macro_attribute]
pub fn datasource(attr: TokenStream, item: TokenStream) -> TokenStream {
    datasource::expand(attr.into(), item.into()).into()
}

/// Marks an existing function as a step, without changing its signature. Inside a unit, the unit
/// learns when the step starts and ends; outside an experiment it is a plain call. Works on
/// `async fn` too (timed from the future's first poll to its end). `#[step(limit = "ollama")]`
/// holds a permit of the run's limit `ollama` while the step runs.
#[proc_macro_attribute]
pub fn step(attr: TokenStream, item: TokenStream) -> TokenStream {
    step::expand(attr.into(), item.into()).into()
}

/// Declares a treatment of an experiment: it may swap the datasource, mutate the input in place,
/// set params, or any mix of these; `expect(win > baseline.win)` declares a hypothesis about it,
/// checked against the experiment's declared metrics.
///
/// ```ignore
/// #[treatment(social_deception, datasource = dolphin_table, set(temperature = 1.2))]
/// fn dolphin_spoilers(config: &mut GameConfig) { config.spoilers = true; }
/// ```
#[proc_macro_attribute]
pub fn treatment(attr: TokenStream, item: TokenStream) -> TokenStream {
    treatment::expand(attr.into(), item.into()).into()
}

/// Derives the params of an experiment from a struct with named fields: one param per field, its
/// kind from the field's type (bool, an integer, a float, `String`, or `Option` of one of these),
/// its default from `#[param(default = literal)]` (an `Option` field defaults to `None`). Also
/// implements `Default` from those defaults, for calling steps from tests.
///
/// ```ignore
/// #[derive(Params)]
/// pub struct GameParams {
///     #[param(default = 0.7)]
///     pub temperature: f64,
///     pub crash_on_replicate: Option<u64>,
/// }
/// ```
#[proc_macro_derive(Params, attributes(param, crystallize))]
pub fn derive_params(item: TokenStream) -> TokenStream {
    params::expand(item.into()).into()
}

/// Derives the declared metrics of an experiment from a struct with named fields, each a bool
/// (recorded as 0 or 1), an integer or a float. An experiment that returns it records every
/// field, and hypotheses about it are checked before any unit runs.
///
/// ```ignore
/// #[derive(Metrics)]
/// pub struct GameMetrics { pub win: bool, pub rounds: u32 }
/// ```
#[proc_macro_derive(Metrics, attributes(crystallize))]
pub fn derive_metrics(item: TokenStream) -> TokenStream {
    metrics::expand(item.into()).into()
}
