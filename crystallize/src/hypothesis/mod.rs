//! Hypotheses about a run — `treated.win > baseline.win`, `new.acc >= old.acc - 0.05` — parsed
//! with errors that point at the offending character ([`parse()`]), checked against the
//! conditions before anything runs ([`validate_conditions`]), and decided from the unit results
//! with a test chosen for the design, corrected across the run ([`evaluate`]).

mod evaluate;
mod parse;

pub(crate) use evaluate::evaluate_table;
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

/// Parses `text` (a bad one is exit code 2, with a caret under the offending character) and
/// checks that its conditions are among `conditions` (`COND`, or `EXPERIMENT/COND` of
/// `experiment`; an unknown one is exit code 2, with a "did you mean"), and, when the experiment
/// declares its metrics ([`crate::registry::declared_metrics`]), that both metrics are declared
/// (exit code 2, with a "did you mean"). `origin` says where the hypothesis was written, for the
/// message.
pub(crate) fn checked_hypothesis(
    text: &str,
    origin: &str,
    experiment: &str,
    conditions: &[&str],
) -> Result<Hypothesis, crate::Error> {
    checked_hypothesis_with(text, origin, experiment, conditions, crate::registry::declared_metrics(experiment))
}

/// [`checked_hypothesis`] with the declared metrics given (`None`: undeclared, not checked).
pub(crate) fn checked_hypothesis_with(
    text: &str,
    origin: &str,
    experiment: &str,
    conditions: &[&str],
    metrics: Option<&[&str]>,
) -> Result<Hypothesis, crate::Error> {
    let hypothesis = parse(text)
        .map_err(|error| crate::Error::BadHypothesis { origin: origin.to_owned(), message: error.to_string() })?;
    let mut bare = hypothesis.clone();
    for operand in [&mut bare.left, &mut bare.right] {
        operand.condition = bare_condition(&operand.condition, experiment).to_owned();
    }
    validate_conditions(&bare, conditions).map_err(|source| crate::Error::InHypothesis {
        hypothesis: text.to_owned(),
        origin: origin.to_owned(),
        source: Box::new(source),
    })?;
    if let Some(metrics) = metrics {
        for operand in [&hypothesis.left, &hypothesis.right] {
            if !metrics.contains(&operand.metric.as_str()) {
                return Err(crate::Error::InHypothesis {
                    hypothesis: text.to_owned(),
                    origin: origin.to_owned(),
                    source: Box::new(crate::Error::UndeclaredMetric {
                        experiment: experiment.to_owned(),
                        name: operand.metric.clone(),
                        suggestion: crate::error::suggest(&operand.metric, metrics),
                        valid: metrics.join(", "),
                    }),
                });
            }
        }
    }
    Ok(hypothesis)
}
