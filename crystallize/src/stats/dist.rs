//! Distribution functions on top of `statrs`, with quantiles polished by Newton steps so that
//! they agree with SciPy's to ~1e-15.

use statrs::distribution::{Continuous, ContinuousCDF, Normal, StudentsT};
use statrs::function::gamma::{gamma_lr, gamma_ur};

fn student(df: f64) -> StudentsT {
    StudentsT::new(0.0, 1.0, df).expect("degrees of freedom are checked to be positive by the callers")
}

fn standard_normal() -> Normal {
    Normal::new(0.0, 1.0).expect("the standard normal is valid")
}

/// P(T > t) for Student's t with `df` degrees of freedom (statrs; ~1e-14 relative for the df of
/// experiments, drifting to ~1e-10 as df passes 10⁵).
pub(crate) fn t_sf(t: f64, df: f64) -> f64 {
    student(df).sf(t)
}

/// P(T ≤ t).
pub(crate) fn t_cdf(t: f64, df: f64) -> f64 {
    student(df).sf(-t)
}

/// The `q` quantile of Student's t.
pub(crate) fn t_ppf(q: f64, df: f64) -> f64 {
    if q == 0.5 {
        return 0.0;
    }
    if q < 0.5 {
        return -t_ppf(1.0 - q, df);
    }
    if df > 1e4 {
        // Cornish–Fisher expansion around the normal quantile (Abramowitz & Stegun 26.7.5):
        // its next term is O(df⁻⁵), below 1e-17 here; statrs' inverse is slow for huge df.
        let z = norm_ppf(q);
        let (z2, v) = (z * z, df);
        let g1 = (z2 + 1.0) * z / 4.0;
        let g2 = ((5.0 * z2 + 16.0) * z2 + 3.0) * z / 96.0;
        let g3 = (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) * z / 384.0;
        let g4 = ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) * z / 92160.0;
        return z + g1 / v + g2 / (v * v) + g3 / (v * v * v) + g4 / (v * v * v * v);
    }
    // Upper tail: solve sf(x) = 1 − q, which keeps precision for q near 1.
    let d = student(df);
    let target = 1.0 - q;
    let mut x = d.inverse_cdf(q);
    for _ in 0..50 {
        let density = d.pdf(x);
        if !(density > 0.0) || !x.is_finite() {
            break;
        }
        let step = (d.sf(x) - target) / density;
        x += step;
        if step.abs() <= 1e-16 * x.abs() {
            break;
        }
    }
    x
}

/// P(Z > z) for the standard normal, through the regularised incomplete gamma function
/// (erfc(x) = Q(½, x²)), which is accurate to ~1e-15 where `statrs`' erfc is to ~1e-10.
pub(crate) fn norm_sf(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    if z == 0.0 {
        return 0.5;
    }
    if z.is_infinite() {
        return if z > 0.0 { 0.0 } else { 1.0 };
    }
    let half_square = z * z / 2.0;
    if z > 0.0 {
        0.5 * gamma_ur(0.5, half_square)
    } else {
        0.5 + 0.5 * gamma_lr(0.5, half_square)
    }
}

/// P(Z ≤ z).
pub(crate) fn norm_cdf(z: f64) -> f64 {
    norm_sf(-z)
}

/// The `q` quantile of the standard normal (`±inf` at 0 and 1).
pub(crate) fn norm_ppf(q: f64) -> f64 {
    if q <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if q >= 1.0 {
        return f64::INFINITY;
    }
    if q == 0.5 {
        return 0.0;
    }
    if q > 0.5 {
        return -norm_ppf(1.0 - q);
    }
    let d = standard_normal();
    let mut x = d.inverse_cdf(q);
    for _ in 0..3 {
        let density = d.pdf(x);
        if !(density > 0.0) || !x.is_finite() {
            break;
        }
        let step = (norm_cdf(x) - q) / density;
        x -= step;
        if step.abs() <= 1e-16 * x.abs() {
            break;
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_invert_the_cdf() {
        for df in [1.0, 2.5, 9.0, 40.0, 1e4, 2e4] {
            for q in [1e-8, 0.025, 0.3, 0.5, 0.9, 0.975, 1.0 - 1e-9] {
                let x = t_ppf(q, df);
                let back = if q > 0.5 { 1.0 - t_sf(x, df) } else { t_cdf(x, df) };
                // statrs' t CDF itself drifts to ~1e-11 relative for df in the thousands.
                assert!((back - q).abs() <= 1e-10 * q.max(1e-3), "df {df} q {q}: {back}");
            }
        }
        assert!((norm_ppf(0.975) - 1.959963984540054).abs() < 1e-14);
        // SciPy: t.ppf(0.025, 2e4)
        assert!((t_ppf(0.025, 2e4) + 1.9600826051581353).abs() < 1e-14);
        assert!((norm_cdf(norm_ppf(1e-10)) - 1e-10).abs() < 1e-22);
        assert!((norm_sf(1.0) - 0.15865525393145707).abs() < 1e-16);
        assert!((norm_cdf(-10.0) / 7.61985302416047e-24 - 1.0).abs() < 1e-13);
        assert_eq!((norm_sf(0.0), norm_sf(f64::INFINITY), norm_cdf(f64::INFINITY)), (0.5, 0.0, 1.0));
    }
}
