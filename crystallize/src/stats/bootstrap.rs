//! Bootstrap confidence intervals, percentile and BCa, from a seeded ChaCha generator.
//!
//! The interval arithmetic follows SciPy's `bootstrap` exactly (checked against it on a shared
//! bootstrap distribution, see [`bootstrap_interval_from_distribution`]): quantiles are
//! NumPy's default linear interpolation; BCa's bias correction uses the "mean" percentile of
//! the estimate in the bootstrap distribution, and its acceleration the jackknife of every
//! sample (or of the pairs, when paired).

use rayon::prelude::*;

use super::dist::{norm_cdf, norm_ppf};
use super::permutation::{in_blocks, index};
use super::{check_level, check_sample, Interval, StatsError};

/// How to turn a bootstrap distribution into an interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BootstrapMethod {
    /// The α/2 and 1 − α/2 quantiles of the bootstrap distribution.
    Percentile,
    /// Bias-corrected and accelerated (Efron 1987): quantiles shifted for bias and skew.
    #[default]
    Bca,
}

/// How to bootstrap.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BootstrapOptions {
    /// Confidence level (default 0.95).
    pub level: f64,
    /// Number of bootstrap resamples (default 9 999).
    pub resamples: usize,
    /// Seed of the ChaCha generator.
    pub seed: u64,
    /// Percentile or BCa (default).
    pub method: BootstrapMethod,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        BootstrapOptions { level: 0.95, resamples: 9_999, seed: 0, method: BootstrapMethod::Bca }
    }
}

const TEST: &str = "bootstrap interval";

fn check_samples(samples: &[&[f64]], paired: bool, method: BootstrapMethod) -> Result<(), StatsError> {
    const NAMES: [&str; 4] = ["x", "y", "third sample", "fourth sample"];
    if samples.is_empty() {
        return Err(StatsError::Empty { test: TEST, sample: "samples" });
    }
    for (j, sample) in samples.iter().enumerate() {
        let name = NAMES.get(j).copied().unwrap_or("a later sample");
        check_sample(TEST, name, sample)?;
        if method == BootstrapMethod::Bca && sample.len() < 2 {
            return Err(StatsError::TooFew {
                test: "BCa bootstrap interval",
                sample: name,
                needed: 2,
                got: sample.len(),
                why: "the acceleration is estimated by leaving out one value at a time",
            });
        }
    }
    if paired && samples.iter().any(|s| s.len() != samples[0].len()) {
        let other = samples.iter().find(|s| s.len() != samples[0].len()).map_or(0, |s| s.len());
        return Err(StatsError::LengthMismatch { test: "paired bootstrap", x_len: samples[0].len(), y_len: other });
    }
    Ok(())
}

/// A bootstrap confidence interval of `statistic` over `samples` (one or more). Independent
/// samples are resampled separately; `paired` samples are resampled together, by index. The
/// same `options.seed` gives the same interval on every machine, whatever its number of cores:
/// resamples are drawn in blocks on every core, block k from stream k of ChaCha8 keyed by the
/// seed (see [`super::permutation::BLOCK`]).
pub fn bootstrap_ci(
    samples: &[&[f64]],
    paired: bool,
    statistic: &(dyn Fn(&[&[f64]]) -> f64 + Sync),
    options: &BootstrapOptions,
) -> Result<Interval, StatsError> {
    check_level(options.level)?;
    check_samples(samples, paired, options.method)?;
    if options.resamples < 2 {
        return Err(StatsError::InvalidArgument {
            name: "resamples",
            value: options.resamples.to_string(),
            why: "a bootstrap distribution needs at least 2 resamples (9999 is usual)",
        });
    }
    let blocks = in_blocks(options.seed, options.resamples, |rng, count| {
        let mut buffers: Vec<Vec<f64>> = samples.iter().map(|s| vec![0.0; s.len()]).collect();
        let mut values = Vec::with_capacity(count);
        for _ in 0..count {
            if paired {
                let n = samples[0].len();
                for i in 0..n {
                    let k = index(rng, 0, n);
                    for (buffer, sample) in buffers.iter_mut().zip(samples) {
                        buffer[i] = sample[k];
                    }
                }
            } else {
                for (buffer, sample) in buffers.iter_mut().zip(samples) {
                    for slot in buffer.iter_mut() {
                        *slot = sample[index(rng, 0, sample.len())];
                    }
                }
            }
            let views: Vec<&[f64]> = buffers.iter().map(Vec::as_slice).collect();
            values.push(statistic(&views));
        }
        values
    });
    let distribution = blocks.concat();
    interval(samples, paired, statistic, distribution, options.level, options.method)
}

/// The interval SciPy's `bootstrap` would report for this bootstrap `distribution` of
/// `statistic` over `samples` (its `bootstrap_result=` argument with `n_resamples=0`): the
/// deterministic half of [`bootstrap_ci`], exposed so that it can be checked against SciPy.
pub fn bootstrap_interval_from_distribution(
    samples: &[&[f64]],
    paired: bool,
    statistic: &(dyn Fn(&[&[f64]]) -> f64 + Sync),
    distribution: &[f64],
    level: f64,
    method: BootstrapMethod,
) -> Result<Interval, StatsError> {
    check_level(level)?;
    check_samples(samples, paired, method)?;
    check_sample(TEST, "bootstrap distribution", distribution)?;
    interval(samples, paired, statistic, distribution.to_vec(), level, method)
}

fn interval(
    samples: &[&[f64]],
    paired: bool,
    statistic: &(dyn Fn(&[&[f64]]) -> f64 + Sync),
    mut distribution: Vec<f64>,
    level: f64,
    method: BootstrapMethod,
) -> Result<Interval, StatsError> {
    if let Some(index) = distribution.iter().position(|v| !v.is_finite()) {
        return Err(StatsError::NonFinite { sample: "bootstrap distribution", index, value: distribution[index] });
    }
    let alpha = (1.0 - level) / 2.0;
    let (q_low, q_high) = match method {
        BootstrapMethod::Percentile => (alpha, 1.0 - alpha),
        BootstrapMethod::Bca => bca_levels(samples, paired, statistic, &distribution, alpha)?,
    };
    distribution.sort_by(f64::total_cmp);
    Ok(Interval { low: quantile_sorted(&distribution, q_low), high: quantile_sorted(&distribution, q_high), level })
}

/// BCa's adjusted quantile levels (SciPy `_bca_interval`).
fn bca_levels(
    samples: &[&[f64]],
    paired: bool,
    statistic: &(dyn Fn(&[&[f64]]) -> f64 + Sync),
    distribution: &[f64],
    alpha: f64,
) -> Result<(f64, f64), StatsError> {
    let theta_hat = statistic(samples);
    let below = distribution.iter().filter(|v| **v < theta_hat).count();
    let at_or_below = distribution.iter().filter(|v| **v <= theta_hat).count();
    let z0 = norm_ppf((below + at_or_below) as f64 / (2.0 * distribution.len() as f64));

    // Jackknife: leave out one value of one sample at a time (one pair at a time when paired).
    let jackknife = |leave_out: &(dyn Fn(usize) -> Vec<Vec<f64>> + Sync), n: usize| -> Vec<f64> {
        (0..n)
            .into_par_iter()
            .map(|i| {
                let reduced = leave_out(i);
                let views: Vec<&[f64]> = reduced.iter().map(Vec::as_slice).collect();
                statistic(&views)
            })
            .collect()
    };
    let without = |sample: &[f64], i: usize| -> Vec<f64> {
        sample.iter().enumerate().filter(|(k, _)| *k != i).map(|(_, v)| *v).collect()
    };
    let groups: Vec<Vec<f64>> = if paired {
        vec![jackknife(&|i| samples.iter().map(|s| without(s, i)).collect(), samples[0].len())]
    } else {
        (0..samples.len())
            .map(|j| {
                jackknife(
                    &|i| {
                        samples
                            .iter()
                            .enumerate()
                            .map(|(k, s)| if k == j { without(s, i) } else { s.to_vec() })
                            .collect()
                    },
                    samples[j].len(),
                )
            })
            .collect()
    };
    let (mut num, mut den) = (0.0, 0.0);
    for values in &groups {
        let n = values.len() as f64;
        let dot = values.iter().sum::<f64>() / n;
        let u: Vec<f64> = values.iter().map(|v| (n - 1.0) * (dot - v)).collect();
        num += u.iter().map(|v| v.powi(3)).sum::<f64>() / n.powi(3);
        den += u.iter().map(|v| v * v).sum::<f64>() / n.powi(2);
    }
    let a_hat = num / 6.0 / den.powf(1.5);
    let z_alpha = norm_ppf(alpha);
    let level = |z: f64| {
        let num = z0 + z;
        norm_cdf(z0 + num / (1.0 - a_hat * num))
    };
    let (low, high) = (level(z_alpha), level(-z_alpha));
    if !((0.0..=1.0).contains(&low) && (0.0..=1.0).contains(&high)) {
        return Err(StatsError::ZeroVariance {
            test: "BCa bootstrap interval",
            why: "the bootstrap distribution is degenerate (the data do not vary, or every resample lies on one \
                  side of the estimate), so the bias correction and acceleration are undefined; use the \
                  percentile method"
                .into(),
        });
    }
    Ok((low, high))
}

/// The `q` quantile of `sorted` by linear interpolation between order statistics (NumPy's
/// default, "type 7").
pub(crate) fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let low = h.floor() as usize;
    let high = (low + 1).min(sorted.len() - 1);
    let fraction = h - low as f64;
    let (a, b) = (sorted[low], sorted[high]);
    // NumPy's _lerp, which is exact at both ends.
    if fraction >= 0.5 {
        b - (b - a) * (1.0 - fraction)
    } else {
        a + (b - a) * fraction
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean(s: &[&[f64]]) -> f64 {
        s[0].iter().sum::<f64>() / s[0].len() as f64
    }

    #[test]
    fn quantiles_interpolate_linearly() {
        let sorted = [1.0, 2.0, 4.0, 8.0];
        assert_eq!(quantile_sorted(&sorted, 0.0), 1.0);
        assert_eq!(quantile_sorted(&sorted, 0.5), 3.0);
        assert_eq!(quantile_sorted(&sorted, 1.0), 8.0);
    }

    #[test]
    fn seeded_intervals_reproduce_and_cover_the_mean() {
        let x = [2.1, 3.4, 1.9, 5.0, 4.2, 3.3, 2.8, 3.9];
        let options = BootstrapOptions { resamples: 2000, seed: 3, ..Default::default() };
        let a = bootstrap_ci(&[&x], false, &mean, &options).unwrap();
        assert_eq!(a, bootstrap_ci(&[&x], false, &mean, &options).unwrap());
        let other = bootstrap_ci(&[&x], false, &mean, &BootstrapOptions { seed: 4, ..options }).unwrap();
        assert_ne!(a, other);
        let m = mean(&[&x]);
        assert!(a.low < m && m < a.high, "{a:?}");
    }

    #[test]
    fn degenerate_data_is_an_error() {
        let x = [1.0, 1.0, 1.0];
        let error = bootstrap_ci(&[&x], false, &mean, &BootstrapOptions { resamples: 100, ..Default::default() });
        assert!(matches!(error, Err(StatsError::ZeroVariance { .. })), "{error:?}");
        let percentile = BootstrapOptions { resamples: 100, method: BootstrapMethod::Percentile, ..Default::default() };
        let interval = bootstrap_ci(&[&x], false, &mean, &percentile).unwrap();
        assert_eq!((interval.low, interval.high), (1.0, 1.0));
    }
}
