//! Rank tests: Mann–Whitney U for two independent samples, Wilcoxon signed-rank for paired
//! differences. Both follow SciPy's conventions (`mannwhitneyu`, `wilcoxon` with
//! `zero_method="wilcox"`): average ranks for ties; with `Auto`, the exact null distribution
//! for small samples without ties, the normal approximation with tie correction otherwise.

use serde::Serialize;

use super::dist::{norm_cdf, norm_sf};
use super::{check_sample, rank_average, Alternative, StatsError};

/// How to get a rank test's p-value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RankMethod {
    /// Choose as SciPy does (see each test).
    #[default]
    Auto,
    /// The exact null distribution (conditional on the ties, when there are ties).
    Exact,
    /// The normal approximation with tie correction.
    Asymptotic,
}

/// The result of [`mann_whitney_u`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct MannWhitney {
    /// U of `x`: the number of pairs (xᵢ, yⱼ) with xᵢ > yⱼ, ties counting one half.
    pub u: f64,
    /// The p-value under the alternative.
    pub p: f64,
    /// The method used (never `Auto`).
    pub method: RankMethod,
    /// The standardised statistic, for the asymptotic method.
    pub z: Option<f64>,
}

/// The result of [`wilcoxon_signed_rank`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Wilcoxon {
    /// SciPy's statistic: `min(r_plus, r_minus)` for a two-sided test, `r_plus` otherwise.
    pub statistic: f64,
    /// Sum of the ranks of |d| over positive differences.
    pub r_plus: f64,
    /// Sum of the ranks of |d| over negative differences.
    pub r_minus: f64,
    /// Number of non-zero differences (zeros are dropped, `zero_method="wilcox"`).
    pub n: usize,
    /// The p-value under the alternative.
    pub p: f64,
    /// The method used (never `Auto`).
    pub method: RankMethod,
    /// The standardised statistic, for the asymptotic method.
    pub z: Option<f64>,
}

/// Largest number of sign patterns [`wilcoxon_signed_rank`] enumerates for an exact p-value with
/// ties (2^20).
const MAX_SIGN_PATTERNS: usize = 1 << 20;

/// Mann–Whitney U test of `x` against `y`; [`Alternative::Greater`] means x tends to be larger.
///
/// `Auto` uses the exact distribution when there are no ties and one sample has at most 8
/// values (SciPy's rule), as long as the distribution has at most 10⁷ entries; otherwise the
/// normal approximation, with continuity correction when `continuity` is true (SciPy's default).
pub fn mann_whitney_u(
    x: &[f64],
    y: &[f64],
    alternative: Alternative,
    method: RankMethod,
    continuity: bool,
) -> Result<MannWhitney, StatsError> {
    const TEST: &str = "Mann–Whitney U test";
    check_sample(TEST, "x", x)?;
    check_sample(TEST, "y", y)?;
    let (n1, n2) = (x.len(), y.len());
    let all: Vec<f64> = x.iter().chain(y).copied().collect();
    let (ranks, ties) = rank_average(&all);
    let r1: f64 = ranks[..n1].iter().sum();
    let u1 = r1 - (n1 * (n1 + 1)) as f64 / 2.0;
    let u2 = (n1 * n2) as f64 - u1;
    let (u, factor) = match alternative {
        Alternative::Greater => (u1, 1.0),
        Alternative::Less => (u2, 1.0),
        Alternative::TwoSided => (u1.max(u2), 2.0),
    };
    let has_ties = ties.iter().any(|&t| t > 1);
    let small_enough = n1.saturating_mul(n2) <= 10_000_000;
    let method = match method {
        RankMethod::Auto if (n1 <= 8 || n2 <= 8) && !has_ties && small_enough => RankMethod::Exact,
        RankMethod::Auto => RankMethod::Asymptotic,
        RankMethod::Exact if has_ties => {
            return Err(StatsError::InvalidArgument {
                name: "method",
                value: "exact".into(),
                why: "the exact Mann–Whitney distribution assumes no ties, and these samples have ties; \
                      use Auto or Asymptotic (which corrects for ties)",
            })
        }
        RankMethod::Exact if !small_enough => {
            return Err(StatsError::InvalidArgument {
                name: "method",
                value: "exact".into(),
                why: "the exact distribution would have more than 10^7 entries; use Asymptotic",
            })
        }
        other => other,
    };
    if method == RankMethod::Exact {
        let p = (mwu_sf(n1, n2, u.round() as usize) * factor).clamp(0.0, 1.0);
        return Ok(MannWhitney { u: u1, p, method, z: None });
    }
    let n = (n1 + n2) as f64;
    let tie_term: f64 = ties.iter().map(|&t| (t as f64).powi(3) - t as f64).sum();
    let variance = (n1 * n2) as f64 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    if !(variance > 0.0) {
        return Err(StatsError::ZeroVariance {
            test: TEST,
            why: "every value of x and y is the same, so all ranks tie and U has no spread".into(),
        });
    }
    let mut numerator = u - (n1 * n2) as f64 / 2.0;
    if continuity {
        numerator -= 0.5;
    }
    let z = numerator / variance.sqrt();
    let p = (norm_sf(z) * factor).clamp(0.0, 1.0);
    Ok(MannWhitney { u: u1, p, method, z: Some(z) })
}

/// P(U ≥ u) under the null for sample sizes `n1`, `n2` without ties. The counts of each U are
/// the coefficients of the Gaussian binomial ∏ᵢ (1 − q^(n+i)) / (1 − q^i), kept exact in
/// 128-bit integers when every count fits; beyond that, see [`mwu_lower_tail`].
fn mwu_sf(n1: usize, n2: usize, u: usize) -> f64 {
    let (m, n) = if n1 <= n2 { (n1, n2) } else { (n2, n1) };
    let top = m * n;
    if u > top {
        return 0.0;
    }
    if u == 0 {
        return 1.0;
    }
    // log2 C(m+n, m) decides whether i128 holds every count.
    let log2_total: f64 = (1..=m).map(|i| ((n + i) as f64 / i as f64).log2()).sum();
    if log2_total < 120.0 {
        let mut c = vec![0i128; top + 1];
        c[0] = 1;
        for i in 1..=m {
            let shift = n + i;
            for k in (shift..=top).rev() {
                c[k] -= c[k - shift];
            }
            for k in i..=top {
                c[k] += c[k - i];
            }
        }
        let total: i128 = c.iter().sum();
        let tail: i128 = c[u..].iter().sum();
        // tail ≥ 1 and total < 2^120: the quotient is at least 2^-120, never 0.
        tail as f64 / total as f64
    } else if 2 * u > top {
        // The distribution is symmetric (count(k) = count(top − k)): the upper tail is a lower
        // tail, whose small counts are computed without cancellation.
        mwu_lower_tail(m, n, top - u)
    } else {
        1.0 - mwu_lower_tail(m, n, u - 1)
    }
}

/// P(U ≤ k) for sizes m ≤ n without ties, when C(m+n, m) is beyond 2^120: the Gaussian binomial
/// truncated at degree k, rescaled after each factor (its logarithm kept aside), divided by
/// C(m+n, m) in log space. A far-tail p-value (10⁻³³, or below f64's range of counts) is then
/// exp(ln Σ counts − ln C), not 0: an exact test never reports p = 0.
fn mwu_lower_tail(m: usize, n: usize, k: usize) -> f64 {
    let mut c = vec![0f64; k + 1];
    c[0] = 1.0;
    let mut log_scale = 0.0;
    for i in 1..=m {
        // multiply by 1 / (1 − q^i): c[j] += c[j − i]; then by (1 − q^(n+i)): c[j] −= c[j − n − i].
        for j in i..=k {
            c[j] += c[j - i];
        }
        let shift = n + i;
        for j in (shift..=k).rev() {
            c[j] -= c[j - shift];
        }
        let max = c.iter().fold(0.0f64, |a, &b| a.max(b));
        if max > 1e200 {
            c.iter_mut().for_each(|v| *v /= max);
            log_scale += max.ln();
        }
    }
    let sum: f64 = c.iter().map(|v| v.max(0.0)).sum();
    let ln_total = ln_choose(m + n, m);
    (sum.ln() + log_scale - ln_total).exp().clamp(f64::MIN_POSITIVE, 1.0)
}

/// ln C(n, k).
fn ln_choose(n: usize, k: usize) -> f64 {
    use statrs::function::gamma::ln_gamma;
    ln_gamma(n as f64 + 1.0) - ln_gamma(k as f64 + 1.0) - ln_gamma((n - k) as f64 + 1.0)
}

/// Wilcoxon signed-rank test of the differences `d` (`x − y` of paired samples, or one sample
/// against 0); [`Alternative::Greater`] means the differences tend to be positive.
///
/// Zero differences are dropped (`zero_method="wilcox"`). `Auto` follows SciPy: with more than 50
/// differences the normal approximation; otherwise the exact distribution when there are no
/// ties and no zeros, the exact distribution conditional on the ties (every sign pattern
/// enumerated) when there are ties or zeros among at most 13 differences, and the normal
/// approximation beyond. `continuity` applies the continuity correction to the approximation
/// (SciPy's default is false).
pub fn wilcoxon_signed_rank(
    d: &[f64],
    alternative: Alternative,
    method: RankMethod,
    continuity: bool,
) -> Result<Wilcoxon, StatsError> {
    const TEST: &str = "Wilcoxon signed-rank test";
    check_sample(TEST, "d", d)?;
    let nonzero: Vec<f64> = d.iter().copied().filter(|v| *v != 0.0).collect();
    let n = nonzero.len();
    if n == 0 {
        return Err(StatsError::ZeroVariance {
            test: TEST,
            why: "every difference is 0, and zero differences carry no sign to rank".into(),
        });
    }
    let magnitudes: Vec<f64> = nonzero.iter().map(|v| v.abs()).collect();
    let (ranks, ties) = rank_average(&magnitudes);
    let r_plus: f64 = ranks.iter().zip(&nonzero).filter(|(_, v)| **v > 0.0).map(|(r, _)| r).sum();
    let r_minus: f64 = ranks.iter().zip(&nonzero).filter(|(_, v)| **v < 0.0).map(|(r, _)| r).sum();
    let statistic = if alternative == Alternative::TwoSided { r_plus.min(r_minus) } else { r_plus };
    let has_ties = ties.iter().any(|&t| t > 1);
    let has_zeros = n < d.len();
    let method = match method {
        RankMethod::Auto if d.len() > 50 => RankMethod::Asymptotic,
        RankMethod::Auto if !(has_ties || has_zeros) => RankMethod::Exact,
        RankMethod::Auto if d.len() <= 13 => RankMethod::Exact,
        RankMethod::Auto => RankMethod::Asymptotic,
        RankMethod::Exact if (has_ties || has_zeros) && (n >= 64 || 1usize << n > MAX_SIGN_PATTERNS) => {
            return Err(StatsError::InvalidArgument {
                name: "method",
                value: "exact".into(),
                why: "with ties or zeros the exact p-value enumerates every sign pattern, and there are more \
                      than 2^20 here; use Asymptotic",
            })
        }
        RankMethod::Exact if n > 1000 => {
            return Err(StatsError::InvalidArgument {
                name: "method",
                value: "exact".into(),
                why: "the exact distribution is kept for at most 1000 differences; use Asymptotic",
            })
        }
        other => other,
    };
    if method == RankMethod::Exact {
        let (p_greater, p_less) =
            if has_ties || has_zeros { sign_pattern_tails(&ranks, r_plus) } else { signed_rank_tails(n, r_plus) };
        let p = match alternative {
            Alternative::Greater => p_greater,
            Alternative::Less => p_less,
            Alternative::TwoSided => (2.0 * p_greater.min(p_less)).clamp(0.0, 1.0),
        };
        return Ok(Wilcoxon { statistic, r_plus, r_minus, n, p, method, z: None });
    }
    let nf = n as f64;
    let mean = nf * (nf + 1.0) / 4.0;
    let tie_term: f64 = ties.iter().map(|&t| (t as f64).powi(3) - t as f64).sum();
    let se = ((nf * (nf + 1.0) * (2.0 * nf + 1.0) - tie_term / 2.0) / 24.0).sqrt();
    let mut z = (r_plus - mean) / se;
    if continuity {
        let sign = match alternative {
            Alternative::Greater => 1.0,
            Alternative::Less => -1.0,
            Alternative::TwoSided => sign(z),
        };
        z -= sign * 0.5 / se;
    }
    let p = match alternative {
        Alternative::Greater => norm_sf(z),
        Alternative::Less => norm_cdf(z),
        Alternative::TwoSided => (2.0 * norm_sf(z.abs())).min(1.0),
    };
    Ok(Wilcoxon { statistic, r_plus, r_minus, n, p, method, z: Some(z) })
}

fn sign(z: f64) -> f64 {
    if z > 0.0 {
        1.0
    } else if z < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// (P(W⁺ ≥ r), P(W⁺ ≤ r)) for n untied, non-zero differences: the counts of W⁺ are the
/// coefficients of ∏ᵢ (1 + q^i).
fn signed_rank_tails(n: usize, r_plus: f64) -> (f64, f64) {
    let top = n * (n + 1) / 2;
    let mut c = vec![0f64; top + 1];
    c[0] = 1.0;
    for i in 1..=n {
        for k in (i..=top).rev() {
            c[k] += c[k - i];
        }
        if n > 52 {
            // Beyond 2^53 the counts lose integer precision anyway: keep probabilities.
            c.iter_mut().for_each(|v| *v *= 0.5);
        }
    }
    let total: f64 = c.iter().sum();
    let floor = (r_plus.floor() as usize).min(top + 1);
    let ceil = (r_plus.ceil() as usize).min(top);
    let greater: f64 = c[floor.min(top)..].iter().sum::<f64>() / total;
    let less: f64 = c[..=ceil].iter().sum::<f64>() / total;
    (greater.min(1.0), less.min(1.0))
}

/// (P(W⁺ ≥ r), P(W⁺ ≤ r)) over every assignment of signs to `ranks` (ties keep their average
/// ranks). Ranks are multiples of ½, so the comparisons are exact.
fn sign_pattern_tails(ranks: &[f64], r_plus: f64) -> (f64, f64) {
    let n = ranks.len();
    let patterns = 1u64 << n;
    let (mut greater, mut less) = (0u64, 0u64);
    // Gray code: consecutive patterns differ in one sign.
    let mut sum = 0.0;
    let mut positive = vec![false; n];
    for k in 0..patterns {
        if k > 0 {
            let bit = k.trailing_zeros() as usize;
            positive[bit] = !positive[bit];
            sum += if positive[bit] { ranks[bit] } else { -ranks[bit] };
        }
        if sum >= r_plus - 1e-9 {
            greater += 1;
        }
        if sum <= r_plus + 1e-9 {
            less += 1;
        }
    }
    (greater as f64 / patterns as f64, less as f64 / patterns as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_tails_of_exact_mann_whitney_are_not_zero() {
        // SciPy 1.17 (method="exact", x entirely above y): 64 vs 64 gives 4.175165556793954e-38,
        // 100 vs 100 1.1043803465996167e-59, 30 vs 300 2.8746528957803767e-43.
        for (m, n, scipy) in [
            (64, 64, 4.175165556793954e-38),
            (100, 100, 1.1043803465996167e-59),
            (30, 300, 2.8746528957803767e-43),
            (8, 44000, 2.867766601536054e-33),
        ] {
            let x: Vec<f64> = (0..m).map(|i| (n + i) as f64 + 0.5).collect();
            let y: Vec<f64> = (0..n).map(|i| i as f64).collect();
            let r = mann_whitney_u(&x, &y, Alternative::Greater, RankMethod::Exact, true).unwrap();
            assert!((r.p - scipy).abs() <= 1e-9 * scipy, "{m} vs {n}: {} vs SciPy {scipy}", r.p);
            let less = mann_whitney_u(&x, &y, Alternative::Less, RankMethod::Exact, true).unwrap();
            assert_eq!(less.p, 1.0);
        }
        // Beyond f64's range of counts (C(6000, 3000) ≈ 10^1804) the smallest p is still positive.
        let x: Vec<f64> = (0..3000).map(|i| (3000 + i) as f64).collect();
        let y: Vec<f64> = (0..3000).map(|i| i as f64).collect();
        let r = mann_whitney_u(&x, &y, Alternative::Greater, RankMethod::Exact, true).unwrap();
        assert!(r.p > 0.0);
    }

    #[test]
    fn exact_mann_whitney_counts_arrangements() {
        // n1 = n2 = 2: U takes 0,1,2,2,3,4 over the 6 arrangements.
        assert_eq!(mwu_sf(2, 2, 4), 1.0 / 6.0);
        assert_eq!(mwu_sf(2, 2, 2), 4.0 / 6.0);
        assert_eq!(mwu_sf(2, 2, 0), 1.0);
        let r = mann_whitney_u(&[5.0, 6.0], &[1.0, 2.0], Alternative::Greater, RankMethod::Auto, true).unwrap();
        assert_eq!((r.u, r.p, r.method), (4.0, 1.0 / 6.0, RankMethod::Exact));
    }

    #[test]
    fn exact_signed_rank_counts_sign_patterns() {
        // n = 3: W+ over the 8 patterns is 0,1,2,3,3,4,5,6.
        assert_eq!(signed_rank_tails(3, 6.0), (1.0 / 8.0, 1.0));
        assert_eq!(signed_rank_tails(3, 3.0), (5.0 / 8.0, 5.0 / 8.0));
        // With ties the enumeration over sign patterns gives the same thing for untied ranks.
        assert_eq!(sign_pattern_tails(&[1.0, 2.0, 3.0], 3.0), (5.0 / 8.0, 5.0 / 8.0));
    }

    #[test]
    fn all_tied_or_zero_is_an_error() {
        assert!(matches!(
            mann_whitney_u(&[1.0, 1.0], &[1.0], Alternative::TwoSided, RankMethod::Auto, true),
            Err(StatsError::ZeroVariance { .. })
        ));
        let error = wilcoxon_signed_rank(&[0.0, 0.0], Alternative::TwoSided, RankMethod::Auto, false).unwrap_err();
        assert!(error.to_string().contains("every difference is 0"), "{error}");
    }
}
