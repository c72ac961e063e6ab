//! Statistics for deciding whether two conditions really differ.
//!
//! Every test here is validated against SciPy (see `crystallize/tests/stats_scipy.rs` and the
//! generator `xtask/fixtures/gen_stats_fixtures.py`). Distributions (Student's t, the normal)
//! come from `statrs`; the tests themselves are written out here so that each convention — how
//! ties are ranked, how a two-sided permutation p-value is formed, how Monte Carlo p-values are
//! corrected — is visible and pinned by a test.
//!
//! Conventions shared by every function:
//!
//! * Input is checked first: an empty sample, a NaN or an infinity is a [`StatsError`] that
//!   names the sample and the index, never a NaN p-value.
//! * `x` is the first sample, `y` the second; effects are `x − y`, and
//!   [`Alternative::Greater`] means "x is larger than y (by more than `mu`)".
//! * Anything random (bootstrap, Monte Carlo permutations) takes an explicit `seed` and uses
//!   ChaCha; nothing reads the clock.
//!
//! | family | functions |
//! | --- | --- |
//! | t tests (`ttest`) | [`welch_t`], [`student_t`], [`paired_t`], [`one_sample_t`] |
//! | rank tests (`rank`) | [`mann_whitney_u`], [`wilcoxon_signed_rank`] |
//! | permutation (`permutation`) | [`permutation_test`], [`paired_permutation_test`], [`sign_flip_test`] |
//! | bootstrap (`bootstrap`) | [`bootstrap_ci`], [`bootstrap_interval_from_distribution`] |
//! | 0/1 metrics (`fisher`) | [`fisher_exact`], [`fisher_exact_binary`] |
//! | intervals in range (`proportion`) | [`clopper_pearson`], [`wilson`], [`newcombe_difference`], [`clamp_interval`] |
//! | effect sizes (`effect`) | [`mean_difference`], [`hedges_g`], [`relative_change`] |
//! | multiplicity (`correction`) | [`holm`], [`benjamini_hochberg`] |
//! | planning (`power`) | [`n_per_side`], [`t_test_power`], [`noncentral_t_cdf`] |

// `!(x > 0.0)` is deliberate throughout: unlike `x <= 0.0`, it is also true for NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

use serde::{Deserialize, Serialize};
use thiserror::Error;

mod bootstrap;
mod correction;
mod effect;
mod fisher;
pub(crate) mod permutation;
mod power;
mod proportion;
mod rank;
pub mod sequential;
mod ttest;

pub(crate) mod dist;

pub use bootstrap::{bootstrap_ci, bootstrap_interval_from_distribution, BootstrapMethod, BootstrapOptions};
pub use correction::{benjamini_hochberg, holm, Correction};
pub use effect::{hedges_g, mean_difference, relative_change, MeanDifference};
pub use fisher::{fisher_exact, fisher_exact_binary, FisherExact};
pub use permutation::{paired_permutation_test, permutation_test, sign_flip_test, PermutationOptions, PermutationTest};
pub use power::{n_per_side, noncentral_t_cdf, t_test_power, Design};
pub use proportion::{clamp_interval, clopper_pearson, is_binary, newcombe_difference, wilson};
pub use rank::{mann_whitney_u, wilcoxon_signed_rank, MannWhitney, RankMethod, Wilcoxon};
pub use ttest::{one_sample_t, paired_t, student_t, welch_t, TTest};

/// Bad input to a statistical function: what was wrong, and why the statistic cannot be computed.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum StatsError {
    /// A sample has no values.
    #[error("sample '{sample}' is empty: {test} needs at least one value")]
    Empty {
        /// The test or statistic.
        test: &'static str,
        /// Which sample (`x`, `y`, ...).
        sample: &'static str,
    },
    /// A sample holds a NaN or an infinity.
    #[error(
        "sample '{sample}' has {value} at index {index}: a NaN or an infinity makes every mean, variance and \
         rank meaningless; drop or fix that value first"
    )]
    NonFinite {
        /// Which sample.
        sample: &'static str,
        /// The position of the first bad value.
        index: usize,
        /// The bad value.
        value: f64,
    },
    /// A sample is too small for the statistic.
    #[error("{test} needs at least {needed} values in sample '{sample}', got {got}: {why}")]
    TooFew {
        /// The test or statistic.
        test: &'static str,
        /// Which sample.
        sample: &'static str,
        /// The fewest values that work.
        needed: usize,
        /// How many there were.
        got: usize,
        /// Why that many are needed.
        why: &'static str,
    },
    /// The data have no spread, so the statistic is 0/0 or infinite.
    #[error("{test} is undefined here: {why}")]
    ZeroVariance {
        /// The test or statistic.
        test: &'static str,
        /// What has no spread and what that breaks.
        why: String,
    },
    /// Paired samples of different lengths.
    #[error("{test} pairs x[i] with y[i], but x has {x_len} values and y has {y_len}")]
    LengthMismatch {
        /// The test.
        test: &'static str,
        /// Length of x.
        x_len: usize,
        /// Length of y.
        y_len: usize,
    },
    /// A 0/1 test got another value.
    #[error("{test} needs 0/1 values, but sample '{sample}' has {value} at index {index}")]
    NotBinary {
        /// The test.
        test: &'static str,
        /// Which sample.
        sample: &'static str,
        /// The position of the first bad value.
        index: usize,
        /// The bad value.
        value: f64,
    },
    /// A parameter (a level, an alpha, a p-value, a count) is out of its range.
    #[error("invalid {name} = {value}: {why}")]
    InvalidArgument {
        /// The parameter.
        name: &'static str,
        /// Its value, as text.
        value: String,
        /// What range is valid.
        why: &'static str,
    },
}

/// Which difference the alternative hypothesis claims, for `x − y` against the null value `mu`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Alternative {
    /// `x − y ≠ mu`.
    #[default]
    TwoSided,
    /// `x − y > mu`.
    Greater,
    /// `x − y < mu`.
    Less,
}

/// A confidence interval `[low, high]` at confidence `level`. A one-sided interval has an
/// infinite end.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower end.
    pub low: f64,
    /// Upper end.
    pub high: f64,
    /// Confidence level, e.g. 0.95.
    pub level: f64,
}

impl Interval {
    /// Whether `value` lies inside the closed interval.
    pub fn contains(&self, value: f64) -> bool {
        self.low <= value && value <= self.high
    }
}

/// Fails unless every value of `sample` is finite and there is at least one.
pub(crate) fn check_sample(test: &'static str, sample: &'static str, values: &[f64]) -> Result<(), StatsError> {
    if values.is_empty() {
        return Err(StatsError::Empty { test, sample });
    }
    check_finite(sample, values)
}

/// Fails on the first NaN or infinity.
pub(crate) fn check_finite(sample: &'static str, values: &[f64]) -> Result<(), StatsError> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(StatsError::NonFinite { sample, index, value: values[index] }),
        None => Ok(()),
    }
}

/// Fails unless `sample` has at least `needed` values.
pub(crate) fn check_len(
    test: &'static str,
    sample: &'static str,
    values: &[f64],
    needed: usize,
    why: &'static str,
) -> Result<(), StatsError> {
    if values.len() < needed {
        return Err(StatsError::TooFew { test, sample, needed, got: values.len(), why });
    }
    Ok(())
}

/// Fails unless `level` is a confidence level in (0, 1).
pub(crate) fn check_level(level: f64) -> Result<(), StatsError> {
    if !(level > 0.0 && level < 1.0) {
        return Err(StatsError::InvalidArgument {
            name: "confidence level",
            value: level.to_string(),
            why: "a confidence level lies strictly between 0 and 1, e.g. 0.95",
        });
    }
    Ok(())
}

/// Fails unless `value` is finite (a null value, a margin, an effect).
pub(crate) fn check_param(name: &'static str, value: f64) -> Result<(), StatsError> {
    if !value.is_finite() {
        return Err(StatsError::InvalidArgument { name, value: value.to_string(), why: "it must be a finite number" });
    }
    Ok(())
}

/// Arithmetic mean (two-pass: the mean is corrected by the mean residual, as NumPy's is close to).
pub(crate) fn mean(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let m = values.iter().sum::<f64>() / n;
    let correction = values.iter().map(|v| v - m).sum::<f64>() / n;
    m + correction
}

/// Sample variance with n − 1 in the denominator (two-pass).
pub(crate) fn variance(values: &[f64]) -> f64 {
    let m = mean(values);
    let squares: f64 = values.iter().map(|v| (v - m) * (v - m)).sum();
    squares / (values.len() as f64 - 1.0)
}

/// Ranks `values` from 1, ties getting the average of the ranks they span; also returns the
/// size of every group of tied values (groups of one included).
pub(crate) fn rank_average(values: &[f64]) -> (Vec<f64>, Vec<usize>) {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut ties = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // positions start..end (0-based) share the ranks start+1 ..= end
        let rank = (start + 1 + end) as f64 / 2.0;
        for &index in &order[start..end] {
            ranks[index] = rank;
        }
        ties.push(end - start);
        start = end;
    }
    (ranks, ties)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_average_ties() {
        let (ranks, ties) = rank_average(&[3.0, 1.0, 3.0, 2.0, 3.0]);
        assert_eq!(ranks, vec![4.0, 1.0, 4.0, 2.0, 4.0]);
        assert_eq!(ties, vec![1, 1, 3]);
    }

    #[test]
    fn non_finite_values_are_named() {
        let error = check_sample("t", "y", &[1.0, f64::NAN]).unwrap_err();
        assert!(matches!(error, StatsError::NonFinite { sample: "y", index: 1, .. }));
        assert!(error.to_string().contains("'y' has NaN at index 1"), "{error}");
        assert!(matches!(check_sample("t", "x", &[]), Err(StatsError::Empty { .. })));
        assert!(check_sample("t", "x", &[f64::INFINITY]).unwrap_err().to_string().contains("inf at index 0"));
        assert!(check_level(1.0).is_err() && check_level(f64::NAN).is_err() && check_level(0.95).is_ok());
    }

    #[test]
    fn every_test_refuses_nan_and_infinity() {
        let good = [1.0, 2.0, 3.5, 4.0];
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let with_bad = [1.0, bad, 3.0, 4.5];
            let alt = Alternative::TwoSided;
            let options = PermutationOptions::default();
            let results: Vec<(&str, Result<(), StatsError>)> = vec![
                ("welch", welch_t(&good, &with_bad, 0.0, alt).map(drop)),
                ("student", student_t(&with_bad, &good, 0.0, alt).map(drop)),
                ("paired", paired_t(&good, &with_bad, 0.0, alt).map(drop)),
                ("one sample", one_sample_t(&with_bad, 0.0, alt).map(drop)),
                ("mann-whitney", mann_whitney_u(&good, &with_bad, alt, RankMethod::Auto, true).map(drop)),
                ("wilcoxon", wilcoxon_signed_rank(&with_bad, alt, RankMethod::Auto, false).map(drop)),
                ("permutation", permutation_test(&with_bad, &good, 0.0, alt, &options).map(drop)),
                ("paired permutation", paired_permutation_test(&good, &with_bad, 0.0, alt, &options).map(drop)),
                ("fisher", fisher_exact_binary(&with_bad, &good, alt).map(drop)),
                ("mean difference", mean_difference(&good, &with_bad, false, 0.95).map(drop)),
                ("hedges", hedges_g(&with_bad, &good).map(drop)),
                ("relative", relative_change(&good, &with_bad).map(drop)),
                ("bootstrap", bootstrap_ci(&[&with_bad], false, &|s| s[0][0], &BootstrapOptions::default()).map(drop)),
            ];
            for (name, result) in results {
                assert!(matches!(result, Err(StatsError::NonFinite { index: 1, .. })), "{name} with {bad}: {result:?}");
            }
            assert!(holm(&[0.1, bad]).is_err());
        }
    }
}
