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
use crate::stats::sequential::{ConfidenceSequence, SequentialTest, Sprt, Verdict};
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
    /// For `--sequential-test sprt`: the power planned at `min_effect` (its futility error is
    /// 1 − power); `None`: [`DEFAULT_POWER`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<f64>,
}

/// The power an SPRT is planned for when none is given: what a fixed design is usually planned for.
pub const DEFAULT_POWER: f64 = 0.8;

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
        if let Some(power) = self.power {
            if !(power > 0.0 && power < 1.0) {
                return Err(bad(format!("--power {power} is out of range: it lies strictly between 0 and 1")));
            }
        }
        if self.test == Some(SequentialTest::Sprt) && !self.min_effect.is_some_and(|e| e > 0.0) {
            return Err(bad(
                "--sequential-test sprt tests against a planned effect: add --min-effect E (E > 0, the smallest \
                 difference worth finding, as a fixed design's power analysis would use)"
                    .to_owned(),
            ));
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
            let needs_bounds = matches!(self.test, Some(SequentialTest::Betting | SequentialTest::Sprt));
            if needs_bounds && self.bounds(experiment, &h).is_none() {
                return Err(bad(format!(
                    "--sequential-test {} needs a bounded metric, but '{}' of experiment '{experiment}' declares \
                     no bounds; declare them (`#[crystallize(bounds = 0..=1)]` on the field, or a bool) or use \
                     --sequential-test asymptotic",
                    self.test.map_or("", SequentialTest::name),
                    h.left.metric
                )));
            }
            if self.test == Some(SequentialTest::Sprt) {
                self.sprt(experiment, &h).map_err(|why| bad(format!("--sequential-test sprt for '{h}': {why}")))?;
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
        let alpha_side = self.alpha_side(h);
        let bounds = self.bounds(experiment, h);
        let test =
            self.test.unwrap_or(if bounds.is_some() { SequentialTest::Betting } else { SequentialTest::Asymptotic });
        let sequence = match (test, bounds) {
            (SequentialTest::Betting | SequentialTest::Sprt, Some((low, high))) => {
                ConfidenceSequence::betting(low, high, alpha_side)
            }
            (SequentialTest::Betting | SequentialTest::Sprt, None) => {
                return Err(format!("'{}' has no declared bounds", h.left.metric))
            }
            (SequentialTest::Asymptotic, _) => ConfidenceSequence::asymptotic(self.tuning, alpha_side),
        }
        .map_err(|e| e.to_string())?;
        Ok((test, sequence))
    }

    /// The error level of each side of `h`: its Bonferroni share of alpha, halved for a
    /// two-sided claim.
    fn alpha_side(&self, h: &Hypothesis) -> f64 {
        let m = self.hypotheses.len().max(1) as f64;
        match h.op.alternative() {
            Alternative::TwoSided => self.alpha / m / 2.0,
            _ => self.alpha / m,
        }
    }

    /// What decides `h`: its sequence, and its SPRT for `--sequential-test sprt`.
    fn decider(&self, experiment: &str, h: &Hypothesis) -> Result<(SequentialTest, Decider), String> {
        let (test, sequence) = self.sequence(experiment, h)?;
        Ok((test, Decider { sequence, sprt: self.sprt(experiment, h)? }))
    }

    /// The SPRT of `h`, for `--sequential-test sprt` (`None` for the other tests): at its share
    /// of alpha, planned for `min_effect` at `power`. Besides it the tracker keeps the betting
    /// sequence, for the interval the report prints.
    fn sprt(&self, experiment: &str, h: &Hypothesis) -> Result<Option<Sprt>, String> {
        if self.test != Some(SequentialTest::Sprt) {
            return Ok(None);
        }
        let (low, high) =
            self.bounds(experiment, h).ok_or_else(|| format!("'{}' has no declared bounds", h.left.metric))?;
        let alpha_side = self.alpha_side(h);
        let beta = 1.0 - self.power.unwrap_or(DEFAULT_POWER);
        let effect = self.min_effect.unwrap_or(0.0);
        Sprt::new(low, high, h.margin, effect, h.op.alternative(), alpha_side, beta)
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

/// What decides a hypothesis from its paired differences: a confidence sequence, and for an
/// SPRT the test beside it (the sequence then gives only the interval).
pub(crate) struct Decider {
    sequence: ConfidenceSequence,
    sprt: Option<Sprt>,
}

impl From<ConfidenceSequence> for Decider {
    fn from(sequence: ConfidenceSequence) -> Decider {
        Decider { sequence, sprt: None }
    }
}

impl Decider {
    /// An SPRT with a sequence beside it (for the simulations: the decision is the SPRT's).
    #[cfg(test)]
    pub(crate) fn sprt(sequence: ConfidenceSequence, sprt: Sprt) -> Decider {
        Decider { sequence, sprt: Some(sprt) }
    }

    fn update(&mut self, d: f64) -> Result<(), crate::stats::StatsError> {
        if let Some(sprt) = &mut self.sprt {
            sprt.update(d)?;
        }
        self.sequence.update(d)
    }

    fn n(&self) -> u64 {
        self.sequence.n()
    }

    fn status(&self, alternative: Alternative, margin: f64, min_effect: Option<f64>) -> Status {
        match &self.sprt {
            Some(sprt) => sprt_status(sprt.verdict()),
            None => {
                let (low, high) = self.sequence.bounds();
                status(alternative, low, high, margin, min_effect)
            }
        }
    }
}

/// The status an SPRT's verdict gives a hypothesis.
fn sprt_status(verdict: Verdict) -> Status {
    match verdict {
        Verdict::Open => Status::Open,
        Verdict::Effect => Status::Supported,
        Verdict::Reverse => Status::Contradicted,
        Verdict::Short => Status::WithinNoise,
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

/// Why a sequential session stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Every hypothesis was decided: the remaining replicates were not needed.
    Decided,
    /// Every planned replicate ran (the maximum) with a hypothesis still open.
    Maximum,
    /// The session was interrupted (a signal, `--fail-fast`, a write error) before either.
    Interrupted,
}

/// Where a sequential session stopped, as the `stop` record at the end of its journal says
/// (docs/STORE.md); `report` checks its replay of the sequence against it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stop {
    /// Why it stopped.
    pub reason: StopReason,
    /// The pairs at which the last hypothesis was decided, when all were: where it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<u64>,
    /// Each hypothesis as it stood then.
    pub hypotheses: Vec<SequentialResult>,
}

impl Stop {
    /// The stop of a session whose hypotheses ended as `results`; `interrupted` when it was
    /// cancelled (by anything but the decision).
    pub fn new(results: &[SequentialResult], interrupted: bool) -> Stop {
        let decided = results.iter().all(|r| r.status != Status::Open);
        let reason = match (decided, interrupted) {
            (true, _) => StopReason::Decided,
            (false, true) => StopReason::Interrupted,
            (false, false) => StopReason::Maximum,
        };
        let at = decided.then(|| results.iter().filter_map(|r| r.decided_at).max()).flatten();
        Stop { reason, at, hypotheses: results.to_vec() }
    }

    /// Where the replay of the sequence from the stored units (`replayed`) disagrees with this
    /// record: one line per hypothesis whose status or decision point differs.
    pub fn disagreements(&self, replayed: &[SequentialResult]) -> Vec<String> {
        let mut out = Vec::new();
        let all_decided = replayed.iter().all(|r| r.status != Status::Open);
        if self.reason == StopReason::Decided && !all_decided {
            out.push("it says every hypothesis was decided, but the stored units leave one open".to_owned());
        }
        let last = all_decided.then(|| replayed.iter().filter_map(|r| r.decided_at).max()).flatten();
        if self.reason == StopReason::Decided && self.at != last {
            let at = |n: Option<u64>| n.map_or_else(|| "nowhere".to_owned(), |n| format!("after {n} pairs"));
            out.push(format!("it says the run stopped {}, but the stored units replay to {}", at(self.at), at(last)));
        }
        for r in replayed {
            if !self.hypotheses.iter().any(|recorded| recorded.hypothesis == r.hypothesis) {
                out.push(format!("'{}' is replayed but not recorded", r.hypothesis));
            }
        }
        for recorded in &self.hypotheses {
            match replayed.iter().find(|r| r.hypothesis == recorded.hypothesis) {
                None => out.push(format!("'{}' is recorded but not replayed", recorded.hypothesis)),
                Some(r)
                    if recorded.status != Status::Open
                        && (r.status, r.decided_at) != (recorded.status, recorded.decided_at) =>
                {
                    out.push(format!(
                        "'{}' was {} after {} pairs when the run stopped, but the stored units replay as {}{}",
                        recorded.hypothesis,
                        recorded.status.name(),
                        recorded.decided_at.unwrap_or(recorded.n),
                        r.status.name(),
                        r.decided_at.map(|n| format!(" after {n} pairs")).unwrap_or_default()
                    ))
                }
                Some(_) => {}
            }
        }
        out
    }
}

/// One hypothesis of a sequential run, as it stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// For `--sequential-test sprt`: the e-values that decide it (the interval is then for
    /// reading only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
}

/// The evidence of an SPRT so far, as e-values (wealth of a bet that started at 1).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// For an effect beyond the margin; decides "supported" at `effect_needed`.
    pub effect: f64,
    /// 1/alpha of the hypothesis.
    pub effect_needed: f64,
    /// For falling short of the planned effect; decides "within noise" at `short_needed`.
    pub short: f64,
    /// 1/(1 − power).
    pub short_needed: f64,
}

/// One index of a hypothesis: each side's value once its unit finished (`Some(None)`: failed,
/// or without the metric).
type Slot = (Option<Option<f64>>, Option<Option<f64>>);

/// The sequence of one hypothesis over the contiguous prefix of completed indices.
struct Tracker {
    hypothesis: Hypothesis,
    test: SequentialTest,
    decider: Decider,
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
        let (test, decider) = rule.decider(experiment, &hypothesis)?;
        Ok(Tracker {
            hypothesis,
            test,
            decider,
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
                    match self.decider.update(d) {
                        Ok(()) => self.sum += d,
                        Err(e) => self.error = Some(e.to_string()),
                    }
                }
                if self.status == Status::Open && self.decider.n() >= rule.min_replicates.max(1) {
                    self.status = self.decider.status(h.op.alternative(), h.margin, rule.min_effect);
                    if self.status != Status::Open {
                        self.decided_at = Some(self.decider.n());
                    }
                }
            }
        }
        touched && before != self.status
    }

    fn result(&self) -> SequentialResult {
        let n = self.decider.n();
        let (low, high) = self.decider.sequence.bounds();
        SequentialResult {
            hypothesis: self.hypothesis.to_string(),
            test: self.test,
            n,
            effect: (n > 0).then(|| self.sum / n as f64),
            low: low.is_finite().then_some(low),
            high: high.is_finite().then_some(high),
            status: self.status,
            decided_at: self.decided_at,
            evidence: self.decider.sprt.as_ref().map(|sprt| {
                let ((effect, short), (effect_needed, short_needed)) = (sprt.evidence(), sprt.thresholds());
                Evidence { effect, effect_needed, short, short_needed }
            }),
        }
    }
}

/// The sequential results of a stored run, replayed from its units in index order.
pub fn replay(rule: &StoppingRule, experiment: &str, first: u64, units: &[UnitResult]) -> Vec<SequentialResult> {
    let mut trackers = trackers(rule, experiment, first);
    feed(&mut trackers, rule, units.iter().collect(), |u| u.replicate, |u| u);
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
    feed(&mut trackers, rule, units.iter().collect(), |u| u.replicate(), |u| u.to_result());
    trackers.iter().map(Tracker::result).collect()
}

/// Gives `units` to every tracker in replicate order (a stable sort: units of one index keep
/// their order), as `unit` makes each a [`UnitResult`]: what the replays and a resumed run's
/// preload share, so that all three see the same values in the same order.
fn feed<T, U: std::borrow::Borrow<UnitResult>>(
    trackers: &mut [Tracker],
    rule: &StoppingRule,
    mut units: Vec<T>,
    replicate: impl Fn(&T) -> u64,
    unit: impl Fn(T) -> U,
) {
    units.sort_by_key(|u| replicate(u));
    for u in units {
        let u = unit(u);
        for tracker in trackers.iter_mut() {
            tracker.add(u.borrow(), rule);
        }
    }
}

fn trackers(rule: &StoppingRule, experiment: &str, first: u64) -> Vec<Tracker> {
    rule.hypotheses
        .iter()
        .filter_map(|text| crate::hypothesis::parse(text).ok())
        .filter_map(|h| Tracker::new(rule, experiment, h, first).ok())
        .collect()
}

/// One line about a hypothesis: `treated.win > baseline.win: [0.12, 0.61] after 14 pairs, supported`
/// (an SPRT's also says its e-values: `..., e = 24.3 of 20 for an effect, 0.41 of 5 short of it`).
pub fn line(result: &SequentialResult) -> String {
    let end = |v: Option<f64>, infinite: &str| v.map(crate::summary::number).unwrap_or_else(|| infinite.to_owned());
    let evidence = result.evidence.map_or_else(String::new, |e| {
        let n = crate::summary::number;
        format!(
            ", e = {} of {} for an effect, {} of {} short of it",
            n(e.effect),
            n(e.effect_needed),
            n(e.short),
            n(e.short_needed)
        )
    });
    format!(
        "{}: [{}, {}] after {} pairs, {}{evidence}",
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
        feed(&mut self.trackers, &self.rule, units.iter().collect(), |u| u.replicate, |u| u);
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
        let before: Vec<u64> = self.trackers.iter().map(|t| t.decider.n()).collect();
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
                // The decision stays on screen as a line; the live row says it too.
                let text = format!("decided: {}", line(&result));
                crate::console::status(&result.hypothesis, &text);
                crate::console::line(text);
            } else if result.n > before[index] && self.stream.is_none() {
                // On a terminal, one row per hypothesis updated in place; else a line per pair.
                let text = format!("sequential: {}", line(&result));
                if !crate::console::status(&result.hypothesis, &text) {
                    crate::console::line(text);
                }
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

/// Simulates `runs` sequential runs of one hypothesis with `alternative` about `margin`: each
/// draws differences with `draw` (seeded ChaCha8 from `seed`), updates a fresh `decider()`, and
/// stops at its first decision from `min` pairs on, or at `max`.
// The arguments are the simulation's design, each named at the call; a struct would only
// rename them.
#[allow(clippy::too_many_arguments)]
pub(crate) fn simulate(
    runs: usize,
    seed: u64,
    max: u64,
    min: u64,
    (alternative, margin): (Alternative, f64),
    min_effect: Option<f64>,
    decider: impl Fn() -> Decider,
    draw: impl Fn(&mut rand_chacha::ChaCha8Rng) -> f64,
) -> Simulated {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut result = Simulated { supported: 0, pairs: Vec::with_capacity(runs) };
    for _ in 0..runs {
        let mut cs = decider();
        let mut outcome = Status::Open;
        while cs.n() < max {
            if cs.update(draw(&mut rng)).is_err() {
                break;
            }
            if cs.n() >= min.max(1) {
                outcome = cs.status(alternative, margin, min_effect);
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

    /// The smallest effect (on a grid of 1/2000) that a one-sided paired t test at alpha 0.05
    /// detects with 80 % power in at most `fixed_n` pairs, when the differences' sd at effect d
    /// is `sd(d)`.
    fn planned_effect(fixed_n: u64, sd: impl Fn(f64) -> f64) -> f64 {
        (1..1000)
            .map(|k| f64::from(k) / 2000.0)
            .find(|&d| {
                crate::stats::n_per_side(d, sd(d), ALPHA, 0.8, Alternative::Greater, crate::stats::Design::Paired)
                    .is_ok_and(|n| n as u64 <= fixed_n)
            })
            .unwrap()
    }

    fn binary_null(runs: usize) -> Simulated {
        let betting = || Decider::from(ConfidenceSequence::betting(-1.0, 1.0, ALPHA).unwrap());
        simulate(runs, 15, 200, 0, (Alternative::Greater, 0.0), None, betting, |r| coin(r, 0.5) - coin(r, 0.5))
    }

    fn continuous_null(runs: usize) -> Simulated {
        let asymptotic = || Decider::from(ConfidenceSequence::asymptotic(20, ALPHA).unwrap());
        simulate(runs, 16, 200, 0, (Alternative::Greater, 0.0), None, asymptotic, |r| 3.0 * normal(r))
    }

    /// Student's t with 3 degrees of freedom: heavy tails, for the asymptotic sequence.
    fn heavy_null(runs: usize) -> Simulated {
        let asymptotic = || Decider::from(ConfidenceSequence::asymptotic(20, ALPHA).unwrap());
        simulate(runs, 18, 200, 0, (Alternative::Greater, 0.0), None, asymptotic, |r| {
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
        let asymptotic = || Decider::from(ConfidenceSequence::asymptotic(20, ALPHA).unwrap());
        let s =
            simulate(runs, 17, 4 * fixed_n, 0, (Alternative::Greater, 0.0), None, asymptotic, |r| truth + normal(r));
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
            let design = planned_effect(fixed_n, |_| 1.0);
            // At the design effect the anytime-valid sequence needs more pairs than the fixed
            // design on average (the price of peeking at every pair); at twice it, far fewer.
            let (at_design, _) = power_row(fixed_n, design, design, 1000);
            assert!(at_design.power() >= 0.8);
            let (larger, _) = power_row(fixed_n, design, 2.0 * design, 1000);
            assert!(larger.power() >= 0.8 && larger.mean_pairs() <= 0.7 * fixed_n as f64, "{larger:?}");
        }
    }

    /// An SPRT of "mean > 0" on differences in [−1, 1], planned for `effect` at 80 % power.
    /// Its decision does not depend on the sequence beside it (the asymptotic one: cheap).
    fn sprt(effect: f64) -> Decider {
        let sprt = Sprt::new(-1.0, 1.0, 0.0, effect, Alternative::Greater, ALPHA, 0.2).unwrap();
        Decider::sprt(ConfidenceSequence::asymptotic(20, ALPHA).unwrap(), sprt)
    }

    /// The two kinds of metric the SPRT rows simulate: paired 0/1 outcomes (left wins with
    /// probability 0.5 + effect, right with 0.5, independently) and bounded continuous
    /// differences (uniform on effect ± 0.6).
    #[derive(Clone, Copy, Debug)]
    enum Metric {
        Binary,
        Continuous,
    }

    impl Metric {
        fn draw(self, effect: f64, rng: &mut rand_chacha::ChaCha8Rng) -> f64 {
            match self {
                Metric::Binary => coin(rng, 0.5 + effect) - coin(rng, 0.5),
                Metric::Continuous => effect + 1.2 * (rng.random::<f64>() - 0.5),
            }
        }

        fn sd(self, effect: f64) -> f64 {
            match self {
                Metric::Binary => (0.25 + (0.5 + effect) * (0.5 - effect)).sqrt(),
                Metric::Continuous => 1.2 / 12f64.sqrt(),
            }
        }

        /// The effect a one-sided paired t test at alpha 0.05 detects with 80 % power at n.
        fn design_effect(self, fixed_n: u64) -> f64 {
            planned_effect(fixed_n, |d| self.sd(d))
        }
    }

    #[test]
    fn sprt_null_false_supported_rate_is_at_most_alpha() {
        for (metric, seed) in [(Metric::Binary, 21), (Metric::Continuous, 22)] {
            for fixed_n in [30u64, 100] {
                let effect = metric.design_effect(fixed_n);
                let s = simulate(
                    10_000,
                    seed,
                    200,
                    0,
                    (Alternative::Greater, 0.0),
                    None,
                    || sprt(effect),
                    |r| metric.draw(0.0, r),
                );
                let what = format!("{metric:?} metric, SPRT planned for {effect:.3}, no effect");
                null_rate(&what, 10_000, &s);
                // Futility stopping: under the null it stops long before the fixed design's n.
                eprintln!("  mean pairs under the null {:.1} (fixed n {fixed_n})", s.mean_pairs());
                assert!(s.mean_pairs() < 0.8 * fixed_n as f64, "{s:?}");
            }
        }
    }

    /// The reference the SPRT rows are read against: Wald's SPRT of N(E, 1) against N(0, 1) with
    /// the variance known and Ville's thresholds (1/alpha for the effect, 1/beta for futility),
    /// the best case of an anytime-valid test at the planned effect (Wald and Wolfowitz: among
    /// tests with its error rates the SPRT needs the fewest values on average there). Not a
    /// test this crate offers (real metrics do not come with their variance).
    #[test]
    fn known_variance_sprt_reference() {
        use rand::SeedableRng;
        for fixed_n in [30u64, 100] {
            let design = planned_effect(fixed_n, |_| 1.0);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(25);
            let (runs, mut supported, mut pairs) = (10_000, 0, 0u64);
            for _ in 0..runs {
                let mut llr = 0.0;
                for n in 1..=4 * fixed_n {
                    llr += design * (design + normal(&mut rng)) - design * design / 2.0;
                    if llr >= -ALPHA.ln() || llr <= 0.2f64.ln() || n == 4 * fixed_n {
                        supported += usize::from(llr >= -ALPHA.ln());
                        pairs += n;
                        break;
                    }
                }
            }
            let (power, mean) = (supported as f64 / runs as f64, pairs as f64 / runs as f64);
            eprintln!(
                "| known variance | {design:.3} | {fixed_n} | {power:.3} | {mean:.1} | {:+.0}% |",
                100.0 * (mean / fixed_n as f64 - 1.0)
            );
            // Wald's approximation, without overshoot: ((1 − β) ln(1/α) + β ln β) / (E²/2).
            let wald = (0.8 * (-ALPHA.ln()) + 0.2 * 0.2f64.ln()) / (design * design / 2.0);
            assert!(power >= 0.8 && mean >= wald && mean <= 1.25 * wald, "{power} {mean} vs Wald's {wald}");
        }
    }

    #[test]
    fn sprt_power_and_replicates_against_a_fixed_design() {
        for (metric, seed) in [(Metric::Binary, 23), (Metric::Continuous, 24)] {
            for fixed_n in [30u64, 100] {
                let design = metric.design_effect(fixed_n);
                for truth in [design, 2.0 * design] {
                    let s = simulate(
                        4000,
                        seed,
                        4 * fixed_n,
                        0,
                        (Alternative::Greater, 0.0),
                        None,
                        || sprt(design),
                        |r| metric.draw(truth, r),
                    );
                    eprintln!(
                        "| {metric:?} | {design:.3} | {fixed_n} | {truth:.3} | {:.3} | {:.1} | {} | {:+.0}% |",
                        s.power(),
                        s.mean_pairs(),
                        s.quantile_pairs(0.9),
                        100.0 * (s.mean_pairs() / fixed_n as f64 - 1.0)
                    );
                    // The planned power with about the fixed design's pairs at the planned effect
                    // (docs/SEQUENTIAL.md: 3-22 % fewer), far fewer beyond it.
                    let most = if truth == design { 1.05 } else { 0.6 } * fixed_n as f64;
                    assert!(s.power() >= 0.79 && s.mean_pairs() <= most, "{s:?}");
                }
            }
        }
    }
}

/// What `plan` says about stopping with `--until-decided`, from a pilot run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct SequentialPlan {
    /// The test the run would use.
    pub test: SequentialTest,
    /// For the SPRT: the effect it is planned for (the pilot's) and the power.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_effect: Option<f64>,
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
/// spread are the pilot's), seed 0: with the default test, and for a bounded metric also with
/// the SPRT planned for the pilot's effect at `power`. Empty without at least 2 pairs.
pub(crate) fn plan_sequential(
    experiment: &str,
    h: &Hypothesis,
    units: &[UnitResult],
    alpha: f64,
    power: f64,
    max: u64,
) -> Vec<SequentialPlan> {
    const SIMULATIONS: usize = 1000;
    let rule = StoppingRule {
        hypotheses: vec![h.to_string()],
        max_replicates: max,
        min_replicates: 0,
        min_effect: None,
        alpha,
        test: None,
        tuning: 20,
        power: None,
    };
    let Ok(mut tracker) = Tracker::new(&rule, experiment, h.clone(), 0) else { return Vec::new() };
    feed(std::slice::from_mut(&mut tracker), &rule, units.iter().collect(), |u| u.replicate, |u| u);
    let mut differences = Vec::new();
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
        return Vec::new();
    }
    let simulated = |rule: &StoppingRule| {
        let (test, _) = rule.decider(experiment, h).ok()?;
        let decider = || rule.decider(experiment, h).map(|(_, d)| d).unwrap_or_else(|_| unreachable!("made above"));
        let s = simulate(SIMULATIONS, 0, max, 0, (h.op.alternative(), h.margin), rule.min_effect, decider, |rng| {
            use rand::Rng;
            differences[rng.random_range(0..differences.len())]
        });
        Some(SequentialPlan {
            test,
            min_effect: rule.min_effect,
            max_replicates: max,
            expected: s.mean_pairs(),
            p90: s.quantile_pairs(0.9),
            power: s.power(),
            simulations: SIMULATIONS,
        })
    };
    let mut plans: Vec<SequentialPlan> = simulated(&rule).into_iter().collect();
    // The SPRT planned for the effect the pilot showed, in the claimed direction.
    let mean = differences.iter().sum::<f64>() / differences.len() as f64;
    let effect = match h.op.alternative() {
        Alternative::Greater => mean - h.margin,
        Alternative::Less => h.margin - mean,
        Alternative::TwoSided => (mean - h.margin).abs(),
    };
    let sprt =
        StoppingRule { test: Some(SequentialTest::Sprt), min_effect: Some(effect), power: Some(power), ..rule.clone() };
    if effect > 0.0 && sprt.check(experiment).is_ok() {
        plans.extend(simulated(&sprt));
    }
    plans
}
