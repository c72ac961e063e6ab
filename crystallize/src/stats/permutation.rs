//! Permutation tests of a difference in means: two independent samples (labels reshuffled) and
//! paired samples (signs of the differences flipped).
//!
//! * **Exact** when the number of distinct arrangements — C(n_x + n_y, n_x) for independent
//!   samples, 2ⁿ for paired ones — is at most [`PermutationOptions::max_exact`]: every
//!   arrangement is enumerated, the observed one included, and p is a count over that total.
//! * **Monte Carlo** otherwise: `resamples` random arrangements from ChaCha8 keyed by
//!   [`PermutationOptions::seed`], and p = (b + 1) / (B + 1), where b counts resamples at
//!   least as extreme as the observed statistic. The +1 counts the observed arrangement, which
//!   keeps p > 0 and the test valid (never "p = 0.0000"). Resamples are drawn in blocks of
//!   [`BLOCK`] on every core, block k from stream k of the generator, so the p-value depends on
//!   the seed only, not on the number of cores.
//! * Two-sided p-values are `min(1, 2 · min(p_greater, p_less))`, SciPy's convention.
//! * Floating-point ties: arrangements are compared on the sum of a group, which reaches the
//!   same real value through different additions; a null value within 10⁻⁹ · Σ|values| of the
//!   observed one counts as equal, so exact ties are never lost to rounding. For two independent
//!   samples the pooled values are first centred on their mean and scaled by their largest
//!   deviation (which changes every group sum by the same affine map, so no comparison
//!   changes), and the tolerance is relative to that spread: values near 10⁹ or 10¹² (durations
//!   in nanoseconds, token counts, timestamps) would otherwise lose their differences to
//!   cancellation, and a tolerance relative to their magnitude would tie every arrangement
//!   (p = 1). A sign-flip test cannot be shifted; its differences are only scaled, and its
//!   tolerance is relative to their magnitudes, which is their spread about the null.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

use super::{check_param, check_sample, mean, Alternative, StatsError};

/// How to run a permutation test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PermutationOptions {
    /// Enumerate every arrangement when there are at most this many (default 200 000).
    pub max_exact: u64,
    /// Random arrangements for the Monte Carlo test (default 9 999).
    pub resamples: usize,
    /// Seed of the ChaCha generator for the Monte Carlo test.
    pub seed: u64,
}

impl Default for PermutationOptions {
    fn default() -> Self {
        PermutationOptions { max_exact: 200_000, resamples: 9_999, seed: 0 }
    }
}

/// The result of a permutation test.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PermutationTest {
    /// The observed statistic: `mean(x) − mean(y) − mu` (or `mean(x − y) − mu` when paired).
    pub statistic: f64,
    /// The p-value under the alternative.
    pub p: f64,
    /// Whether every arrangement was enumerated.
    pub exact: bool,
    /// Arrangements enumerated (exact) or random resamples drawn (Monte Carlo).
    pub arrangements: u64,
}

/// The number of arrangements of two independent samples of sizes `n_x`, `n_y`:
/// C(n_x + n_y, n_x), saturating at `u64::MAX`.
pub fn independent_arrangements(n_x: usize, n_y: usize) -> u64 {
    let (k, n) = (n_x.min(n_y) as u128, (n_x + n_y) as u128);
    let mut c: u128 = 1;
    for i in 0..k {
        c = c * (n - i) / (i + 1);
        if c > u64::MAX as u128 {
            return u64::MAX;
        }
    }
    c as u64
}

/// The number of sign patterns of `n` paired differences: 2ⁿ, saturating at `u64::MAX`.
pub fn paired_arrangements(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        1u64 << n
    }
}

/// The smallest p-value a permutation test can give with `arrangements` equally likely
/// arrangements (or Monte Carlo resamples, plus the observed one), without ties:
/// one arrangement out of all, doubled for a two-sided test.
pub fn smallest_p(arrangements: u64, exact: bool, alternative: Alternative) -> f64 {
    let total = if exact { arrangements as f64 } else { arrangements as f64 + 1.0 };
    let one = 1.0 / total;
    if alternative == Alternative::TwoSided {
        (2.0 * one).min(1.0)
    } else {
        one
    }
}

fn check_options(options: &PermutationOptions) -> Result<(), StatsError> {
    if options.resamples == 0 {
        return Err(StatsError::InvalidArgument {
            name: "resamples",
            value: "0".into(),
            why: "a Monte Carlo permutation test needs at least one resample (9999 is usual)",
        });
    }
    Ok(())
}

/// Resamples per block of a Monte Carlo loop (see the module documentation).
pub const BLOCK: usize = 256;

/// Runs `resamples` Monte Carlo draws in blocks of [`BLOCK`] on every core: `block(rng, count)`
/// draws `count` of them from `rng`, stream k of ChaCha8 keyed by `seed` for block k. The result
/// depends on the seed only, not on how many cores share the blocks.
pub(crate) fn in_blocks<T: Send>(
    seed: u64,
    resamples: usize,
    block: impl Fn(&mut ChaCha8Rng, usize) -> T + Sync,
) -> Vec<T> {
    (0..resamples.div_ceil(BLOCK))
        .into_par_iter()
        .map(|k| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(k as u64);
            block(&mut rng, BLOCK.min(resamples - k * BLOCK))
        })
        .collect()
}

/// A uniform index in `low..high`, drawing 32 bits when they are enough (half the generator's
/// output per draw of 64).
pub(crate) fn index(rng: &mut ChaCha8Rng, low: usize, high: usize) -> usize {
    if high <= u32::MAX as usize {
        rng.random_range(low as u32..high as u32) as usize
    } else {
        rng.random_range(low..high)
    }
}

/// Counts of null values at least / at most as large as `observed`, and their total.
#[derive(Default)]
struct Tally {
    greater: u64,
    less: u64,
    total: u64,
}

impl Tally {
    fn add(&mut self, value: f64, observed: f64, tolerance: f64) {
        self.greater += u64::from(value >= observed - tolerance);
        self.less += u64::from(value <= observed + tolerance);
        self.total += 1;
    }

    fn merge(mut self, other: Tally) -> Tally {
        self.greater += other.greater;
        self.less += other.less;
        self.total += other.total;
        self
    }

    fn p(&self, exact: bool, alternative: Alternative) -> f64 {
        let (plus, total) = if exact { (0.0, self.total as f64) } else { (1.0, self.total as f64 + 1.0) };
        let greater = (self.greater as f64 + plus) / total;
        let less = (self.less as f64 + plus) / total;
        match alternative {
            Alternative::Greater => greater,
            Alternative::Less => less,
            Alternative::TwoSided => (2.0 * greater.min(less)).min(1.0),
        }
    }
}

/// Two-sample permutation test of `mean(x) − mean(y) = mu`: under the null, `x − mu` and `y`
/// are exchangeable, so every split of the pooled values into groups of n_x and n_y is equally
/// likely. For 0/1 data this is Fisher's exact test (conditional on the total successes).
pub fn permutation_test(
    x: &[f64],
    y: &[f64],
    mu: f64,
    alternative: Alternative,
    options: &PermutationOptions,
) -> Result<PermutationTest, StatsError> {
    const TEST: &str = "permutation test";
    check_sample(TEST, "x", x)?;
    check_sample(TEST, "y", y)?;
    check_param("mu", mu)?;
    check_options(options)?;
    let shifted: Vec<f64> = x.iter().map(|v| v - mu).chain(y.iter().copied()).collect();
    let n_x = x.len();
    let statistic = mean(&shifted[..n_x]) - mean(&shifted[n_x..]);
    // mean(group) − mean(rest) increases with the group's sum, so compare sums — of the pooled
    // values centred and scaled (see the module documentation).
    let pooled = centre_and_scale(&shifted);
    let observed: f64 = pooled[..n_x].iter().sum();
    let tolerance = 1e-9 * pooled.iter().map(|v| v.abs()).sum::<f64>();
    let arrangements = independent_arrangements(n_x, y.len());
    let mut tally = Tally::default();
    let exact = arrangements <= options.max_exact;
    if exact {
        enumerate_subsets(&pooled, n_x, 0, 0.0, &mut |sum| tally.add(sum, observed, tolerance));
    } else {
        let n = pooled.len();
        let blocks = in_blocks(options.seed, options.resamples, |rng, count| {
            let mut values = pooled.clone();
            let mut tally = Tally::default();
            for _ in 0..count {
                // A partial Fisher–Yates shuffle draws a uniformly random group of n_x.
                let mut sum = 0.0;
                for i in 0..n_x {
                    let j = index(rng, i, n);
                    values.swap(i, j);
                    sum += values[i];
                }
                tally.add(sum, observed, tolerance);
            }
            tally
        });
        tally = blocks.into_iter().fold(tally, Tally::merge);
    }
    let p = tally.p(exact, alternative);
    Ok(PermutationTest { statistic, p, exact, arrangements: tally.total })
}

/// `values` minus their mean, divided by the largest remaining |value| (unless that is 0).
fn centre_and_scale(values: &[f64]) -> Vec<f64> {
    let centre = mean(values);
    let centred: Vec<f64> = values.iter().map(|v| v - centre).collect();
    scaled(centred)
}

/// `values` divided by their largest |value| (unless that is 0), so that sums neither overflow
/// nor fall into subnormals.
fn scaled(mut values: Vec<f64>) -> Vec<f64> {
    let spread = values.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    if spread > 0.0 {
        values.iter_mut().for_each(|v| *v /= spread);
    }
    values
}

/// Calls `visit` with the sum of every subset of `values[start..]` of size `k`, plus `sum`.
fn enumerate_subsets(values: &[f64], k: usize, start: usize, sum: f64, visit: &mut impl FnMut(f64)) {
    if k == 0 {
        visit(sum);
        return;
    }
    for i in start..=values.len() - k {
        enumerate_subsets(values, k - 1, i + 1, sum + values[i], visit);
    }
}

/// Paired permutation test of `mean(x − y) = mu`, pairing `x[i]` with `y[i]`: under the null
/// each difference `x[i] − y[i] − mu` is as likely positive as negative, so every pattern of
/// signs is equally likely. This is [`sign_flip_test`] on the differences; for 0/1 data it is
/// the exact McNemar test.
pub fn paired_permutation_test(
    x: &[f64],
    y: &[f64],
    mu: f64,
    alternative: Alternative,
    options: &PermutationOptions,
) -> Result<PermutationTest, StatsError> {
    const TEST: &str = "paired permutation test";
    check_sample(TEST, "x", x)?;
    check_sample(TEST, "y", y)?;
    if x.len() != y.len() {
        return Err(StatsError::LengthMismatch { test: TEST, x_len: x.len(), y_len: y.len() });
    }
    let d: Vec<f64> = x.iter().zip(y).map(|(a, b)| a - b).collect();
    sign_flip_test(&d, mu, alternative, options)
}

/// Sign-flip test of `mean(d) = mu` for differences `d` that are symmetric about `mu` under
/// the null.
pub fn sign_flip_test(
    d: &[f64],
    mu: f64,
    alternative: Alternative,
    options: &PermutationOptions,
) -> Result<PermutationTest, StatsError> {
    const TEST: &str = "sign-flip test";
    check_sample(TEST, "d", d)?;
    check_param("mu", mu)?;
    check_options(options)?;
    let shifted: Vec<f64> = d.iter().map(|v| v - mu).collect();
    let statistic = mean(&shifted);
    let centred = scaled(shifted);
    let observed: f64 = centred.iter().sum();
    let tolerance = 1e-9 * centred.iter().map(|v| v.abs()).sum::<f64>();
    let arrangements = paired_arrangements(centred.len());
    let exact = arrangements <= options.max_exact;
    let mut tally = Tally::default();
    if exact {
        // Gray code: consecutive sign patterns differ in one sign.
        let mut sum = observed;
        let mut signs = vec![1.0f64; centred.len()];
        for k in 0..arrangements {
            if k > 0 {
                let bit = k.trailing_zeros() as usize;
                sum -= 2.0 * signs[bit] * centred[bit];
                signs[bit] = -signs[bit];
            }
            tally.add(sum, observed, tolerance);
        }
    } else {
        let blocks = in_blocks(options.seed, options.resamples, |rng, count| {
            let mut tally = Tally::default();
            for _ in 0..count {
                let mut sum = 0.0;
                let mut bits = 0u64;
                for (i, v) in centred.iter().enumerate() {
                    if i % 64 == 0 {
                        bits = rng.random();
                    }
                    sum += if bits & 1 == 1 { *v } else { -*v };
                    bits >>= 1;
                }
                tally.add(sum, observed, tolerance);
            }
            tally
        });
        tally = blocks.into_iter().fold(tally, Tally::merge);
    }
    let p = tally.p(exact, alternative);
    Ok(PermutationTest { statistic, p, exact, arrangements: tally.total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_tests_count_arrangements() {
        // Paired, 3 positive differences: only the observed pattern reaches the observed sum.
        let r = sign_flip_test(&[1.0, 2.0, 3.0], 0.0, Alternative::Greater, &PermutationOptions::default()).unwrap();
        assert_eq!((r.p, r.exact, r.arrangements), (1.0 / 8.0, true, 8));
        assert_eq!(r.p, smallest_p(8, true, Alternative::Greater));
        // Independent, x = {3, 4} above y = {1, 2}: 1 of C(4, 2) = 6 splits.
        let r = permutation_test(&[3.0, 4.0], &[1.0, 2.0], 0.0, Alternative::Greater, &PermutationOptions::default())
            .unwrap();
        assert_eq!((r.p, r.statistic, r.arrangements), (1.0 / 6.0, 2.0, 6));
        let two = permutation_test(&[3.0, 4.0], &[1.0, 2.0], 0.0, Alternative::TwoSided, &Default::default()).unwrap();
        assert_eq!(two.p, 2.0 / 6.0);
    }

    #[test]
    fn float_ties_count_as_ties() {
        // 0.1 + 0.2 != 0.3 in floating point, but these arrangements tie in exact arithmetic:
        // x = {0.1, 0.2} and the split {0.3, 0.0} have the same sum.
        let r = permutation_test(&[0.1, 0.2], &[0.3, 0.0], 0.0, Alternative::Greater, &Default::default()).unwrap();
        assert_eq!(r.p, 4.0 / 6.0); // sums: .3,.4,.1,.5,.2,.3 → 4 of 6 are ≥ .3
    }

    #[test]
    fn monte_carlo_is_seeded_and_never_zero() {
        let x: Vec<f64> = (0..30).map(|i| i as f64 + 100.0).collect();
        let y: Vec<f64> = (0..30).map(|i| i as f64).collect();
        let options = PermutationOptions { max_exact: 1000, resamples: 999, seed: 7 };
        let a = permutation_test(&x, &y, 0.0, Alternative::Greater, &options).unwrap();
        let b = permutation_test(&x, &y, 0.0, Alternative::Greater, &options).unwrap();
        assert_eq!(a, b);
        assert!(!a.exact);
        assert_eq!(a.p, 1.0 / 1000.0);
        let d: Vec<f64> = (1..=20).map(f64::from).collect();
        let s = sign_flip_test(&d, 0.0, Alternative::Greater, &options).unwrap();
        assert_eq!((s.p, s.exact, s.arrangements), (1.0 / 1000.0, false, 999));
    }

    #[test]
    fn large_offsets_keep_their_differences() {
        // Durations near 10^12 ns: the same samples shifted by 10^12 give the same p-value,
        // not p = 1 from every arrangement looking tied.
        let x = [3.1, 4.7, 5.2, 6.0, 4.4, 5.9];
        let y = [1.0, 2.2, 0.4, 1.9, 2.8, 1.5];
        let options = PermutationOptions::default();
        let plain = permutation_test(&x, &y, 0.0, Alternative::TwoSided, &options).unwrap();
        for offset in [1e9, 1e12] {
            let xo: Vec<f64> = x.iter().map(|v| v + offset).collect();
            let yo: Vec<f64> = y.iter().map(|v| v + offset).collect();
            let shifted = permutation_test(&xo, &yo, 0.0, Alternative::TwoSided, &options).unwrap();
            assert_eq!(shifted.p, plain.p, "offset {offset}");
            assert!(shifted.p < 0.01);
        }
        // Tiny scales keep their ties and orderings too.
        let xt: Vec<f64> = x.iter().map(|v| v * 1e-200).collect();
        let yt: Vec<f64> = y.iter().map(|v| v * 1e-200).collect();
        assert_eq!(permutation_test(&xt, &yt, 0.0, Alternative::TwoSided, &options).unwrap().p, plain.p);
    }

    #[test]
    fn counts_saturate() {
        assert_eq!(independent_arrangements(10, 10), 184_756);
        assert_eq!(independent_arrangements(200, 200), u64::MAX);
        assert_eq!(paired_arrangements(70), u64::MAX);
    }
}
