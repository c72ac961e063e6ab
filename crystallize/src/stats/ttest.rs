//! Student's t tests: Welch's (unequal variances), Student's (pooled variance), paired and one
//! sample. Each returns the statistic, the degrees of freedom, the p-value for the chosen
//! [`Alternative`], and can give the matching confidence interval of the estimate, as SciPy's
//! `ttest_ind` / `ttest_rel` / `ttest_1samp` do.

use serde::Serialize;

use super::dist::{t_cdf, t_ppf, t_sf};
use super::{check_len, check_level, check_param, check_sample, mean, variance, Alternative, Interval, StatsError};

/// The result of a t test.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TTest {
    /// `(estimate − mu) / standard_error`.
    pub statistic: f64,
    /// Degrees of freedom (Welch–Satterthwaite for [`welch_t`]).
    pub df: f64,
    /// The p-value under the alternative.
    pub p: f64,
    /// The estimated difference of means (`x − y`), mean difference (paired) or mean (one sample).
    pub estimate: f64,
    /// The standard error of `estimate`.
    pub standard_error: f64,
    /// The null value the estimate was compared with.
    pub mu: f64,
    /// The alternative hypothesis.
    pub alternative: Alternative,
}

impl TTest {
    /// The confidence interval of the estimate at `level`: two-sided for
    /// [`Alternative::TwoSided`], one-sided (one infinite end) otherwise, as in SciPy.
    pub fn confidence_interval(&self, level: f64) -> Result<Interval, StatsError> {
        check_level(level)?;
        let (low, high) = match self.alternative {
            Alternative::TwoSided => {
                let half = t_ppf(0.5 + level / 2.0, self.df) * self.standard_error;
                (self.estimate - half, self.estimate + half)
            }
            Alternative::Greater => (self.estimate - t_ppf(level, self.df) * self.standard_error, f64::INFINITY),
            Alternative::Less => (f64::NEG_INFINITY, self.estimate + t_ppf(level, self.df) * self.standard_error),
        };
        Ok(Interval { low, high, level })
    }
}

/// The p-value of `t` with `df` degrees of freedom.
pub(crate) fn t_p_value(t: f64, df: f64, alternative: Alternative) -> f64 {
    match alternative {
        Alternative::Greater => t_sf(t, df),
        Alternative::Less => t_cdf(t, df),
        Alternative::TwoSided => (2.0 * t_sf(t.abs(), df)).min(1.0),
    }
}

fn finish(
    test: &'static str,
    estimate: f64,
    standard_error: f64,
    df: f64,
    mu: f64,
    alternative: Alternative,
    no_spread: &'static str,
) -> Result<TTest, StatsError> {
    if !(standard_error > 0.0) {
        return Err(StatsError::ZeroVariance {
            test,
            why: format!("{no_spread}, so the standard error is 0 and t = (estimate − mu) / 0 has no value"),
        });
    }
    let statistic = (estimate - mu) / standard_error;
    Ok(TTest { statistic, df, p: t_p_value(statistic, df, alternative), estimate, standard_error, mu, alternative })
}

/// Welch's two-sample t test of `mean(x) − mean(y) = mu`, not assuming equal variances
/// (SciPy `ttest_ind(x − mu, y, equal_var=False)`). Each sample needs 2 values; at least one
/// sample must vary.
pub fn welch_t(x: &[f64], y: &[f64], mu: f64, alternative: Alternative) -> Result<TTest, StatsError> {
    const TEST: &str = "Welch's t test";
    check_sample(TEST, "x", x)?;
    check_sample(TEST, "y", y)?;
    check_param("mu", mu)?;
    const WHY: &str = "each sample's own variance is estimated";
    check_len(TEST, "x", x, 2, WHY)?;
    check_len(TEST, "y", y, 2, WHY)?;
    let (nx, ny) = (x.len() as f64, y.len() as f64);
    let (vx, vy) = (variance(x) / nx, variance(y) / ny);
    let df = (vx + vy).powi(2) / (vx * vx / (nx - 1.0) + vy * vy / (ny - 1.0));
    finish(TEST, mean(x) - mean(y), (vx + vy).sqrt(), df, mu, alternative, "both samples are constant")
}

/// Student's two-sample t test with a pooled variance (SciPy `ttest_ind(x − mu, y)`). Needs at
/// least 3 values in all, one per sample, and some spread within the samples.
pub fn student_t(x: &[f64], y: &[f64], mu: f64, alternative: Alternative) -> Result<TTest, StatsError> {
    const TEST: &str = "Student's t test";
    check_sample(TEST, "x", x)?;
    check_sample(TEST, "y", y)?;
    check_param("mu", mu)?;
    if x.len() + y.len() < 3 {
        return Err(StatsError::TooFew {
            test: TEST,
            sample: "x and y together",
            needed: 3,
            got: x.len() + y.len(),
            why: "the pooled variance has n_x + n_y − 2 degrees of freedom",
        });
    }
    let (nx, ny) = (x.len() as f64, y.len() as f64);
    let squares = |s: &[f64]| if s.len() > 1 { variance(s) * (s.len() as f64 - 1.0) } else { 0.0 };
    let df = nx + ny - 2.0;
    let pooled = (squares(x) + squares(y)) / df;
    let se = (pooled * (1.0 / nx + 1.0 / ny)).sqrt();
    finish(TEST, mean(x) - mean(y), se, df, mu, alternative, "no value differs from its sample's mean")
}

/// One-sample t test of `mean(x) = mu` (SciPy `ttest_1samp`). Needs 2 values that are not all
/// equal.
pub fn one_sample_t(x: &[f64], mu: f64, alternative: Alternative) -> Result<TTest, StatsError> {
    one_sample("one-sample t test", "x", x, mu, alternative, "all values are equal")
}

fn one_sample(
    test: &'static str,
    sample: &'static str,
    x: &[f64],
    mu: f64,
    alternative: Alternative,
    no_spread: &'static str,
) -> Result<TTest, StatsError> {
    check_sample(test, sample, x)?;
    check_param("mu", mu)?;
    check_len(test, sample, x, 2, "the variance needs n − 1 ≥ 1 degrees of freedom")?;
    let n = x.len() as f64;
    finish(test, mean(x), (variance(x) / n).sqrt(), n - 1.0, mu, alternative, no_spread)
}

/// Paired t test of `mean(x − y) = mu`, pairing `x[i]` with `y[i]` (SciPy `ttest_rel`). Needs 2
/// pairs whose differences are not all equal.
pub fn paired_t(x: &[f64], y: &[f64], mu: f64, alternative: Alternative) -> Result<TTest, StatsError> {
    const TEST: &str = "paired t test";
    check_sample(TEST, "x", x)?;
    check_sample(TEST, "y", y)?;
    if x.len() != y.len() {
        return Err(StatsError::LengthMismatch { test: TEST, x_len: x.len(), y_len: y.len() });
    }
    let d: Vec<f64> = x.iter().zip(y).map(|(a, b)| a - b).collect();
    one_sample(TEST, "x − y", &d, mu, alternative, "every pair differs by the same amount")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welch_matches_a_hand_computation() {
        // x: mean 2, var 1; y: mean 5, var 10/3; se² = 1/3 + (10/3)/4
        let t = welch_t(&[1.0, 2.0, 3.0], &[3.0, 4.0, 6.0, 7.0], 0.0, Alternative::TwoSided).unwrap();
        let se = (1.0f64 / 3.0 + 10.0 / 3.0 / 4.0).sqrt();
        assert!((t.statistic - (-3.0 / se)).abs() < 1e-12);
        assert!(t.p > 0.0 && t.p < 0.1);
        let one = welch_t(&[1.0, 2.0, 3.0], &[3.0, 4.0, 6.0, 7.0], 0.0, Alternative::Less).unwrap();
        assert!((one.p - t.p / 2.0).abs() < 1e-15);
    }

    #[test]
    fn degenerate_inputs_are_errors() {
        let error = welch_t(&[1.0, 1.0], &[2.0, 2.0], 0.0, Alternative::TwoSided).unwrap_err();
        assert!(error.to_string().contains("both samples are constant"), "{error}");
        assert!(matches!(welch_t(&[1.0], &[2.0, 3.0], 0.0, Alternative::TwoSided), Err(StatsError::TooFew { .. })));
        assert!(matches!(
            paired_t(&[1.0, 2.0], &[1.0], 0.0, Alternative::TwoSided),
            Err(StatsError::LengthMismatch { .. })
        ));
        assert!(matches!(
            paired_t(&[2.0, 3.0], &[1.0, 2.0], 0.0, Alternative::TwoSided),
            Err(StatsError::ZeroVariance { .. })
        ));
        assert!(matches!(student_t(&[1.0], &[2.0], 0.0, Alternative::TwoSided), Err(StatsError::TooFew { .. })));
        assert!(matches!(
            one_sample_t(&[1.0, f64::NAN], 0.0, Alternative::TwoSided),
            Err(StatsError::NonFinite { .. })
        ));
    }
}
