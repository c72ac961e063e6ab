//! `run --until-decided`: the stopping rule of a sequential run, the monitor that updates an
//! anytime-valid confidence sequence per hypothesis after every completed replicate index and
//! stops scheduling when all are decided, and the replay of the same sequence from a stored
//! run's units (what `report` prints). See docs/SEQUENTIAL.md for the method and its choice.
//!
//! The sequence of hypothesis `left > right` is over the paired differences
//! d_k = left_k − right_k of replicate index k = 0, 1, 2, ..., taken in index order and only
//! once both units of index k (and of every earlier index) have finished; an index where
//! either unit failed is skipped. Pairs by index are independent draws of the difference
//! whatever the seed policy, and with shared seeds (the default) they cancel common noise.
//! Because the sequence is read in index order and only over the contiguous prefix, the
//! monitor during the run and the replay from the store see the same values in the same order
//! and reach the same decision at the same index.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::events::{Interest, Observer};
use crate::hypothesis::Hypothesis;
use crate::runner::{Cancel, Gate, UnitResult};
use crate::stats::sequential::{ConfidenceSequence, SequentialTest};
use crate::stats::Alternative;

/// The largest `--max-replicates` (a bound before anything is allocated per replicate).
pub const MAX_REPLICATES: u64 = 1_000_000;

/// How a sequential run decides and when it stops; recorded in the manifest (`stopping`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoppingRule {
    /// The hypotheses to decide, as written.
    pub hypotheses: Vec<String>,
    /// The most replicate indices to run.
    pub max_replicates: u64,
    /// The fewest replicate indices before stopping.
    pub min_replicates: u64,
    /// A difference within ± this of the margin counts as "within noise" (a decision too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_effect: Option<f64>,
    /// Family-wise error level, split over the hypotheses (Bonferroni).
    pub alpha: f64,
    /// The sequence to use; `None`: betting for a metric with declared bounds, asymptotic
    /// otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<SequentialTest>,
    /// The number of replicates the asymptotic sequence is tuned for (its ρ).
    pub tuning: u64,
}

impl StoppingRule {
    /// Checks the rule against the experiment's metrics, before any unit runs: bounds of the
    /// numbers, hypotheses that parse, and a betting test only on bounded metrics.
    pub fn check(&self, experiment: &str) -> Result<Vec<Hypothesis>, Error> {
        let bad = |message: String| Error::Hypothesis(message);
        if self.max_replicates == 0 || self.max_replicates > MAX_REPLICATES {
            return Err(bad(format!(
                "--max-replicates {} is out of range: a sequential run needs 1 to {MAX_REPLICATES} replicates",
                self.max_replicates
            )));
        }
        if self.min_replicates > self.max_replicates {
            return Err(bad(format!(
                "--min-replicates {} is above --max-replicates {}: the run could never stop; give a minimum at most \
                 the maximum",
                self.min_replicates, self.max_replicates
            )));
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(bad(format!("--alpha {} is out of range: it lies strictly between 0 and 1", self.alpha)));
        }
        if let Some(e) = self.min_effect {
            if !(e >= 0.0 && e.is_finite()) {
                return Err(bad(format!("--min-effect {e} is out of range: a finite difference ≥ 0")));
            }
        }
        if self.hypotheses.is_empty() {
            return Err(bad(format!(
                "--until-decided needs hypotheses to decide: experiment '{experiment}' declares none; add \
                 --hypothesis 'treatment.metric > baseline.metric'"
            )));
        }
        let mut parsed = Vec::new();
        for text in &self.hypotheses {
            let h = crate::hypothesis::parse(text)
                .map_err(|error| bad(format!("invalid hypothesis '{text}' for --until-decided: {error}")))?;
            if self.test == Some(SequentialTest::Betting) && self.bounds(experiment, &h).is_none() {
                return Err(bad(format!(
                    "--sequential-test betting needs a bounded metric, but '{}' of experiment '{experiment}' declares \
                     no bounds; declare them (`#[crystallize(bounds = 0..=1)]` on the field, or a bool) or use \
                     --sequential-test asymptotic",
                    h.left.metric
                )));
            }
            parsed.push(h);
        }
        Ok(parsed)
    }

    /// The bounds of the difference of `h`'s sides, when both metrics declare finite bounds.
    fn bounds(&self, experiment: &str, h: &Hypothesis) -> Option<(f64, f64)> {
        let of = |metric: &str| crate::registry::declared_bounds(experiment, metric);
        let (a, b) = of(&h.left.metric)?;
        let (c, d) = of(&h.right.metric)?;
        (a.is_finite() && b.is_finite() && c.is_finite() && d.is_finite()).then_some((a - d, b - c))
    }

    /// The confidence sequence of `h`, at its share of alpha.
    fn sequence(&self, experiment: &str, h: &Hypothesis) -> Result<(SequentialTest, ConfidenceSequence), String> {
        let m = self.hypotheses.len().max(1) as f64;
        let alpha_side = match h.op.alternative() {
            Alternative::TwoSided => self.alpha / m / 2.0,
            _ => self.alpha / m,
        };
        let bounds = self.bounds(experiment, h);
        let test =
            self.test.unwrap_or(if bounds.is_some() { SequentialTest::Betting } else { SequentialTest::Asymptotic });
        let sequence = match (test, bounds) {
            (SequentialTest::Betting, Some((low, high))) => ConfidenceSequence::betting(low, high, alpha_side),
            (SequentialTest::Betting, None) => return Err(format!("'{}' has no declared bounds", h.left.metric)),
            (SequentialTest::Asymptotic, _) => ConfidenceSequence::asymptotic(self.tuning, alpha_side),
        }
        .map_err(|e| e.to_string())?;
        Ok((test, sequence))
    }
}

/// Where a hypothesis stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Not decided yet.
    Open,
    /// The interval lies on the claimed side of the margin (beyond the minimum effect).
    Supported,
    /// The interval lies on the other side of the margin.
    Contradicted,
    /// The interval lies within the minimum effect of the margin.
    WithinNoise,
}

impl Status {
    /// Its name in text.
    pub fn name(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Supported => "supported",
            Status::Contradicted => "contradicted",
            Status::WithinNoise => "within noise",
        }
    }
}

/// Where `(low, high)` leaves a hypothesis with `alternative` about `difference − margin`.
pub fn status(alternative: Alternative, low: f64, high: f64, margin: f64, min_effect: Option<f64>) -> Status {
    let e = min_effect.unwrap_or(0.0);
    let (low, high) = (low - margin, high - margin);
    let within = min_effect.is_some() && low >= -e && high <= e;
    match alternative {
        Alternative::Greater if low > e => Status::Supported,
        Alternative::Greater if high < 0.0 => Status::Contradicted,
        Alternative::Greater if min_effect.is_some() && high <= e => Status::WithinNoise,
        Alternative::Less if high < -e => Status::Supported,
        Alternative::Less if low > 0.0 => Status::Contradicted,
        Alternative::Less if min_effect.is_some() && low >= -e => Status::WithinNoise,
        Alternative::TwoSided if low > e || high < -e => Status::Supported,
        _ if within => Status::WithinNoise,
        _ => Status::Open,
    }
}

/// One hypothesis of a sequential run, as it stands.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SequentialResult {
    /// The hypothesis, in canonical spelling.
    pub hypothesis: String,
    /// The confidence sequence used.
    pub test: SequentialTest,
    /// Paired replicate indices used.
    pub n: u64,
    /// Mean of the paired differences.
    pub effect: Option<f64>,
    /// The anytime-valid interval of the difference (`null` ends are unbounded yet).
    pub low: Option<f64>,
    /// Its upper end.
    pub high: Option<f64>,
    /// Where the hypothesis stands.
    pub status: Status,
    /// How many pairs it took to decide (`None` while open).
    pub decided_at: Option<u64>,
}

/// One index of a hypothesis: each side's value once its unit finished (`Some(None)`: failed,
/// or without the metric).
type Slot = (Option<Option<f64>>, Option<Option<f64>>);

/// The sequence of one hypothesis over the contiguous prefix of completed indices.
struct Tracker {
    hypothesis: Hypothesis,
    test: SequentialTest,
    sequence: ConfidenceSequence,
    sum: f64,
    status: Status,
    decided_at: Option<u64>,
    /// Index → (left value or failed, right value or failed), for indices not consumed yet.
    pending: BTreeMap<u64, Slot>,
    next: u64,
    error: Option<String>,
}

impl Tracker {
    fn new(rule: &StoppingRule, experiment: &str, hypothesis: Hypothesis, first: u64) -> Result<Tracker, String> {
        let (test, sequence) = rule.sequence(experiment, &hypothesis)?;
        Ok(Tracker {
            hypothesis,
            test,
            sequence,
            sum: 0.0,
            status: Status::Open,
            decided_at: None,
            pending: BTreeMap::new(),
            next: first,
            error: None,
        })
    }

    /// Takes a finished unit; then consumes every complete index at the front.
    fn add(&mut self, unit: &UnitResult, rule: &StoppingRule) -> bool {
        let value = |metric: &str| if unit.is_ok() { unit.metrics.get(metric).copied() } else { None };
        let h = &self.hypothesis;
        let matches = |condition: &str| match condition.split_once('/') {
            Some((experiment, name)) => unit.experiment == experiment && unit.condition == name,
            None => unit.condition == condition,
        };
        let mut touched = false;
        if unit.replicate >= self.next {
            let slot = self.pending.entry(unit.replicate).or_default();
            if matches(&h.left.condition) {
                slot.0 = Some(value(&h.left.metric));
                touched = true;
            }
            if matches(&h.right.condition) {
                slot.1 = Some(value(&h.right.metric));
                touched = true;
            }
        }
        let before = self.status;
        while let Some((Some(left), Some(right))) = self.pending.get(&self.next).copied() {
            self.pending.remove(&self.next);
            self.next += 1;
            if let (Some(l), Some(r)) = (left, right) {
                let d = l - r;
                if self.error.is_none() {
                    match self.sequence.update(d) {
                        Ok(()) => self.sum += d,
                        Err(e) => self.error = Some(e.to_string()),
                    }
                }
                if self.status == Status::Open && self.sequence.n() >= rule.min_replicates.max(1) {
                    let (low, high) = self.sequence.bounds();
                    self.status = status(h.op.alternative(), low, high, h.margin, rule.min_effect);
                    if self.status != Status::Open {
                        self.decided_at = Some(self.sequence.n());
                    }
                }
            }
        }
        touched && before != self.status
    }

    fn result(&self) -> SequentialResult {
        let n = self.sequence.n();
        let (low, high) = self.sequence.bounds();
        SequentialResult {
            hypothesis: self.hypothesis.to_string(),
            test: self.test,
            n,
            effect: (n > 0).then(|| self.sum / n as f64),
            low: low.is_finite().then_some(low),
            high: high.is_finite().then_some(high),
            status: self.status,
            decided_at: self.decided_at,
        }
    }
}

/// The sequential results of a stored run, replayed from its units in index order.
pub fn replay(rule: &StoppingRule, experiment: &str, first: u64, units: &[UnitResult]) -> Vec<SequentialResult> {
    let mut trackers = trackers(rule, experiment, first);
    let mut sorted: Vec<&UnitResult> = units.iter().collect();
    sorted.sort_by_key(|u| u.replicate);
    for unit in sorted {
        for tracker in &mut trackers {
            tracker.add(unit, rule);
        }
    }
    trackers.iter().map(Tracker::result).collect()
}

/// [`replay`] of the units of a [`UnitTable`](crate::unit_table::UnitTable), each rebuilt in
/// turn (the trackers read whole units; the table is what the report of a stored run holds).
pub(crate) fn replay_table(
    rule: &StoppingRule,
    experiment: &str,
    first: u64,
    units: &crate::unit_table::UnitTable,
) -> Vec<SequentialResult> {
    let mut trackers = trackers(rule, experiment, first);
    let mut sorted: Vec<crate::unit_table::UnitRow<'_>> = units.iter().collect();
    // Stable, as `replay`'s: units of one index keep their order.
    sorted.sort_by_key(|u| u.replicate());
    for unit in sorted {
        let unit = unit.to_result();
        for tracker in &mut trackers {
            tracker.add(&unit, rule);
        }
    }
    trackers.iter().map(Tracker::result).collect()
}

fn trackers(rule: &StoppingRule, experiment: &str, first: u64) -> Vec<Tracker> {
    rule.hypotheses
        .iter()
        .filter_map(|text| crate::hypothesis::parse(text).ok())
        .filter_map(|h| Tracker::new(rule, experiment, h, first).ok())
        .collect()
}

/// One line about a hypothesis: `treated.win > baseline.win: [0.12, 0.61] after 14 pairs, supported`.
pub fn line(result: &SequentialResult) -> String {
    let end = |v: Option<f64>, infinite: &str| v.map(crate::summary::number).unwrap_or_else(|| infinite.to_owned());
    format!(
        "{}: [{}, {}] after {} pairs, {}",
        result.hypothesis,
        end(result.low, "-inf"),
        end(result.high, "inf"),
        result.n,
        result.status.name()
    )
}

/// The observer of a sequential run: updates every hypothesis as units finish, prints how
/// each stands (above the progress display), writes a JSON line on stdout when one is decided
/// in a stream, and stops scheduling new units once all are decided.
pub(crate) struct Monitor {
    rule: StoppingRule,
    trackers: Vec<Tracker>,
    cancel: Cancel,
    stream: Option<String>,
    stopped: bool,
    gate: Gate,
    window: u64,
}

impl Monitor {
    pub(crate) fn new(
        rule: StoppingRule,
        experiment: &str,
        first: u64,
        cancel: Cancel,
        stream: Option<String>,
        gate: Gate,
        window: u64,
    ) -> Monitor {
        let trackers = trackers(&rule, experiment, first);
        Monitor { rule, trackers, cancel, stream, stopped: false, gate, window }
    }

    /// Feeds a resumed run's stored units, silently; stops at once when they decide.
    pub(crate) fn preload(&mut self, units: &[UnitResult]) {
        let mut sorted: Vec<&UnitResult> = units.iter().collect();
        sorted.sort_by_key(|u| u.replicate);
        for unit in sorted {
            for tracker in &mut self.trackers {
                tracker.add(unit, &self.rule);
            }
        }
        self.after_update();
    }

    fn after_update(&mut self) {
        if !self.stopped && self.decided() {
            self.stopped = true;
            self.cancel.cancel();
        }
        // Let the next indices start: up to `window` past the slowest hypothesis's next index.
        match self.trackers.iter().map(|t| t.next).min() {
            Some(next) => self.gate.advance(next.saturating_add(self.window)),
            None => self.gate.advance(u64::MAX),
        }
    }

    /// The current results.
    pub(crate) fn results(&self) -> Vec<SequentialResult> {
        self.trackers.iter().map(Tracker::result).collect()
    }

    /// Whether every hypothesis was decided.
    pub(crate) fn decided(&self) -> bool {
        self.trackers.iter().all(|t| t.status != Status::Open)
    }
}

impl Observer for Monitor {
    fn interest(&self) -> Interest {
        Interest::RESULTS
    }

    fn unit_finished(&mut self, unit: &UnitResult) {
        let before: Vec<u64> = self.trackers.iter().map(|t| t.sequence.n()).collect();
        for (index, tracker) in self.trackers.iter_mut().enumerate() {
            let changed = tracker.add(unit, &self.rule);
            let result = tracker.result();
            if changed {
                if let Some(run) = &self.stream {
                    let mut value = serde_json::to_value(&result).unwrap_or_default();
                    if let serde_json::Value::Object(object) = &mut value {
                        object.insert("type".into(), "decision".into());
                        object.insert("run".into(), run.clone().into());
                    }
                    println!("{value}");
                }
                crate::console::line(format!("decided: {}", line(&result)));
            } else if result.n > before[index] && self.stream.is_none() {
                crate::console::line(format!("sequential: {}", line(&result)));
            }
        }
        self.after_update();
    }
}

/// The outcome of simulated sequential runs: how often each ended supported, and how many
/// pairs they used.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Simulated {
    /// Runs that ended supported.
    pub supported: usize,
    /// Pairs used by each run (at its decision, or the maximum).
    pub pairs: Vec<u64>,
}

impl Simulated {
    /// Fraction of runs that ended supported.
    pub fn power(&self) -> f64 {
        self.supported as f64 / self.pairs.len().max(1) as f64
    }

    /// Mean pairs used.
    pub fn mean_pairs(&self) -> f64 {
        self.pairs.iter().sum::<u64>() as f64 / self.pairs.len().max(1) as f64
    }

    /// The `q` quantile of the pairs used (nearest rank).
    pub fn quantile_pairs(&self, q: f64) -> u64 {
        let mut sorted = self.pairs.clone();
        sorted.sort_unstable();
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
        sorted.get(rank - 1).copied().unwrap_or(0)
    }
}

/// Simulates `runs` sequential runs of one hypothesis with `alternative` (margin 0): each draws
/// differences with `draw` (seeded ChaCha8 from `seed`), updates a fresh `sequence()`, and stops
/// at its first decision from `min` pairs on, or at `max`.
// The arguments are the simulation's design, each named at the call; a struct would only
// rename them.
#[allow(clippy::too_many_arguments)]
pub(crate) fn simulate(
    runs: usize,
    seed: u64,
    max: u64,
    min: u64,
    alternative: Alternative,
    min_effect: Option<f64>,
    sequence: impl Fn() -> ConfidenceSequence,
    draw: impl Fn(&mut rand_chacha::ChaCha8Rng) -> f64,
) -> Simulated {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut result = Simulated { supported: 0, pairs: Vec::with_capacity(runs) };
    for _ in 0..runs {
        let mut cs = sequence();
        let mut outcome = Status::Open;
        while cs.n() < max {
            if cs.update(draw(&mut rng)).is_err() {
                break;
            }
            if cs.n() >= min.max(1) {
                let (low, high) = cs.bounds();
                outcome = status(alternative, low, high, 0.0, min_effect);
                if outcome != Status::Open {
                    break;
                }
            }
        }
        result.supported += usize::from(outcome == Status::Supported);
        result.pairs.push(cs.n());
    }
    result
}

#[cfg(test)]
mod calibration {
    //! Seeded simulations of the sequential decisions (docs/SEQUENTIAL.md has the tables): under
    //! the null, updated after every pair up to 200, "supported" must come at most alpha of the
    //! time; under effects, how much power and how many pairs. The full-size run (10 000
    //! simulations each) is `cargo test -p crystallize --lib sequential::calibration -- --ignored`.
    use super::*;
    use crate::stats::clopper_pearson;
    use rand::Rng;

    const ALPHA: f64 = 0.05;

    fn normal(rng: &mut rand_chacha::ChaCha8Rng) -> f64 {
        let (u, v): (f64, f64) = (rng.random(), rng.random());
        (-2.0 * (1.0 - u).ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    fn coin(rng: &mut rand_chacha::ChaCha8Rng, p: f64) -> f64 {
        f64::from(u8::from(rng.random::<f64>() < p))
    }

    /// The false-"supported" rate of a one-sided hypothesis under the null, with its 95 %
    /// Clopper–Pearson interval, as a table row; fails above alpha.
    fn null_rate(what: &str, runs: usize, simulated: &Simulated) -> String {
        let ci = clopper_pearson(simulated.supported as u64, runs as u64, 0.95).unwrap();
        let rate = simulated.power();
        let row = format!("| {what} | {runs} | {rate:.4} | [{:.4}, {:.4}] |", ci.low, ci.high);
        eprintln!("{row}");
        assert!(rate <= ALPHA, "{row}: false-supported rate above alpha = {ALPHA}");
        row
    }

    fn binary_null(runs: usize) -> Simulated {
        let betting = || ConfidenceSequence::betting(-1.0, 1.0, ALPHA).unwrap();
        simulate(runs, 15, 200, 0, Alternative::Greater, None, betting, |r| coin(r, 0.5) - coin(r, 0.5))
    }

    fn continuous_null(runs: usize) -> Simulated {
        let asymptotic = || ConfidenceSequence::asymptotic(20, ALPHA).unwrap();
        simulate(runs, 16, 200, 0, Alternative::Greater, None, asymptotic, |r| 3.0 * normal(r))
    }

    /// Student's t with 3 degrees of freedom: heavy tails, for the asymptotic sequence.
    fn heavy_null(runs: usize) -> Simulated {
        let asymptotic = || ConfidenceSequence::asymptotic(20, ALPHA).unwrap();
        simulate(runs, 18, 200, 0, Alternative::Greater, None, asymptotic, |r| {
            let chi2: f64 = (0..3).map(|_| normal(r).powi(2)).sum();
            normal(r) / (chi2 / 3.0).sqrt()
        })
    }

    #[test]
    fn null_false_supported_rate_is_at_most_alpha() {
        // 1000 betting runs (the slower sequence in a debug build) and 10 000 asymptotic ones.
        null_rate("0/1 metric, betting, p = 0.5 both sides", 1000, &binary_null(1000));
        null_rate("continuous, asymptotic, N(0, 3²) differences", 10_000, &continuous_null(10_000));
        null_rate("continuous, asymptotic, t(3) differences", 10_000, &heavy_null(10_000));
    }

    #[test]
    #[ignore = "full size: 10 000 betting runs take minutes in a debug build"]
    fn null_false_supported_rate_full_size() {
        null_rate("0/1 metric, betting, p = 0.5 both sides", 10_000, &binary_null(10_000));
        null_rate("continuous, asymptotic, N(0, 3²) differences", 10_000, &continuous_null(10_000));
        null_rate("continuous, asymptotic, t(3) differences", 10_000, &heavy_null(10_000));
    }

    /// Power and pairs of sequential runs (max 4 × the fixed n) against the fixed design's n
    /// for 80 % power at `design` effect, when the true effect is `truth` (sd 1).
    fn power_row(fixed_n: u64, design: f64, truth: f64, runs: usize) -> (Simulated, String) {
        let asymptotic = || ConfidenceSequence::asymptotic(20, ALPHA).unwrap();
        let s = simulate(runs, 17, 4 * fixed_n, 0, Alternative::Greater, None, asymptotic, |r| truth + normal(r));
        let row = format!(
            "| {design:.3} | {fixed_n} | {truth:.3} | {:.3} | {:.1} | {} | {:+.0}% |",
            s.power(),
            s.mean_pairs(),
            s.quantile_pairs(0.9),
            100.0 * (s.mean_pairs() / fixed_n as f64 - 1.0)
        );
        eprintln!("{row}");
        (s, row)
    }

    #[test]
    fn power_and_replicates_against_a_fixed_design() {
        for fixed_n in [30u64, 100] {
            // The effect a one-sided paired t test at alpha 0.05 detects with 80 % power at n.
            let design = (1..2000)
                .map(|k| f64::from(k) / 2000.0)
                .find(|&d| {
                    crate::stats::n_per_side(d, 1.0, ALPHA, 0.8, Alternative::Greater, crate::stats::Design::Paired)
                        .is_ok_and(|n| n as u64 <= fixed_n)
                })
                .unwrap();
            // At the design effect the anytime-valid sequence needs more pairs than the fixed
            // design on average (the price of peeking at every pair); at twice it, far fewer.
            let (at_design, _) = power_row(fixed_n, design, design, 1000);
            assert!(at_design.power() >= 0.8);
            let (larger, _) = power_row(fixed_n, design, 2.0 * design, 1000);
            assert!(larger.power() >= 0.8 && larger.mean_pairs() <= 0.7 * fixed_n as f64, "{larger:?}");
        }
    }
}

/// What `plan` says about stopping with `--until-decided`, from a pilot run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct SequentialPlan {
    /// The confidence sequence the run would use.
    pub test: SequentialTest,
    /// The maximum simulated.
    pub max_replicates: u64,
    /// Mean pairs until stopping.
    pub expected: f64,
    /// 90th percentile of the pairs until stopping.
    pub p90: u64,
    /// Fraction of simulated runs that ended supported.
    pub power: f64,
    /// Simulated runs (seeded, resampling the pilot's paired differences).
    pub simulations: usize,
}

/// Simulated runs for `plan`: SIMULATIONS sequential runs of `h` up to `max` pairs, each pair's
/// difference drawn with replacement from the pilot's paired differences (so the effect and
/// spread are the pilot's), seed 0; `None` without at least 2 pairs.
pub(crate) fn plan_sequential(
    experiment: &str,
    h: &Hypothesis,
    units: &[UnitResult],
    alpha: f64,
    max: u64,
) -> Option<SequentialPlan> {
    const SIMULATIONS: usize = 1000;
    let rule = StoppingRule {
        hypotheses: vec![h.to_string()],
        max_replicates: max,
        min_replicates: 0,
        min_effect: None,
        alpha,
        test: None,
        tuning: 20,
    };
    let mut tracker = Tracker::new(&rule, experiment, h.clone(), 0).ok()?;
    let mut sorted: Vec<&UnitResult> = units.iter().collect();
    sorted.sort_by_key(|u| u.replicate);
    let mut differences = Vec::new();
    for unit in sorted {
        tracker.add(unit, &rule);
    }
    // The tracker consumed the contiguous prefix; re-derive the differences it saw.
    let value = |condition: &str, metric: &str, replicate: u64| {
        units
            .iter()
            .find(|u| u.replicate == replicate && u.is_ok() && u.condition == condition)
            .and_then(|u| u.metrics.get(metric).copied())
    };
    let bare = |c: &str| c.split_once('/').map_or(c, |(_, name)| name).to_owned();
    let (left, right) = (bare(&h.left.condition), bare(&h.right.condition));
    for replicate in 0..tracker.next {
        if let (Some(l), Some(r)) = (value(&left, &h.left.metric, replicate), value(&right, &h.right.metric, replicate))
        {
            differences.push(l - r);
        }
    }
    if differences.len() < 2 {
        return None;
    }
    let test = tracker.test;
    let sequence = || rule.sequence(experiment, h).map(|(_, s)| s);
    sequence().ok()?;
    let simulated = simulate(
        SIMULATIONS,
        0,
        max,
        0,
        h.op.alternative(),
        None,
        || sequence().unwrap_or_else(|_| unreachable!("checked above")),
        |rng| {
            use rand::Rng;
            differences[rng.random_range(0..differences.len())]
        },
    );
    Some(SequentialPlan {
        test,
        max_replicates: max,
        expected: simulated.mean_pairs(),
        p90: simulated.quantile_pairs(0.9),
        power: simulated.power(),
        simulations: SIMULATIONS,
    })
}
