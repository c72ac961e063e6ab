//! Effect sizes: the difference of means with its confidence interval, Hedges' g, and the
//! relative change.

use serde::Serialize;
use statrs::function::gamma::ln_gamma;

use super::dist::t_ppf;
use super::{check_len, check_level, check_sample, mean, variance, Interval, StatsError};

/// A difference of means `x − y` with its t-based confidence interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct MeanDifference {
    /// `mean(x) − mean(y)` (equal to `mean(x − y)` when paired).
    pub estimate: f64,
    /// The confidence interval of the estimate.
    pub ci: Interval,
    /// The standard error of the estimate.
    pub standard_error: f64,
    /// Degrees of freedom of the t quantile (Welch–Satterthwaite when independent, n − 1 when
    /// paired).
    pub df: f64,
    /// Whether the samples were paired.
    pub paired: bool,
}

/// The difference of means `x − y` and its two-sided t interval at `level`: Welch's interval
/// for independent samples, the paired-t interval when `paired` (`x[i]` with `y[i]`). These
/// are SciPy's `ttest_ind(equal_var=False)` / `ttest_rel` intervals.
///
/// Each sample needs 2 values. When nothing varies (both samples constant, or every paired
/// difference equal) the standard error is 0 and the interval is the single point
/// `[estimate, estimate]`: the data hold no sampling variation to widen it. Callers that must
/// not act on such an interval should check `standard_error`.
pub fn mean_difference(x: &[f64], y: &[f64], paired: bool, level: f64) -> Result<MeanDifference, StatsError> {
    const TEST: &str = "difference of means";
    check_level(level)?;
    check_sample(TEST, "x", x)?;
    check_sample(TEST, "y", y)?;
    const WHY: &str = "the standard error needs a variance, which needs 2 values";
    check_len(TEST, "x", x, 2, WHY)?;
    check_len(TEST, "y", y, 2, WHY)?;
    let (estimate, standard_error, df) = if paired {
        if x.len() != y.len() {
            return Err(StatsError::LengthMismatch {
                test: "paired difference of means",
                x_len: x.len(),
                y_len: y.len(),
            });
        }
        let d: Vec<f64> = x.iter().zip(y).map(|(a, b)| a - b).collect();
        let n = d.len() as f64;
        (mean(&d), (variance(&d) / n).sqrt(), n - 1.0)
    } else {
        let (nx, ny) = (x.len() as f64, y.len() as f64);
        let (vx, vy) = (variance(x) / nx, variance(y) / ny);
        let df = if vx + vy > 0.0 {
            (vx + vy).powi(2) / (vx * vx / (nx - 1.0) + vy * vy / (ny - 1.0))
        } else {
            nx + ny - 2.0
        };
        (mean(x) - mean(y), (vx + vy).sqrt(), df)
    };
    let half = t_ppf(0.5 + level / 2.0, df) * standard_error;
    let ci = Interval { low: estimate - half, high: estimate + half, level };
    Ok(MeanDifference { estimate, ci, standard_error, df, paired })
}

/// Hedges' g: the standardised difference `(mean(x) − mean(y)) / s_pooled`, multiplied by the
/// exact small-sample correction J(df) = Γ(df/2) / (√(df/2) · Γ((df − 1)/2)), df = n_x + n_y − 2.
/// Needs 2 values per sample and some spread within the samples.
pub fn hedges_g(x: &[f64], y: &[f64]) -> Result<f64, StatsError> {
    const TEST: &str = "Hedges' g";
    check_sample(TEST, "x", x)?;
    check_sample(TEST, "y", y)?;
    const WHY: &str = "the pooled standard deviation needs a variance in each sample";
    check_len(TEST, "x", x, 2, WHY)?;
    check_len(TEST, "y", y, 2, WHY)?;
    let (nx, ny) = (x.len() as f64, y.len() as f64);
    let df = nx + ny - 2.0;
    let pooled = (((nx - 1.0) * variance(x) + (ny - 1.0) * variance(y)) / df).sqrt();
    if !(pooled > 0.0) {
        return Err(StatsError::ZeroVariance {
            test: TEST,
            why: "both samples are constant, so the pooled standard deviation is 0 and the standardised \
                  difference has no value"
                .into(),
        });
    }
    let j = (ln_gamma(df / 2.0) - 0.5 * (df / 2.0).ln() - ln_gamma((df - 1.0) / 2.0)).exp();
    Ok(j * (mean(x) - mean(y)) / pooled)
}

/// The relative change `(mean(x) − mean(y)) / |mean(y)|` of x over the reference y
/// (0.1 = 10 % higher). Undefined when `mean(y)` is 0.
pub fn relative_change(x: &[f64], y: &[f64]) -> Result<f64, StatsError> {
    const TEST: &str = "relative change";
    check_sample(TEST, "x", x)?;
    check_sample(TEST, "y", y)?;
    let reference = mean(y);
    if reference == 0.0 {
        return Err(StatsError::ZeroVariance {
            test: TEST,
            why: "the mean of the reference sample y is 0, and a change relative to 0 has no value".into(),
        });
    }
    Ok((mean(x) - reference) / reference.abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degenerate_differences_give_a_point_interval() {
        let r = mean_difference(&[1.0, 1.0, 0.0], &[0.0, 0.0, -1.0], true, 0.95).unwrap();
        assert_eq!((r.estimate, r.ci.low, r.ci.high, r.standard_error), (1.0, 1.0, 1.0, 0.0));
        let r = mean_difference(&[1.0, 1.0], &[0.0, 0.0], false, 0.95).unwrap();
        assert_eq!((r.ci.low, r.ci.high), (1.0, 1.0));
    }

    #[test]
    fn hedges_g_shrinks_cohens_d() {
        let (x, y) = ([1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 4.0, 5.0]);
        let d = -1.0 / variance(&x).sqrt();
        let g = hedges_g(&x, &y).unwrap();
        assert!(g > d && g < 0.0 && (g / d - (1.0 - 3.0 / (4.0 * 6.0 - 1.0))).abs() < 0.01, "{g} {d}");
        assert!(matches!(hedges_g(&[1.0, 1.0], &[2.0, 2.0]), Err(StatsError::ZeroVariance { .. })));
    }

    #[test]
    fn relative_change_is_against_the_reference() {
        assert!((relative_change(&[1.1], &[1.0]).unwrap() - 0.1).abs() < 1e-12);
        assert!((relative_change(&[-1.5], &[-1.0]).unwrap() + 0.5).abs() < 1e-12);
        assert!(relative_change(&[1.0], &[0.0]).is_err());
    }
}
