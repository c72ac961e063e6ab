//! Bootstrap confidence intervals, percentile and BCa, from a seeded ChaCha generator.
//!
//! The interval arithmetic follows SciPy's `bootstrap` exactly (checked against it on a shared
//! bootstrap distribution, see [`bootstrap_interval_from_distribution`]): quantiles are
//! NumPy's default linear interpolation; BCa's bias correction uses the "mean" percentile of
//! the estimate in the bootstrap distribution, and its acceleration the jackknife of every
//! sample (or of the pairs, when paired).

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::dist::{norm_cdf, norm_ppf};
use super::permutation::in_blocks;
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
/// seed (see `super::permutation::BLOCK`).
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
        let mut words = Words::new(rng);
        let mut buffers: Vec<Vec<f64>> = samples.iter().map(|s| vec![0.0; s.len()]).collect();
        let mut indices = vec![0u32; samples.iter().map(|s| s.len()).max().unwrap_or(0)];
        let mut values = Vec::with_capacity(count);
        for _ in 0..count {
            if paired {
                let indices = &mut indices[..samples[0].len()];
                words.indices(samples[0].len() as u32, indices);
                for (buffer, sample) in buffers.iter_mut().zip(samples) {
                    gather(sample, indices, buffer);
                }
            } else {
                for (buffer, sample) in buffers.iter_mut().zip(samples) {
                    let indices = &mut indices[..sample.len()];
                    words.indices(sample.len() as u32, indices);
                    gather(sample, indices, buffer);
                }
            }
            values.push(with_views(&buffers, statistic));
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
    // Two order statistics each need only a selection, O(B), not a sort of the whole distribution.
    let low = quantile_unsorted(&mut distribution, q_low);
    let high = quantile_unsorted(&mut distribution, q_high);
    Ok(Interval { low, high, level })
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
    let groups: Vec<Vec<f64>> = if paired {
        vec![jackknife(samples, &(0..samples.len()).collect::<Vec<_>>(), statistic)]
    } else {
        (0..samples.len()).map(|j| jackknife(samples, &[j], statistic)).collect()
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

/// Leave-one-out values of `statistic`: the i-th leaves out value i of every sample in
/// `reduced` (one sample, or all of them when paired), the other samples are passed whole.
///
/// Each reduced sample is one buffer per chunk of leave-outs, in the sample's order, so that
/// the statistic sees exactly what it would see on a fresh copy (sums in the same order): the
/// buffer without value i holds value i + 1 at position i, and writing value i there turns it
/// into the sample without value i + 1. One write per leave-out instead of a copy of n values.
fn jackknife(samples: &[&[f64]], reduced: &[usize], statistic: &(dyn Fn(&[&[f64]]) -> f64 + Sync)) -> Vec<f64> {
    // Chunks of leave-outs spread the work over the cores, and each pays for one copy only.
    const CHUNK: usize = 64;
    let n = samples[reduced[0]].len();
    let chunks: Vec<Vec<f64>> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let (first, end) = (c * CHUNK, ((c + 1) * CHUNK).min(n));
            let mut buffers: Vec<Vec<f64>> = samples.iter().map(|s| s.to_vec()).collect();
            for &j in reduced {
                buffers[j].remove(first);
            }
            let mut values = Vec::with_capacity(end - first);
            for i in first..end {
                values.push(with_views(&buffers, statistic));
                if i + 1 < n {
                    for &j in reduced {
                        buffers[j][i] = samples[j][i];
                    }
                }
            }
            values
        })
        .collect();
    chunks.concat()
}

/// Calls `statistic` on `buffers` without allocating a vector of views per call when there are
/// at most four samples (every common case), since it is called once per resample.
fn with_views(buffers: &[Vec<f64>], statistic: &(dyn Fn(&[&[f64]]) -> f64 + Sync)) -> f64 {
    const ON_STACK: usize = 4;
    if buffers.len() <= ON_STACK {
        let mut views: [&[f64]; ON_STACK] = [&[]; ON_STACK];
        for (view, buffer) in views.iter_mut().zip(buffers) {
            *view = buffer;
        }
        statistic(&views[..buffers.len()])
    } else {
        let views: Vec<&[f64]> = buffers.iter().map(Vec::as_slice).collect();
        statistic(&views)
    }
}

/// `buffer[i] = sample[indices[i]]`: the resample the indices stand for.
#[inline]
fn gather(sample: &[f64], indices: &[u32], buffer: &mut [f64]) {
    for (slot, &k) in buffer.iter_mut().zip(indices) {
        *slot = sample[k as usize];
    }
}

/// Words taken from the generator at a time: one refill of ChaCha8's four-block buffer.
const WORDS: usize = 64;

/// The generator's 32-bit words, taken in bulk: one call fills a buffer, instead of one call per
/// resampled value (the per-call overhead was most of the time spent drawing).
struct Words<'r> {
    rng: &'r mut ChaCha8Rng,
    buffer: [u32; WORDS],
    next: usize,
}

impl<'r> Words<'r> {
    fn new(rng: &'r mut ChaCha8Rng) -> Self {
        Words { rng, buffer: [0; WORDS], next: WORDS }
    }

    fn refill(&mut self) {
        // `fill` on u32s consumes the generator exactly as successive `next_u32` calls do.
        self.rng.fill(&mut self.buffer[..]);
        self.next = 0;
    }

    fn word(&mut self) -> u32 {
        if self.next == WORDS {
            self.refill();
        }
        let word = self.buffer[self.next];
        self.next += 1;
        word
    }

    /// A uniform index in `0..n` (n ≤ 2³²): the value `rng.random_range(0..n as u32)` gives from
    /// the same words (rand's single-sample Canon method), so the resamples — and the interval
    /// for a seed — are those drawn with [`super::permutation::index`].
    fn index(&mut self, n: u32) -> u32 {
        let product = u64::from(self.word()) * u64::from(n);
        let (mut result, low) = ((product >> 32) as u32, product as u32);
        // The low half is close enough to overflowing that the next word can carry into it.
        if low > n.wrapping_neg() {
            let carry = ((u64::from(self.word()) * u64::from(n)) >> 32) as u32;
            result += u32::from(low.checked_add(carry).is_none());
        }
        result
    }

    /// Fills `indices` with uniform indices in `0..n`, each as [`Words::index`] draws it. A run
    /// of words none of which needs the rare second word (chance about n/2³² each) is turned
    /// into indices in one branch-free pass, which the compiler vectorizes.
    fn indices(&mut self, n: u32, indices: &mut [u32]) {
        let limit = n.wrapping_neg();
        let mut filled = 0;
        while filled < indices.len() {
            if self.next == WORDS {
                self.refill();
            }
            let take = (WORDS - self.next).min(indices.len() - filled);
            let words = &self.buffer[self.next..self.next + take];
            let out = &mut indices[filled..filled + take];
            let mut carry_possible = false;
            for (slot, &word) in out.iter_mut().zip(words) {
                let product = u64::from(word) * u64::from(n);
                *slot = (product >> 32) as u32;
                carry_possible |= product as u32 > limit;
            }
            if carry_possible {
                // Redo this stretch one index at a time; the fast pass resumes after it.
                indices[filled] = self.index(n);
                filled += 1;
            } else {
                self.next += take;
                filled += take;
            }
        }
    }
}

/// The `q` quantile of `values` as [`quantile_sorted`] computes it on them sorted, reordering
/// `values` by selection instead of sorting them.
fn quantile_unsorted(values: &mut [f64], q: f64) -> f64 {
    let h = (values.len() - 1) as f64 * q;
    let low = h.floor() as usize;
    let (_, a, above) = values.select_nth_unstable_by(low, f64::total_cmp);
    let a = *a;
    let b = above.iter().copied().min_by(f64::total_cmp).unwrap_or(a);
    lerp(a, b, h - low as f64)
}

/// The `q` quantile of `sorted` by linear interpolation between order statistics (NumPy's
/// default, "type 7"); the reference that [`quantile_unsorted`] is tested against.
#[cfg(test)]
fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let low = h.floor() as usize;
    let high = (low + 1).min(sorted.len() - 1);
    lerp(sorted[low], sorted[high], h - low as f64)
}

/// NumPy's `_lerp`, which is exact at both ends.
fn lerp(a: f64, b: f64, fraction: f64) -> f64 {
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

    #[test]
    fn selection_gives_the_sorted_quantiles() {
        let values: Vec<f64> =
            (0..1001).map(|i| ((i * 7919) % 1009) as f64 / 7.0 - 40.0).chain([3.0, 3.0, -0.0, 0.0]).collect();
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        for q in [0.0, 1e-9, 0.025, 0.1, 0.5, 0.77, 0.975, 1.0 - 1e-12, 1.0] {
            let mut scratch = values.clone();
            assert_eq!(quantile_unsorted(&mut scratch, q).to_bits(), quantile_sorted(&sorted, q).to_bits(), "{q}");
        }
        assert_eq!(quantile_unsorted(&mut [4.0], 0.3), 4.0);
    }

    #[test]
    fn bulk_indices_are_rands_single_draws() {
        use rand::SeedableRng;
        // Near 2³² the second word is needed often, so the slow path is exercised too.
        for n in [1u32, 2, 7, 1000, 1 << 31, u32::MAX - 12_345, u32::MAX] {
            let mut expected = ChaCha8Rng::seed_from_u64(11);
            let mut rng = ChaCha8Rng::seed_from_u64(11);
            let mut words = Words::new(&mut rng);
            let mut bulk = vec![0u32; 777];
            for _ in 0..3 {
                words.indices(n, &mut bulk);
                for (i, k) in bulk.iter().enumerate() {
                    assert_eq!(*k, expected.random_range(0..n), "n = {n}, i = {i}");
                }
                assert_eq!(words.index(n), expected.random_range(0..n), "n = {n}");
            }
        }
    }

    #[test]
    fn jackknife_sees_the_copies_it_replaces() {
        // Order-sensitive, so any change in the reduced samples' order would show.
        let statistic = |s: &[&[f64]]| {
            s.iter()
                .enumerate()
                .map(|(j, v)| v.iter().enumerate().map(|(i, x)| x * (i + j + 1) as f64).sum::<f64>())
                .sum::<f64>()
        };
        let x: Vec<f64> = (0..150).map(|i| (i as f64 * 0.37).sin()).collect();
        let y: Vec<f64> = (0..150).map(|i| (i as f64 * 1.91).cos()).collect();
        let samples: [&[f64]; 2] = [&x, &y];
        let without = |s: &[f64], i: usize| -> Vec<f64> {
            s.iter().enumerate().filter(|(k, _)| *k != i).map(|(_, v)| *v).collect()
        };
        for reduced in [vec![0], vec![1], vec![0, 1]] {
            let expected: Vec<f64> = (0..x.len())
                .map(|i| {
                    let copies: Vec<Vec<f64>> = samples
                        .iter()
                        .enumerate()
                        .map(|(j, s)| if reduced.contains(&j) { without(s, i) } else { s.to_vec() })
                        .collect();
                    statistic(&copies.iter().map(Vec::as_slice).collect::<Vec<_>>())
                })
                .collect();
            assert_eq!(jackknife(&samples, &reduced, &statistic), expected, "{reduced:?}");
        }
    }
}
