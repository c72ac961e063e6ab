//! Fisher's exact test for 2×2 tables, and for two samples of a 0/1 metric.

use serde::Serialize;
use statrs::function::factorial::ln_binomial;

use super::{check_sample, Alternative, StatsError};

/// The result of Fisher's exact test.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct FisherExact {
    /// The sample odds ratio `a·d / (b·c)` (infinite when `b·c = 0 < a·d`; NaN when a row or
    /// column is empty, as in SciPy).
    pub odds_ratio: f64,
    /// The p-value under the alternative.
    pub p: f64,
}

/// Fisher's exact test of the table `[[a, b], [c, d]]` (SciPy `fisher_exact`).
/// [`Alternative::Greater`] means the odds ratio exceeds 1 (`a` is large). The two-sided p sums
/// the probabilities of every table at most as likely as the observed one (with a relative
/// tolerance of 10⁻⁷ for rounding).
pub fn fisher_exact(table: [[u64; 2]; 2], alternative: Alternative) -> Result<FisherExact, StatsError> {
    let [[a, b], [c, d]] = table;
    let row1 = a + b;
    let col1 = a + c;
    let total = a + b + c + d;
    if row1 == 0 || c + d == 0 || col1 == 0 || b + d == 0 {
        return Ok(FisherExact { odds_ratio: f64::NAN, p: 1.0 });
    }
    let odds_ratio = if b > 0 && c > 0 { (a as f64 * d as f64) / (b as f64 * c as f64) } else { f64::INFINITY };
    // a ~ Hypergeometric(total, row1, col1), support lo..=hi.
    let lo = col1.saturating_sub(c + d);
    let hi = row1.min(col1);
    let ln_denominator = ln_binomial(total, col1);
    let pmf = |k: u64| (ln_binomial(row1, k) + ln_binomial(total - row1, col1 - k) - ln_denominator).exp();
    let p = match alternative {
        Alternative::Less => (lo..=a).map(pmf).sum::<f64>(),
        Alternative::Greater => (a..=hi).map(pmf).sum::<f64>(),
        Alternative::TwoSided => {
            let observed = pmf(a);
            (lo..=hi).map(pmf).filter(|p| *p <= observed * (1.0 + 1e-7)).sum::<f64>()
        }
    };
    Ok(FisherExact { odds_ratio, p: p.min(1.0) })
}

/// Fisher's exact test of two samples of a 0/1 metric: the table is
/// `[[ones in x, zeros in x], [ones in y, zeros in y]]`, so [`Alternative::Greater`] means
/// "x succeeds more often". Any value other than 0 or 1 is an error.
pub fn fisher_exact_binary(x: &[f64], y: &[f64], alternative: Alternative) -> Result<FisherExact, StatsError> {
    const TEST: &str = "Fisher's exact test";
    let count = |name: &'static str, sample: &[f64]| -> Result<[u64; 2], StatsError> {
        check_sample(TEST, name, sample)?;
        if let Some(index) = sample.iter().position(|v| *v != 0.0 && *v != 1.0) {
            return Err(StatsError::NotBinary { test: TEST, sample: name, index, value: sample[index] });
        }
        let ones = sample.iter().filter(|v| **v == 1.0).count() as u64;
        Ok([ones, sample.len() as u64 - ones])
    };
    fisher_exact([count("x", x)?, count("y", y)?], alternative)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tea_tasting() {
        // Fisher's lady tasting tea: 3 of 4 right; P(≥ 3) = (16 + 1) / 70.
        let r = fisher_exact([[3, 1], [1, 3]], Alternative::Greater).unwrap();
        assert!((r.p - 17.0 / 70.0).abs() < 1e-14);
        assert_eq!(r.odds_ratio, 9.0);
        let two = fisher_exact([[3, 1], [1, 3]], Alternative::TwoSided).unwrap();
        assert!((two.p - 34.0 / 70.0).abs() < 1e-14);
    }

    #[test]
    fn binary_samples_are_checked() {
        let error = fisher_exact_binary(&[1.0, 0.5], &[0.0], Alternative::TwoSided).unwrap_err();
        assert!(error.to_string().contains("0/1 values, but sample 'x' has 0.5 at index 1"), "{error}");
        let r = fisher_exact_binary(&[1.0, 1.0, 1.0, 0.0], &[1.0, 0.0, 0.0, 0.0], Alternative::Greater).unwrap();
        assert!((r.p - 17.0 / 70.0).abs() < 1e-14);
        assert_eq!(fisher_exact([[0, 0], [1, 2]], Alternative::TwoSided).unwrap().p, 1.0);
    }
}
