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
//! How the parts fit: the macros register each part with `inventory` ([`registry`]); a command
//! validates every name before any work ([`error`]), expands conditions × replicates into units
//! with seeds that depend only on the run seed and the replicate ([`plan`], [`seed`]), runs them
//! isolated and in parallel ([`runner`]) while one output thread reports to observers ([`events`]),
//! and summarises the results ([`results`], [`metrics`], [`summary`]), deciding hypotheses in a report ([`report`],
//! [`hypothesis`], [`stats`]) and the integrity of confirmations ([`confirmation`]).

#![warn(missing_docs)]

pub mod cli;
pub mod config_file;
pub mod confirmation;
pub mod console;
pub mod context;
pub mod diff;
pub mod error;
pub mod events;
pub mod hypothesis;
#[cfg(feature = "async")]
pub mod limits;
pub mod metrics;
pub mod overrides;
pub mod params;
pub mod plan;
pub mod quick;
pub mod registry;
pub mod report;
pub mod resolve;
pub mod results;
pub mod runner;
pub mod seed;
pub mod session;
pub mod source;
pub mod stats;
pub mod store;
pub mod summary;
pub mod testing;
pub mod verbose;

#[doc(hidden)]
pub mod __private;

pub use context::{ArtifactError, Ctx, Emitter, IntoMetric, Rng};
pub use crystallize_macros::{datasource, experiment, step, treatment, Metrics, Params};
pub use error::Error;
pub use quick::{quick, Quick, QuickResults};
pub use serde_json::json;

/// Everything an experiment file needs: `use crystallize::prelude::*;`.
pub mod prelude {
    pub use crate::{datasource, experiment, json, step, treatment, Ctx, Metrics, Params};
    pub use rand::Rng as _;
    pub use serde::{Deserialize, Serialize};
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
            $crate::__private::cli_main($crate::cli::App {
                name: ::core::env!("CARGO_PKG_NAME"),
                version: ::core::env!("CARGO_PKG_VERSION"),
                manifest_dir: ::core::env!("CARGO_MANIFEST_DIR"),
            })
        }
    };
}
