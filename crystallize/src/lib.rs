//! # crystallize
//!
//! Turn ordinary Rust functions into reproducible experiments. Annotate the functions you already
//! have, add [`main!`], and your crate becomes an experiment runner:
//!
//! ```ignore
//! use crystallize::prelude::*;
//!
//! #[derive(Clone, Debug, Serialize, Deserialize)]
//! pub struct GameConfig { pub models: Vec<String>, pub spoilers: bool }
//!
//! #[datasource]
//! fn llama_table(ctx: &Ctx) -> GameConfig { /* ... */ }
//!
//! #[datasource]
//! fn dolphin_table(ctx: &Ctx) -> GameConfig { /* ... */ }
//!
//! #[derive(Clone, Debug, Params)]
//! pub struct GameParams { #[param(default = 0.7)] pub temperature: f64 }
//!
//! #[derive(Metrics)]
//! pub struct GameMetrics { pub win: bool }
//!
//! #[step]
//! fn play(config: &GameConfig, params: &GameParams, ctx: &mut Ctx) -> bool { /* ... */ }
//!
//! #[experiment(datasource = llama_table, replicates = 10, seed = 42)]
//! fn social_deception(config: GameConfig, params: &GameParams, ctx: &mut Ctx) -> GameMetrics {
//!     GameMetrics { win: play(&config, params, ctx) }
//! }
//!
//! #[treatment(social_deception, datasource = dolphin_table, set(temperature = 1.2))]
//! fn dolphin_spoilers(config: &mut GameConfig) { config.spoilers = true; }
//!
//! crystallize::main!();
//! ```
//!
//! Then `cargo run -- list`, `cargo run -- run --replicates 4`, `cargo run -- debug dolphin_spoilers`.
//!
//! ## The public surface
//!
//! The [`prelude`] is what an experiment file needs. The rest is a few modules, each with one job:
//!
//! | module | for |
//! |---|---|
//! | [`session`] | running an experiment from code: [`session::Session`] plans, stores, resumes, streams and debugs a run, exactly as the command line does |
//! | [`observe`] | watching a run: the [`observe::Observer`] trait, its messages, the built-in printers |
//! | [`results`] | what a run produces: [`results::UnitResult`], [`results::RunResults`], [`results::Failure`] |
//! | [`store`] | reading stored runs: [`store::Store`], [`store::RunDir`], their status |
//! | [`config`] | the resolved configuration of a condition: params, their values and origins |
//! | [`hypothesis`] | the hypothesis language and deciding hypotheses |
//! | [`stats`] | the tests, intervals, corrections and power calculations behind reports |
//! | [`testing`] | `cargo test` helpers: [`testing::StandaloneCtx`], [`testing::TestRun`] |
//!
//! At the top: [`Ctx`] (what a unit knows and how it reports), [`Error`] (bad input, found before
//! any work), [`quick()`] (the on-ramp without attributes), and the attributes and derives.
//! Everything else is internal; generated code reaches it through a hidden `__private` module.

#![warn(missing_docs)]

#[cfg(feature = "async")]
mod async_runtime;
mod cache;
mod cli;
mod config_file;
mod confirmation;
mod console;
mod context;
mod diff;
mod duration;
mod error;
mod events;
mod export;
mod html;
#[cfg(feature = "async")]
mod limits;
mod metrics;
mod overrides;
mod params;
#[cfg(test)]
mod parser_properties;
mod plan;
mod quick;
mod registry;
mod report;
mod resolve;
mod runner;
mod seed;
mod sequential;
mod shard;
mod source;
mod summary;
mod unit_table;
mod verbose;

pub mod hypothesis;
pub mod results;
pub mod session;
pub mod stats;
pub mod store;
pub mod testing;

#[doc(hidden)]
pub mod __private;

pub use context::{ArtifactError, Ctx, Emitter, IntoMetric, Rng};
pub use crystallize_macros::{datasource, experiment, step, treatment, Metrics, Params};
pub use error::Error;
#[cfg(feature = "async")]
pub use limits::LimitGuard;
pub use quick::{quick, Quick, QuickResults};
pub use serde_json::json;

/// Everything an experiment file needs: `use crystallize::prelude::*;`.
pub mod prelude {
    pub use crate::{datasource, experiment, json, step, treatment, Ctx, Metrics, Params};
    pub use rand::Rng as _;
    pub use serde::{Deserialize, Serialize};
}

/// Watching a run while it goes: implement `Observer` and attach it with
/// `#[experiment(observers = [...])]`, [`observer!`](crate::observer), or
/// [`Session::observer`](crate::session::Session::observer). The guide is `docs/OBSERVERS.md`.
pub mod observe {
    /// The guide `docs/OBSERVERS.md`, included here so that its examples are compiled and run
    /// as doctests.
    #[cfg(doctest)]
    #[doc = include_str!("../../docs/OBSERVERS.md")]
    pub struct ObserversGuide;

    pub use crate::cli::Progress;
    pub use crate::console::{line, stderr, suspend};
    pub use crate::events::{Event, InputView, Interest, Observer, UnitKey};
    pub use crate::source::{Location, StepInfo};
    pub use crate::verbose::{StepLines, VerbosePrinter};
}

/// The resolved configuration of a condition: every param with its value and where the value
/// came from (a default, a treatment, `crystallize.toml`, `--set`), as `show` prints it.
pub mod config {
    pub use crate::params::{Origin, ParamKind, ParamValue, Params, ResolvedParam};
}

/// Generates `fn main` for a crate of experiments: the command line of CLI.md.
///
/// `crystallize::main!()` when the experiments are in this crate. When they live in library
/// crates, name them — `crystallize::main!(my_experiments)` — so the linker keeps their
/// registrations (a crate nothing refers to is not linked, and its experiments would vanish).
#[macro_export]
macro_rules! main {
    ($($krate:ident),* $(,)?) => {
        $(
            #[allow(unused_imports)]
            use $krate as _;
        )*
        fn main() -> ::std::process::ExitCode {
            $crate::__private::cli_main($crate::__private::App {
                name: ::core::env!("CARGO_PKG_NAME"),
                version: ::core::env!("CARGO_PKG_VERSION"),
                manifest_dir: ::core::env!("CARGO_MANIFEST_DIR"),
            })
        }
    };
}
