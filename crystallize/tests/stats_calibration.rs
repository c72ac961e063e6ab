//! Calibration evidence (issue part 7): seeded simulations showing that the default tests keep
//! their false-positive rate at alpha under the null, and that the reported 95 % intervals cover
//! the true difference.
//!
//! Why these bands: with N = 4000 simulations and a true rate of 5 %, the observed rate has
//! standard deviation √(0.05 · 0.95 / 4000) = 0.34 %, so [4 %, 6 %] is ±2.9 standard deviations:
//! a correctly calibrated test lands outside with probability ≈ 0.4 %, while a test whose true
//! rate is 6.5 % (or 3.5 %) lands inside with probability < 1 %. Likewise a true coverage of 95 %
//! stays above 94 % (2.9 standard deviations below) except with probability ≈ 0.2 %. The seed
//! is fixed, so the outcome is deterministic; the numbers above say the seed was not cherry-
//! picked to pass a miscalibrated test. The lower bound on the false-positive rate matters too:
//! a test that ignored the pairing created by shared seeds would be far too conservative here
//! (the shared noise dominates), and fall below 4 %.

use crystallize::hypothesis::{evaluate, EvalOptions, Hypothesis, TestKind, Verdict};
use crystallize::results::{UnitResult, UnitStatus};
use crystallize::stats::{self, Alternative};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SIMULATIONS: usize = 4000;
/// The unpaired permutation test at n = 6 is cheap, so it gets twice the simulations (its
/// [4 %, 6 %] band is then ±4 standard deviations).
const UNPAIRED_SIMULATIONS: usize = 8000;

fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box–Muller; 1 − u keeps the logarithm finite.
    let (u, v): (f64, f64) = (rng.random(), rng.random());
    (-2.0 * (1.0 - u).ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

fn unit(condition: &str, replicate: u64, seed: u64, value: f64) -> UnitResult {
    UnitResult {
        experiment: "sim".into(),
        condition: condition.into(),
        replicate,
        seed,
        status: UnitStatus::Ok,
        error: None,
        metrics: [("score".to_string(), value)].into_iter().collect(),
        records: Vec::new(),
        duration_ms: 0.0,
        attempts: Vec::new(),
        cache: Default::default(),
    }
}

/// One simulated run of n replicates per condition. With shared seeds both conditions see the
/// same per-replicate noise (sd 1) plus their own noise (sd 0.5), as common random numbers do;
/// without, every unit's noise is independent (sd √1.25, the same marginal spread).
fn simulate(rng: &mut ChaCha8Rng, n: u64, difference: f64, shared: bool) -> Vec<UnitResult> {
    let mut units = Vec::with_capacity(2 * n as usize);
    for k in 0..n {
        let common = standard_normal(rng);
        let (seed_a, seed_b) = if shared { (k, k) } else { (2 * k, 2 * k + 1) };
        let noise = |rng: &mut ChaCha8Rng| {
            if shared {
                common + 0.5 * standard_normal(rng)
            } else {
                1.25f64.sqrt() * standard_normal(rng)
            }
        };
        units.push(unit("treated", k, seed_a, difference + noise(rng)));
        units.push(unit("baseline", k, seed_b, noise(rng)));
    }
    units
}

fn rate(hits: usize) -> f64 {
    hits as f64 / SIMULATIONS as f64
}

fn hypothesis() -> Vec<Hypothesis> {
    vec!["treated.score != baseline.score".parse().unwrap()]
}

#[test]
fn default_paired_test_holds_alpha_and_its_interval_covers() {
    let mut rng = ChaCha8Rng::seed_from_u64(0xC0FFEE);
    let options = EvalOptions::default();
    let (mut false_positives, mut covered_null) = (0, 0);
    for _ in 0..SIMULATIONS {
        let units = simulate(&mut rng, 10, 0.0, true);
        let r = &evaluate(&hypothesis(), &units, true, &options).unwrap()[0];
        assert_eq!((r.test, r.paired), (TestKind::PairedPermutation, true));
        let significant = r.p_adjusted.unwrap() <= 0.05;
        assert_eq!(significant, r.verdict == Verdict::Supported, "{}", r.explanation);
        false_positives += usize::from(significant);
        covered_null += usize::from(r.ci.unwrap().contains(0.0));
    }
    let fpr = rate(false_positives);
    println!("paired default: false-positive rate {fpr}, null coverage {}", rate(covered_null));
    assert!((0.04..=0.06).contains(&fpr), "false-positive rate {fpr} outside [4%, 6%]");
    assert!(rate(covered_null) >= 0.94, "coverage under the null {}", rate(covered_null));

    // With a true difference of 0.3, the 95 % interval must cover 0.3.
    let mut covered = 0;
    for _ in 0..SIMULATIONS {
        let units = simulate(&mut rng, 10, 0.3, true);
        let r = &evaluate(&hypothesis(), &units, true, &options).unwrap()[0];
        covered += usize::from(r.ci.unwrap().contains(0.3));
    }
    println!("paired default: coverage of a true difference {}", rate(covered));
    assert!(rate(covered) >= 0.94, "paired 95% interval covered the true difference {} of the time", rate(covered));
}

#[test]
fn default_unpaired_test_holds_alpha_and_welch_interval_covers() {
    let mut rng = ChaCha8Rng::seed_from_u64(0xBEEF);
    let options = EvalOptions::default();
    // n = 6 per condition keeps the exact permutation test cheap (924 arrangements).
    let mut false_positives = 0;
    for _ in 0..UNPAIRED_SIMULATIONS {
        let units = simulate(&mut rng, 6, 0.0, false);
        let r = &evaluate(&hypothesis(), &units, false, &options).unwrap()[0];
        assert_eq!((r.test, r.paired), (TestKind::Permutation, false));
        false_positives += usize::from(r.p_adjusted.unwrap() <= 0.05);
    }
    let fpr = false_positives as f64 / UNPAIRED_SIMULATIONS as f64;
    println!("unpaired default (n = 6): false-positive rate {fpr}");
    assert!((0.04..=0.06).contains(&fpr), "unpaired false-positive rate {fpr} outside [4%, 6%]");

    // Welch's interval (the unpaired default interval) at n = 10 with a true difference of 0.3.
    let mut covered = 0;
    let mut welch_false_positives = 0;
    for _ in 0..SIMULATIONS {
        let x: Vec<f64> = (0..10).map(|_| 0.3 + standard_normal(&mut rng)).collect();
        let y: Vec<f64> = (0..10).map(|_| 2.0 * standard_normal(&mut rng)).collect();
        let d = stats::mean_difference(&x, &y, false, 0.95).unwrap();
        covered += usize::from(d.ci.contains(0.3));
        let t = stats::welch_t(&x, &y, 0.3, Alternative::TwoSided).unwrap();
        welch_false_positives += usize::from(t.p <= 0.05);
    }
    println!("Welch: coverage {}, false-positive rate {}", rate(covered), rate(welch_false_positives));
    assert!(rate(covered) >= 0.94, "Welch 95% interval covered {} of the time", rate(covered));
    let fpr = rate(welch_false_positives);
    assert!((0.04..=0.06).contains(&fpr), "Welch false-positive rate {fpr} outside [4%, 6%]");
}

#[test]
fn three_coin_flips_never_decide() {
    // The ancestor's permutation test made coin-flip decisions at n = 3. Here, whatever the
    // three 0/1 outcomes, the verdict is inconclusive and says why.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for _ in 0..200 {
        let mut units = Vec::new();
        for k in 0..3 {
            units.push(unit("treated", k, k, f64::from(u8::from(rng.random_bool(0.9)))));
            units.push(unit("baseline", k, k, f64::from(u8::from(rng.random_bool(0.1)))));
        }
        let r = &evaluate(&["treated.score > baseline.score".parse().unwrap()], &units, true, &EvalOptions::default())
            .unwrap()[0];
        let Verdict::Inconclusive { reason } = &r.verdict else { panic!("n = 3 decided: {}", r.explanation) };
        assert!(reason.contains("no outcome could reach p ≤ 0.05"), "{reason}");
    }
}
