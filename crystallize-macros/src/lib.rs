//! Attribute macros of [crystallize](https://docs.rs/crystallize).
//!
//! Do not depend on this crate directly: use the re-exports in `crystallize::prelude`. Every macro
//! follows the same shape, one module each: **parse** the attribute and the item into a plain model
//! (collecting every error, each at the offending tokens), **validate** it, **render** the
//! expansion. On error the user's item is emitted unchanged beside the errors, so IDEs keep working.
//! Generated code reaches the runtime only through `::crystallize::__private`.

mod args;
mod datasource;
mod experiment;
mod fingerprint;
mod signature;
#[cfg(test)]
mod snapshot_tests;
mod step;
mod treatment;

use proc_macro::TokenStream;

/// Declares an experiment: a function that runs one replicate on the input its datasource produces.
///
/// ```ignore
/// #[experiment(datasource = llama_table, replicates = 10, seed = 42,
///              params(temperature = 0.7, think_ms: u64 = 0),
///              hypotheses = ["dolphin.win > baseline.win"])]
/// fn social_deception(config: GameConfig, ctx: &mut Ctx) { /* ... */ }
/// ```
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
/// learns when the step starts and ends; outside an experiment it is a plain call.
#[proc_macro_attribute]
pub fn step(attr: TokenStream, item: TokenStream) -> TokenStream {
    step::expand(attr.into(), item.into()).into()
}

/// Declares a treatment of an experiment: it may swap the datasource, mutate the input in place,
/// set params, or any mix of these.
///
/// ```ignore
/// #[treatment(social_deception, datasource = dolphin_table, set(temperature = 1.2))]
/// fn dolphin_spoilers(config: &mut GameConfig) { config.spoilers = true; }
/// ```
#[proc_macro_attribute]
pub fn treatment(attr: TokenStream, item: TokenStream) -> TokenStream {
    treatment::expand(attr.into(), item.into()).into()
}
