//! Hypotheses (in progress).
