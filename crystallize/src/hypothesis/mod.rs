//! Hypotheses about a run — `treated.win > baseline.win`, `new.acc >= old.acc - 0.05` — parsed
//! with errors that point at the offending character ([`parse()`]), checked against the
//! conditions before anything runs ([`validate_conditions`]), and decided from the unit results
//! with a test chosen for the design, corrected across the run ([`evaluate`]).

mod evaluate;
mod parse;

pub use evaluate::{
    evaluate, min_replicates, validate_conditions, EvalOptions, HypothesisError, HypothesisResult, Side, TestKind,
    Verdict,
};
pub use parse::{parse, Hypothesis, Op, Operand, ParseError};

/// `condition` without the `EXPERIMENT/` prefix a hypothesis may write it with (`exp/dolphin` is
/// `dolphin` of experiment `exp`); any other name as it is.
pub fn bare_condition<'a>(condition: &'a str, experiment: &str) -> &'a str {
    condition.strip_prefix(experiment).and_then(|rest| rest.strip_prefix('/')).unwrap_or(condition)
}

/// Parses `text` and decides it from `units` with the default options (seeds shared per
/// replicate, as the default seed policy gives): the one-call form behind
/// [`crate::QuickResults::hypothesis`] and [`crate::testing::TestResults::assert_hypothesis`].
/// The error is a readable message: the parse error with its caret, or why it cannot be evaluated.
pub fn check(text: &str, units: &[crate::runner::UnitResult]) -> Result<HypothesisResult, String> {
    let hypothesis = parse(text).map_err(|error| error.to_string())?;
    let mut results = evaluate(std::slice::from_ref(&hypothesis), units, true, &EvalOptions::default())
        .map_err(|error| error.to_string())?;
    results.pop().ok_or_else(|| format!("hypothesis '{text}' produced no result"))
}
