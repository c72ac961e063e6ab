//! Hypotheses about a run — `treated.win > baseline.win`, `new.acc >= old.acc - 0.05` — parsed
//! with errors that point at the offending character ([`parse()`]), checked against the
//! conditions before anything runs ([`validate_conditions`]), and decided from the unit results
//! with a test chosen for the design, corrected across the run ([`evaluate`]).

mod evaluate;
mod parse;

pub use evaluate::{
    evaluate, validate_conditions, EvalOptions, HypothesisError, HypothesisResult, Side, TestKind, Verdict,
};
pub use parse::{parse, Hypothesis, Op, Operand, ParseError};
