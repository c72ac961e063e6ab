//! Power and sample size for t tests, from the noncentral t distribution: how many replicates
//! per condition are needed to detect a given difference with a given probability.

use serde::{Deserialize, Serialize};
use statrs::function::beta::beta_reg;
use statrs::function::gamma::ln_gamma;

use super::dist::{norm_cdf, norm_ppf, t_ppf};
use super::{Alternative, StatsError};

/// How the two conditions are compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Design {
    /// Two independent samples of n each (two-sample t test, df = 2n − 2); `sd` is the
    /// standard deviation within a condition.
    #[default]
    Independent,
    /// n pairs (paired t test, df = n − 1); `sd` is the standard deviation of the paired
    /// differences.
    Paired,
}

/// P(T ≤ t) for the noncentral t distribution with `df` degrees of freedom and noncentrality
/// `ncp` (Lenth's algorithm AS 243, as refined in R's `pnt`, iterated until the series' error
/// bound is below 10⁻¹⁵ of its sum; the recurrences subtract, which leaves an absolute error
/// around 10⁻¹³). For
/// `ncp² > 1415` or `df > 4·10⁵`, where the series underflows, the normal approximation of
/// Abramowitz & Stegun 26.7.10.
pub fn noncentral_t_cdf(t: f64, df: f64, ncp: f64) -> f64 {
    const ERRMAX: f64 = 1e-15;
    const ITRMAX: usize = 1000;
    if !(df > 0.0) || t.is_nan() || ncp.is_nan() {
        return f64::NAN;
    }
    if t == f64::INFINITY {
        return 1.0;
    }
    if t == f64::NEG_INFINITY {
        return 0.0;
    }
    let (negdel, tt, del) = if t >= 0.0 { (false, t, ncp) } else { (true, -t, -ncp) };
    if df > 4e5 || del * del > 2.0 * std::f64::consts::LN_2 * 1021.0 {
        let s = 1.0 / (4.0 * df);
        let z = (tt * (1.0 - s) - del) / (1.0 + tt * tt * 2.0 * s).sqrt();
        let lower = norm_cdf(z);
        return if negdel { 1.0 - lower } else { lower };
    }
    let x = tt * tt / (tt * tt + df);
    let mut tnc = 0.0;
    if x > 0.0 {
        let lambda = del * del;
        let mut p = 0.5 * (-0.5 * lambda).exp();
        let mut q = (2.0 / std::f64::consts::PI).sqrt() * p * del;
        let mut s = 0.5 - p;
        if s < 1e-7 {
            s = -0.5 * (-0.5 * lambda).exp_m1();
        }
        let mut a = 0.5;
        let b = 0.5 * df;
        let rxb = (1.0 - x).powf(b);
        let albeta = 0.5 * std::f64::consts::PI.ln() + ln_gamma(b) - ln_gamma(0.5 + b);
        let mut xodd = beta_reg(a, b, x);
        let mut godd = 2.0 * rxb * (a * x.ln() - albeta).exp();
        let bx = b * x;
        let mut xeven = if bx < f64::EPSILON { bx } else { 1.0 - rxb };
        let mut geven = bx * rxb;
        tnc = p * xodd + q * xeven;
        for it in 1..=ITRMAX {
            a += 1.0;
            xodd -= godd;
            xeven -= geven;
            godd *= x * (a + b - 1.0) / a;
            geven *= x * (a + b - 0.5) / (a + 0.5);
            p *= lambda / (2 * it) as f64;
            q *= lambda / (2 * it + 1) as f64;
            tnc += p * xodd + q * xeven;
            s -= p;
            if s < -1e-10 || (s <= 0.0 && it > 1) {
                break;
            }
            if (2.0 * s * (xodd - godd)).abs() < ERRMAX * tnc.abs().max(1e-300) {
                break;
            }
        }
    }
    tnc += norm_cdf(-del);
    let tnc = tnc.min(1.0);
    if negdel {
        1.0 - tnc
    } else {
        tnc
    }
}

fn check_inputs(effect: f64, sd: f64, alpha: f64) -> Result<(), StatsError> {
    if !effect.is_finite() {
        return Err(StatsError::InvalidArgument {
            name: "effect",
            value: effect.to_string(),
            why: "the difference to detect must be a finite number",
        });
    }
    if !(sd > 0.0 && sd.is_finite()) {
        return Err(StatsError::InvalidArgument {
            name: "sd",
            value: sd.to_string(),
            why: "the standard deviation must be positive and finite: with no noise any difference is detected",
        });
    }
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(StatsError::InvalidArgument {
            name: "alpha",
            value: alpha.to_string(),
            why: "the significance level lies strictly between 0 and 1, e.g. 0.05",
        });
    }
    Ok(())
}

/// The power of a t test at `alpha` with `n` per side (pairs, when paired) to detect a true
/// difference `effect` when the noise has standard deviation `sd` (see [`Design`]). For a
/// one-sided alternative, `effect` is signed: power against the wrong direction is below α.
pub fn t_test_power(
    n: usize,
    effect: f64,
    sd: f64,
    alpha: f64,
    alternative: Alternative,
    design: Design,
) -> Result<f64, StatsError> {
    check_inputs(effect, sd, alpha)?;
    if n < 2 {
        return Err(StatsError::TooFew {
            test: "t-test power",
            sample: "each condition",
            needed: 2,
            got: n,
            why: "a t test estimates the variance from the data",
        });
    }
    let nf = n as f64;
    let (df, ncp) = match design {
        Design::Independent => (2.0 * nf - 2.0, effect / (sd * (2.0 / nf).sqrt())),
        Design::Paired => (nf - 1.0, effect / (sd / nf.sqrt())),
    };
    Ok(match alternative {
        Alternative::Greater => 1.0 - noncentral_t_cdf(t_ppf(1.0 - alpha, df), df, ncp),
        Alternative::Less => noncentral_t_cdf(-t_ppf(1.0 - alpha, df), df, ncp),
        Alternative::TwoSided => {
            let critical = t_ppf(1.0 - alpha / 2.0, df);
            1.0 - noncentral_t_cdf(critical, df, ncp) + noncentral_t_cdf(-critical, df, ncp)
        }
    })
}

/// The smallest n per side (pairs, when paired) at which a t test at `alpha` detects a true
/// difference `effect` with probability at least `power`, when the noise has standard
/// deviation `sd`. The answer of "how many replicates do I need?".
pub fn n_per_side(
    effect: f64,
    sd: f64,
    alpha: f64,
    power: f64,
    alternative: Alternative,
    design: Design,
) -> Result<usize, StatsError> {
    check_inputs(effect, sd, alpha)?;
    if !(power > alpha && power < 1.0) {
        return Err(StatsError::InvalidArgument {
            name: "power",
            value: power.to_string(),
            why: "the power lies strictly between alpha and 1, e.g. 0.8",
        });
    }
    let wrong_way = match alternative {
        Alternative::Greater => effect <= 0.0,
        Alternative::Less => effect >= 0.0,
        Alternative::TwoSided => effect == 0.0,
    };
    if wrong_way {
        return Err(StatsError::InvalidArgument {
            name: "effect",
            value: effect.to_string(),
            why: "no sample size detects a difference of 0, or one in the direction the alternative excludes",
        });
    }
    const LIMIT: usize = 1 << 40;
    let too_many = || StatsError::InvalidArgument {
        name: "effect",
        value: effect.to_string(),
        why: "the difference is so small against the noise that more than 2^40 replicates would be needed",
    };
    // A t test needs 2 per side: fewer never reaches the power.
    let reaches = |n: usize| -> Result<bool, StatsError> {
        Ok(n >= 2 && t_test_power(n, effect, sd, alpha, alternative, design)? >= power)
    };
    // The smallest n in (low, high] that reaches the power, given that `high` does.
    let bisect = |mut low: usize, mut high: usize| -> Result<usize, StatsError> {
        while high - low > 1 {
            let middle = low + (high - low) / 2;
            if reaches(middle)? {
                high = middle;
            } else {
                low = middle;
            }
        }
        Ok(high)
    };
    // Start from the normal approximation, n₀ = k · ((z_α + z_β) · sd / effect)² with k = 2 for
    // two samples: the t test needs at least about that many, and rarely more than a few more.
    let z_alpha = if alternative == Alternative::TwoSided { -norm_ppf(alpha / 2.0) } else { -norm_ppf(alpha) };
    let z_beta = -norm_ppf(1.0 - power);
    let k = if design == Design::Independent { 2.0 } else { 1.0 };
    let guess = k * ((z_alpha + z_beta) * sd / effect).powi(2);
    if !(guess < LIMIT as f64) {
        return Err(too_many());
    }
    let start = (guess.floor() as usize).saturating_sub(1).max(2);
    if reaches(start)? {
        // Rare (large effects, where n is tiny): bisect down to the smallest n.
        return bisect(1, start);
    }
    // Step up, doubling the stride, then bisect the last stride.
    let (mut low, mut stride) = (start, 1);
    loop {
        let candidate = low + stride;
        if reaches(candidate)? {
            return bisect(low, candidate);
        }
        low = candidate;
        stride *= 2;
        if low > LIMIT {
            return Err(too_many());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn central_case_is_students_t() {
        for (t, df) in [(-2.0, 3.0), (0.5, 10.0), (1.7, 25.0)] {
            let central = crate::stats::dist::t_cdf(t, df);
            assert!((noncentral_t_cdf(t, df, 0.0) - central).abs() < 1e-12, "{t} {df}");
        }
    }

    #[test]
    fn textbook_sample_sizes() {
        // d = 0.5 at α = 0.05, 80 % power, two-sided: the classic 64 per group.
        let n = n_per_side(0.5, 1.0, 0.05, 0.8, Alternative::TwoSided, Design::Independent).unwrap();
        assert_eq!(n, 64);
        // d = 1: 17 per group.
        assert_eq!(n_per_side(1.0, 1.0, 0.05, 0.8, Alternative::TwoSided, Design::Independent).unwrap(), 17);
        let power = t_test_power(n, 0.5, 1.0, 0.05, Alternative::TwoSided, Design::Independent).unwrap();
        let below = t_test_power(n - 1, 0.5, 1.0, 0.05, Alternative::TwoSided, Design::Independent).unwrap();
        assert!(power >= 0.8 && below < 0.8);
        assert!(n_per_side(-0.5, 1.0, 0.05, 0.8, Alternative::Greater, Design::Paired).is_err());
        assert!(n_per_side(0.5, 0.0, 0.05, 0.8, Alternative::Greater, Design::Paired).is_err());
    }
}
