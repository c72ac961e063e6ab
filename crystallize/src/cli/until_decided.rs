//! The flags of `run --until-decided` (shared by `run` and `stream`): a stopping rule for the
//! session, checked before any unit runs, and the line saying why a sequential run stopped.

use clap::Args;

use crate::error::Error;
use crate::session::{Decisions, Session, StoppingRule};
use crate::stats::sequential::SequentialTest;

/// The default number of replicates the asymptotic sequence is tuned for.
pub(super) const DEFAULT_TUNING: u64 = 20;

#[derive(Args, Debug, Default)]
pub(super) struct SequentialArgs {
    /// Stop when every hypothesis is decided (supported, contradicted, or within --min-effect),
    /// with an anytime-valid test updated after each replicate index; needs --max-replicates.
    #[arg(long)]
    until_decided: bool,
    /// The most replicates per condition a sequential run may use (1 to 1000000).
    #[arg(long, value_name = "N", requires = "until_decided")]
    max_replicates: Option<u64>,
    /// The fewest replicates before a sequential run may stop (default 0: as soon as decided).
    #[arg(long, value_name = "M", requires = "until_decided")]
    min_replicates: Option<u64>,
    /// A hypothesis to decide (repeatable; default: the experiment's declared ones).
    #[arg(long = "hypothesis", value_name = "H", requires = "until_decided")]
    hypotheses: Vec<String>,
    /// The smallest difference that matters: an interval within ± it of the margin decides
    /// "within noise".
    #[arg(long, value_name = "EFFECT", requires = "until_decided", value_parser = super::non_negative)]
    min_effect: Option<f64>,
    /// The family-wise error level of the sequential decisions (Bonferroni over hypotheses).
    #[arg(long, default_value_t = 0.05, requires = "until_decided", value_parser = super::probability)]
    alpha: f64,
    /// The test: betting or asymptotic (confidence sequences; default: betting when the metric
    /// declares bounds, asymptotic otherwise), or sprt (bounded metrics, against the planned
    /// effect --min-effect, stopping for futility too).
    #[arg(long, value_name = "TEST", requires = "until_decided", value_parser = sequential_test)]
    sequential_test: Option<SequentialTest>,
    /// The number of replicates the asymptotic sequence is tightest at (its ρ).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_TUNING, requires = "until_decided",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    tuning: u64,
    /// For --sequential-test sprt: the power planned at --min-effect (default 0.8); the run
    /// stops for futility at error 1 − power.
    #[arg(long, value_name = "P", requires = "until_decided", value_parser = super::probability)]
    power: Option<f64>,
}

fn sequential_test(text: &str) -> Result<SequentialTest, String> {
    text.parse()
}

impl SequentialArgs {
    /// Adds the stopping rule to `session` when `--until-decided` was given. `replicates` is
    /// `--replicates`, taken as the maximum when `--max-replicates` is missing; on a resumed run
    /// the recorded maximum serves.
    pub(super) fn apply(&self, session: Session, replicates: Option<u64>, resuming: bool) -> Result<Session, Error> {
        if !self.until_decided {
            return Ok(session);
        }
        let max = match (self.max_replicates, replicates) {
            (Some(max), _) | (None, Some(max)) => max,
            (None, None) if resuming => 0,
            (None, None) => {
                return Err(Error::BadOption {
                    option: "--until-decided".into(),
                    value: "without a maximum".into(),
                    why: "a sequential run needs the most replicates it may use: add --max-replicates N (e.g. 200)"
                        .into(),
                })
            }
        };
        // On a resumed run without a new maximum, the recorded one is checked in the session.
        if !(resuming && max == 0) && (max == 0 || max > crate::sequential::MAX_REPLICATES) {
            return Err(Error::BadOption {
                option: "--max-replicates".into(),
                value: max.to_string(),
                why: format!("it is 1 to {}", crate::sequential::MAX_REPLICATES),
            });
        }
        let min = self.min_replicates.unwrap_or(0);
        if max > 0 && min > max {
            return Err(Error::BadOption {
                option: "--min-replicates".into(),
                value: min.to_string(),
                why: format!("it is above --max-replicates {max}, so the run could never stop; give at most {max}"),
            });
        }
        Ok(session.until_decided(StoppingRule {
            hypotheses: self.hypotheses.clone(),
            max_replicates: max,
            min_replicates: min,
            min_effect: self.min_effect,
            alpha: self.alpha,
            test: self.sequential_test,
            tuning: self.tuning,
            power: self.power,
        }))
    }
}

/// What a sequential run says at its end, on stderr.
pub(super) fn stop_line(decisions: &Decisions) -> String {
    let mut out = if decisions.all_decided {
        "stopped: every hypothesis is decided (anytime-valid; the remaining replicates were not needed)".to_owned()
    } else {
        "stopped at the maximum: not every hypothesis is decided".to_owned()
    };
    for result in &decisions.results {
        out.push_str(&format!("\n  {}", crate::sequential::line(result)));
    }
    out
}
