//! Deciding a run's hypotheses: which test, its p-value, the effect and its interval, the
//! correction across hypotheses, and a verdict that explains itself.
//!
//! # The default test, and why
//!
//! Metrics are often 0/1 (a game won or lost) and replicates few (3 to 30), so the default must
//! not lean on normality or large samples. It is a **permutation test of the difference in
//! means**, exact whenever the arrangements can be enumerated:
//!
//! * **Paired** (the conditions share the seed of each replicate — the default seed policy —
//!   and have the same replicates): the **sign-flip test** on the per-replicate differences.
//!   Shared seeds make the conditions meet the same randomness ("common random numbers"), so the
//!   differences cancel that noise; under the null each difference is symmetric about the
//!   margin, and every pattern of signs is equally likely. For 0/1 metrics it is the exact
//!   McNemar test.
//! * **Unpaired** otherwise: the two-sample permutation test (labels reshuffled). For 0/1
//!   metrics it is Fisher's exact test conditional on the total number of successes.
//!
//! Both are exact at small n (every arrangement counted, up to
//! [`PermutationOptions::max_exact`]), seeded Monte Carlo with the (b + 1)/(B + 1) correction
//! beyond; both are valid for any distribution, ties included. Their discreteness is also what
//! lets the verdict say when n is too small for *any* result to be significant.
//!
//! The interval of the effect is the t interval (paired-t when paired, Welch otherwise): at
//! n = 10 it keeps its 95 % coverage (see the calibration tests), where percentile and BCa
//! bootstrap intervals under-cover; it is also deterministic. For 0/1 metrics it is Newcombe's
//! hybrid score interval for a difference of proportions (paired or not), which stays in
//! [−1, 1]; a metric with declared bounds (`#[crystallize(bounds = ...)]`, a bool, an unsigned
//! integer) never gets an interval beyond what its bounds allow. A user can name another test
//! ([`TestKind`]); all hypotheses of a run are corrected together (Holm by default).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use thiserror::Error;

use super::parse::{Hypothesis, Operand};
use crate::error::suggest;
use crate::runner::UnitResult;
use crate::stats::permutation::{independent_arrangements, paired_arrangements, smallest_p};
use crate::stats::{self, Alternative, Correction, Design, Interval, PermutationOptions, RankMethod, StatsError};
use crate::unit_table::{UnitRow, UnitTable};

/// A statistical test a hypothesis can be decided with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TestKind {
    /// Sign-flip permutation test of the paired differences (the default when paired).
    PairedPermutation,
    /// Two-sample permutation test of the difference in means (the default when unpaired).
    Permutation,
    /// Paired t test.
    PairedT,
    /// Welch's two-sample t test.
    WelchT,
    /// Student's two-sample t test (pooled variance).
    StudentT,
    /// Mann–Whitney U test.
    MannWhitney,
    /// Wilcoxon signed-rank test of the paired differences.
    Wilcoxon,
    /// Fisher's exact test, for 0/1 metrics.
    Fisher,
}

impl TestKind {
    /// Every test, in the order of the documentation.
    pub const ALL: [TestKind; 8] = [
        TestKind::PairedPermutation,
        TestKind::Permutation,
        TestKind::PairedT,
        TestKind::WelchT,
        TestKind::StudentT,
        TestKind::MannWhitney,
        TestKind::Wilcoxon,
        TestKind::Fisher,
    ];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            TestKind::PairedPermutation => "paired-permutation",
            TestKind::Permutation => "permutation",
            TestKind::PairedT => "paired-t",
            TestKind::WelchT => "welch-t",
            TestKind::StudentT => "student-t",
            TestKind::MannWhitney => "mann-whitney",
            TestKind::Wilcoxon => "wilcoxon",
            TestKind::Fisher => "fisher",
        }
    }

    /// Whether the test pairs replicate k of one condition with replicate k of the other.
    pub fn is_paired(self) -> bool {
        matches!(self, TestKind::PairedPermutation | TestKind::PairedT | TestKind::Wilcoxon)
    }

    fn describe(self) -> &'static str {
        match self {
            TestKind::PairedPermutation => "paired permutation test (sign flips)",
            TestKind::Permutation => "permutation test",
            TestKind::PairedT => "paired t test",
            TestKind::WelchT => "Welch's t test",
            TestKind::StudentT => "Student's t test",
            TestKind::MannWhitney => "Mann–Whitney U test",
            TestKind::Wilcoxon => "Wilcoxon signed-rank test",
            TestKind::Fisher => "Fisher's exact test",
        }
    }
}

impl fmt::Display for TestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TestKind {
    type Err = String;

    /// Accepts the [`TestKind::name`]s and a few aliases (`sign-flip`, `welch`, `student`,
    /// `mann-whitney-u`, `fisher-exact`, with `_` for `-`).
    fn from_str(text: &str) -> Result<TestKind, String> {
        let key = text.trim().to_ascii_lowercase().replace('_', "-");
        let kind = match key.as_str() {
            "sign-flip" => Some(TestKind::PairedPermutation),
            "welch" => Some(TestKind::WelchT),
            "student" | "t" => Some(TestKind::StudentT),
            "mann-whitney-u" | "mwu" => Some(TestKind::MannWhitney),
            "wilcoxon-signed-rank" => Some(TestKind::Wilcoxon),
            "fisher-exact" => Some(TestKind::Fisher),
            _ => TestKind::ALL.into_iter().find(|k| k.name() == key),
        };
        kind.ok_or_else(|| {
            let names: Vec<&str> = TestKind::ALL.iter().map(|k| k.name()).collect();
            let hint = suggest(&key, &names).map(|s| format!("; did you mean '{s}'?")).unwrap_or_default();
            format!("unknown test '{text}'{hint}; tests: {}", names.join(", "))
        })
    }
}

/// How to evaluate a run's hypotheses.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalOptions {
    /// Significance level, applied to the corrected p-values (default 0.05). The effect's
    /// interval has confidence 1 − alpha.
    pub alpha: f64,
    /// Correction across all hypotheses of the run (default Holm).
    pub correction: Correction,
    /// The test to use; `None` chooses (see the module documentation).
    pub test: Option<TestKind>,
    /// The smallest difference that matters. With it, a difference whose interval reaches
    /// inside ±`min_effect` (around the margin) is "within noise" rather than supported.
    pub min_effect: Option<f64>,
    /// Enumeration limit, Monte Carlo resamples and seed of permutation tests. Each
    /// hypothesis's Monte Carlo stream is derived from this seed and the hypothesis's text, so
    /// adding a hypothesis does not change the others.
    pub permutation: PermutationOptions,
    /// The power used when saying how many replicates would be needed (default 0.8).
    pub power: f64,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            alpha: 0.05,
            correction: Correction::Holm,
            test: None,
            min_effect: None,
            permutation: PermutationOptions::default(),
            power: 0.8,
        }
    }
}

/// What went into one side of a hypothesis.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Side {
    /// The condition as written.
    pub condition: String,
    /// The metric.
    pub metric: String,
    /// Values used (successful units that recorded the metric).
    pub n: usize,
    /// Their mean.
    pub mean: f64,
    /// Their standard deviation (n − 1); `None` below 2 values.
    pub sd: Option<f64>,
}

/// The outcome of a hypothesis.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Verdict {
    /// The corrected p-value is at most alpha (and, with a minimum effect, the interval clears
    /// the noise band).
    Supported,
    /// The test could have been significant but was not.
    NotSupported,
    /// The data cannot decide: too few replicates for any result to be significant, or a
    /// statistic that is undefined for these data.
    Inconclusive {
        /// Why, and what n would be needed.
        reason: String,
    },
    /// With a minimum effect: the difference, significant or not, is not shown to exceed it.
    WithinNoise {
        /// Why.
        reason: String,
    },
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Supported => "supported",
            Verdict::NotSupported => "not supported",
            Verdict::Inconclusive { .. } => "inconclusive",
            Verdict::WithinNoise { .. } => "within noise",
        })
    }
}

/// The evaluation of one hypothesis.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HypothesisResult {
    /// The hypothesis, in canonical spelling.
    pub hypothesis: String,
    /// The left side's data.
    pub left: Side,
    /// The right side's data.
    pub right: Side,
    /// The margin added to the right side.
    pub margin: f64,
    /// The alternative about `left − right − margin`.
    pub alternative: Alternative,
    /// The test used.
    pub test: TestKind,
    /// How the test ran (exact with how many arrangements, Monte Carlo, method).
    pub test_detail: String,
    /// Whether replicates were paired.
    pub paired: bool,
    /// Why they were or were not paired.
    pub pairing: String,
    /// The observed difference `mean(left) − mean(right)`.
    pub effect: f64,
    /// The interval of `effect` at 1 − alpha: Newcombe's hybrid score interval when both sides
    /// are 0/1 (it stays in [−1, 1]), otherwise paired-t or Welch, clamped to what a metric's
    /// declared bounds allow; `None` below 2 values a side.
    pub ci: Option<Interval>,
    /// Hedges' g, when defined.
    pub hedges_g: Option<f64>,
    /// `effect / |mean(right)|`, when defined.
    pub relative_change: Option<f64>,
    /// The test's p-value; `None` when the test could not run on these data.
    pub p: Option<f64>,
    /// The p-value corrected across all hypotheses of the run.
    pub p_adjusted: Option<f64>,
    /// The correction applied.
    pub correction: Correction,
    /// How many hypotheses were corrected together.
    pub hypotheses_in_run: usize,
    /// The significance level.
    pub alpha: f64,
    /// The minimum effect, when given.
    pub min_effect: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
    /// One paragraph a person can read: the numbers behind the verdict.
    pub explanation: String,
}

/// A hypothesis that cannot be evaluated against these results.
#[derive(Debug, Error)]
pub enum HypothesisError {
    /// No unit of the run recorded the metric.
    #[error(
        "hypothesis '{hypothesis}': condition '{condition}' has no metric '{metric}'{}; its metrics: {valid}",
        suggestion.as_ref().map(|s| format!("; did you mean '{s}'?")).unwrap_or_default()
    )]
    UnknownMetric {
        /// The hypothesis.
        hypothesis: String,
        /// The condition.
        condition: String,
        /// What was written.
        metric: String,
        /// The closest recorded metric.
        suggestion: Option<String>,
        /// Every recorded metric of the condition.
        valid: String,
    },
    /// The results hold no unit of the condition.
    #[error("hypothesis '{hypothesis}': the results have no unit of condition '{condition}'; conditions: {available}")]
    NoResults {
        /// The hypothesis.
        hypothesis: String,
        /// The condition.
        condition: String,
        /// The conditions present.
        available: String,
    },
    /// Every unit of the condition failed.
    #[error(
        "hypothesis '{hypothesis}': all {failed} units of condition '{condition}' failed; there is nothing to compare"
    )]
    AllFailed {
        /// The hypothesis.
        hypothesis: String,
        /// The condition.
        condition: String,
        /// How many failed.
        failed: usize,
    },
    /// The condition name exists in several experiments of the results.
    #[error(
        "hypothesis '{hypothesis}': '{condition}' is a condition of several experiments; write one of: {candidates}"
    )]
    AmbiguousCondition {
        /// The hypothesis.
        hypothesis: String,
        /// The condition.
        condition: String,
        /// `EXPERIMENT/CONDITION` spellings.
        candidates: String,
    },
    /// A unit recorded NaN or an infinity.
    #[error(
        "hypothesis '{hypothesis}': replicate {replicate} of condition '{condition}' recorded {metric} = {value}; a \
         NaN or an infinity has no place in a mean or a rank: fix the experiment or drop the metric"
    )]
    NonFinite {
        /// The hypothesis.
        hypothesis: String,
        /// The condition.
        condition: String,
        /// The replicate.
        replicate: u64,
        /// The metric.
        metric: String,
        /// The value.
        value: f64,
    },
    /// The named test needs data it does not have (pairs, 0/1 values, no margin).
    #[error("hypothesis '{hypothesis}': the {test} cannot be used: {why}")]
    TestNotApplicable {
        /// The hypothesis.
        hypothesis: String,
        /// The test.
        test: TestKind,
        /// Why.
        why: String,
    },
    /// Invalid evaluation options (alpha, power, minimum effect).
    #[error("invalid hypothesis options: {0}")]
    InvalidOptions(#[source] StatsError),
    /// Invalid options or data for a statistic.
    #[error("hypothesis '{hypothesis}': {source}")]
    Stats {
        /// The hypothesis.
        hypothesis: String,
        /// What the statistics module said.
        #[source]
        source: StatsError,
    },
}

/// Checks that both conditions of `hypothesis` are among `known_conditions`, so a command can
/// reject a misspelt condition before any unit runs.
pub fn validate_conditions(hypothesis: &Hypothesis, known_conditions: &[&str]) -> Result<(), crate::Error> {
    for name in hypothesis.conditions() {
        if !known_conditions.contains(&name) {
            return Err(crate::Error::UnknownCondition {
                name: name.to_owned(),
                suggestion: suggest(name, known_conditions),
                valid: known_conditions.join(", "),
            });
        }
    }
    Ok(())
}

/// The values of one side, by replicate, with each unit's seed.
struct Values {
    by_replicate: BTreeMap<u64, (f64, u64)>,
    /// The metric's declared bounds (see `registry::declared_bounds`).
    bounds: Option<(f64, f64)>,
}

impl Values {
    fn values(&self) -> Vec<f64> {
        self.by_replicate.values().map(|(v, _)| *v).collect()
    }
}

fn unit_matches(unit: &UnitRow<'_>, condition: &str) -> bool {
    match condition.split_once('/') {
        Some((experiment, name)) => unit.experiment() == experiment && unit.condition() == name,
        None => unit.condition() == condition,
    }
}

fn collect(text: &str, operand: &Operand, units: &UnitTable) -> Result<Values, HypothesisError> {
    let mine: Vec<UnitRow<'_>> = units.iter().filter(|u| unit_matches(u, &operand.condition)).collect();
    if mine.is_empty() {
        let available: BTreeSet<&str> = units.iter().map(|u| u.condition()).collect();
        return Err(HypothesisError::NoResults {
            hypothesis: text.to_owned(),
            condition: operand.condition.clone(),
            available: available.into_iter().collect::<Vec<_>>().join(", "),
        });
    }
    let experiments: BTreeSet<&str> = mine.iter().map(|u| u.experiment()).collect();
    if experiments.len() > 1 {
        return Err(HypothesisError::AmbiguousCondition {
            hypothesis: text.to_owned(),
            condition: operand.condition.clone(),
            candidates: experiments.iter().map(|e| format!("{e}/{}", operand.condition)).collect::<Vec<_>>().join(", "),
        });
    }
    let ok: Vec<UnitRow<'_>> = mine.iter().copied().filter(|u| u.is_ok()).collect();
    if ok.is_empty() {
        return Err(HypothesisError::AllFailed {
            hypothesis: text.to_owned(),
            condition: operand.condition.clone(),
            failed: mine.len(),
        });
    }
    let mut by_replicate = BTreeMap::new();
    let metric = units.metric_index(&operand.metric);
    for unit in &ok {
        if let Some(value) = metric.and_then(|id| unit.metric_at(id)) {
            if !value.is_finite() {
                return Err(HypothesisError::NonFinite {
                    hypothesis: text.to_owned(),
                    condition: operand.condition.clone(),
                    replicate: unit.replicate(),
                    metric: operand.metric.clone(),
                    value,
                });
            }
            by_replicate.insert(unit.replicate(), (value, unit.seed()));
        }
    }
    if by_replicate.is_empty() {
        let names: BTreeSet<&str> = ok.iter().flat_map(|u| u.metrics().map(|(name, _)| name)).collect();
        let names: Vec<&str> = names.into_iter().collect();
        return Err(HypothesisError::UnknownMetric {
            hypothesis: text.to_owned(),
            condition: operand.condition.clone(),
            metric: operand.metric.clone(),
            suggestion: suggest(&operand.metric, &names),
            valid: if names.is_empty() { "(none recorded)".to_owned() } else { names.join(", ") },
        });
    }
    let bounds = crate::registry::declared_bounds(ok[0].experiment(), &operand.metric);
    Ok(Values { by_replicate, bounds })
}

/// Whether the two sides can be paired replicate by replicate, and why (not).
fn pairing(left: &Values, right: &Values, seeds_shared: bool) -> (bool, String) {
    if !seeds_shared {
        return (false, "unpaired: the run gave each condition its own seeds (per-condition seed policy)".into());
    }
    let l: BTreeSet<u64> = left.by_replicate.keys().copied().collect();
    let r: BTreeSet<u64> = right.by_replicate.keys().copied().collect();
    if l != r {
        let only_left: Vec<String> = l.difference(&r).map(u64::to_string).collect();
        let only_right: Vec<String> = r.difference(&l).map(u64::to_string).collect();
        let mut parts = Vec::new();
        if !only_left.is_empty() {
            parts.push(format!("only the left side has replicates {}", only_left.join(", ")));
        }
        if !only_right.is_empty() {
            parts.push(format!("only the right side has replicates {}", only_right.join(", ")));
        }
        return (
            false,
            format!("unpaired: the replicate sets differ ({}; failed units or missing metrics)", parts.join("; ")),
        );
    }
    if let Some(k) = l.iter().find(|k| left.by_replicate[k].1 != right.by_replicate[k].1) {
        return (false, format!("unpaired: replicate {k} has different seeds in the two conditions"));
    }
    (true, format!("paired: both conditions ran replicates with the same seeds ({} pairs)", l.len()))
}

/// The smallest p-value the test can produce with these sizes, for tests whose null
/// distribution is discrete (`None` for t tests and asymptotic rank tests).
fn floor_p(
    kind: TestKind,
    n_left: usize,
    n_right: usize,
    alternative: Alternative,
    options: &PermutationOptions,
) -> Option<f64> {
    match kind {
        TestKind::PairedPermutation => {
            let arrangements = paired_arrangements(n_left);
            let exact = arrangements <= options.max_exact;
            Some(smallest_p(if exact { arrangements } else { options.resamples as u64 }, exact, alternative))
        }
        TestKind::Permutation => {
            let arrangements = independent_arrangements(n_left, n_right);
            let exact = arrangements <= options.max_exact;
            Some(smallest_p(if exact { arrangements } else { options.resamples as u64 }, exact, alternative))
        }
        TestKind::Fisher => Some(smallest_p(independent_arrangements(n_left, n_right), true, alternative)),
        TestKind::MannWhitney if n_left.min(n_right) <= 8 => {
            Some(smallest_p(independent_arrangements(n_left, n_right), true, alternative))
        }
        TestKind::Wilcoxon if n_left <= 50 => Some(smallest_p(paired_arrangements(n_left), true, alternative)),
        _ => None,
    }
}

/// The fewest replicates per condition (pairs, for a paired test) with which `test` can give
/// p ≤ `alpha` at all: below it, every outcome is [`Verdict::Inconclusive`]. Tests whose
/// p-values have no floor (t tests, rank tests beyond their exact range) need 2. `None` when
/// not even 200 are enough (an alpha too small for the Monte Carlo resamples of `options`).
pub fn min_replicates(
    test: TestKind,
    alternative: Alternative,
    alpha: f64,
    options: &PermutationOptions,
) -> Option<usize> {
    if floor_p(test, 2, 2, alternative, options).is_none() {
        return Some(2);
    }
    n_for_possible(test, alternative, alpha, options)
}

/// The smallest equal n per side at which the test's floor allows p ≤ alpha.
fn n_for_possible(kind: TestKind, alternative: Alternative, alpha: f64, options: &PermutationOptions) -> Option<usize> {
    (1..=200).find(|&n| floor_p(kind, n, n, alternative, options).is_some_and(|p| p <= alpha))
}

/// Formats a number with 4 significant digits, without trailing zeros.
fn num(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let magnitude = x.abs().log10().floor() as i32;
    if !(-4..6).contains(&magnitude) {
        return format!("{x:.3e}");
    }
    let decimals = (3 - magnitude).max(0) as usize;
    let text = format!("{x:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

struct TestOutcome {
    p: Result<f64, StatsError>,
    detail: String,
}

fn run_test(
    kind: TestKind,
    x: &[f64],
    y: &[f64],
    margin: f64,
    alternative: Alternative,
    options: &PermutationOptions,
) -> TestOutcome {
    let shifted: Vec<f64> = x.iter().map(|v| v - margin).collect();
    match kind {
        TestKind::PairedPermutation | TestKind::Permutation => {
            let result = if kind == TestKind::PairedPermutation {
                stats::paired_permutation_test(x, y, margin, alternative, options)
            } else {
                stats::permutation_test(x, y, margin, alternative, options)
            };
            let unit = if kind == TestKind::PairedPermutation { "sign patterns" } else { "arrangements" };
            let detail = match &result {
                Ok(r) if r.exact => format!("exact: all {} {unit} enumerated", r.arrangements),
                Ok(r) => format!("Monte Carlo: {} random {unit}, p = (b + 1)/(B + 1)", r.arrangements),
                Err(_) => String::new(),
            };
            TestOutcome { p: result.map(|r| r.p), detail }
        }
        TestKind::PairedT | TestKind::WelchT | TestKind::StudentT => {
            let result = match kind {
                TestKind::PairedT => stats::paired_t(x, y, margin, alternative),
                TestKind::WelchT => stats::welch_t(x, y, margin, alternative),
                _ => stats::student_t(x, y, margin, alternative),
            };
            let detail =
                result.as_ref().map(|r| format!("t = {}, df = {}", num(r.statistic), num(r.df))).unwrap_or_default();
            TestOutcome { p: result.map(|r| r.p), detail }
        }
        TestKind::MannWhitney => {
            let result = stats::mann_whitney_u(&shifted, y, alternative, RankMethod::Auto, true);
            let detail = result
                .as_ref()
                .map(|r| {
                    format!(
                        "U = {}, {}",
                        num(r.u),
                        if r.method == RankMethod::Exact { "exact" } else { "normal approximation" }
                    )
                })
                .unwrap_or_default();
            TestOutcome { p: result.map(|r| r.p), detail }
        }
        TestKind::Wilcoxon => {
            let d: Vec<f64> = shifted.iter().zip(y).map(|(a, b)| a - b).collect();
            let result = stats::wilcoxon_signed_rank(&d, alternative, RankMethod::Auto, false);
            let detail = result
                .as_ref()
                .map(|r| {
                    format!(
                        "W+ = {}, {} non-zero differences, {}",
                        num(r.r_plus),
                        r.n,
                        if r.method == RankMethod::Exact { "exact" } else { "normal approximation" }
                    )
                })
                .unwrap_or_default();
            TestOutcome { p: result.map(|r| r.p), detail }
        }
        TestKind::Fisher => {
            let result = stats::fisher_exact_binary(x, y, alternative);
            let detail = result.as_ref().map(|r| format!("odds ratio {}", num(r.odds_ratio))).unwrap_or_default();
            TestOutcome { p: result.map(|r| r.p), detail }
        }
    }
}

/// Everything computed for one hypothesis before the correction.
struct Partial {
    result: HypothesisResult,
    floor: Option<f64>,
    test_error: Option<StatsError>,
    /// (sd of the noise, design) for power statements.
    noise: Option<(f64, Design)>,
    n: usize,
}

/// Evaluates every hypothesis of a run against its unit results.
///
/// `seeds_shared` says whether the run used the shared seed policy (replicate k has the same
/// seed in every condition); pairing also requires both sides to have the same replicates, each
/// with equal seeds (checked on the units). Errors are reserved for hypotheses that do not fit
/// the results (unknown metric, missing condition, NaN values, a named test that does not
/// apply); data that cannot decide give an [`Verdict::Inconclusive`] verdict instead.
pub fn evaluate(
    hypotheses: &[Hypothesis],
    units: &[UnitResult],
    seeds_shared: bool,
    options: &EvalOptions,
) -> Result<Vec<HypothesisResult>, HypothesisError> {
    evaluate_table(hypotheses, &UnitTable::from_results(units), seeds_shared, options)
}

/// [`evaluate`] on the units of a [`UnitTable`] (the report of a stored run holds them so).
pub(crate) fn evaluate_table(
    hypotheses: &[Hypothesis],
    units: &UnitTable,
    seeds_shared: bool,
    options: &EvalOptions,
) -> Result<Vec<HypothesisResult>, HypothesisError> {
    let invalid = |name: &'static str, value: f64, why: &'static str| {
        HypothesisError::InvalidOptions(StatsError::InvalidArgument { name, value: value.to_string(), why })
    };
    if !(options.alpha > 0.0 && options.alpha < 1.0) {
        return Err(invalid("alpha", options.alpha, "the significance level lies strictly between 0 and 1, e.g. 0.05"));
    }
    if let Some(m) = options.min_effect {
        if !(m >= 0.0 && m.is_finite()) {
            return Err(invalid("min effect", m, "the minimum effect is a finite difference ≥ 0"));
        }
    }
    if !(options.power > options.alpha && options.power < 1.0) {
        return Err(invalid("power", options.power, "the power lies strictly between alpha and 1, e.g. 0.8"));
    }
    let mut partials = Vec::with_capacity(hypotheses.len());
    for hypothesis in hypotheses {
        partials.push(evaluate_one(hypothesis, units, seeds_shared, options)?);
    }
    let raw: Vec<f64> = partials.iter().map(|p| p.result.p.unwrap_or(1.0)).collect();
    let adjusted = options.correction.adjust(&raw).map_err(HypothesisError::InvalidOptions)?;
    let m = partials.len();
    Ok(partials
        .into_iter()
        .zip(adjusted)
        .map(|(mut partial, adjusted)| {
            partial.result.hypotheses_in_run = m;
            partial.result.p_adjusted = partial.result.p.map(|_| adjusted);
            let (verdict, explanation) = decide(&partial, options, m);
            partial.result.verdict = verdict;
            partial.result.explanation = explanation;
            partial.result
        })
        .collect())
}

fn side(operand: &Operand, values: &[f64]) -> Side {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    let sd = (n > 1).then(|| (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt());
    Side { condition: operand.condition.clone(), metric: operand.metric.clone(), n, mean, sd }
}

fn evaluate_one(
    hypothesis: &Hypothesis,
    units: &UnitTable,
    seeds_shared: bool,
    options: &EvalOptions,
) -> Result<Partial, HypothesisError> {
    let text = hypothesis.to_string();
    let left = collect(&text, &hypothesis.left, units)?;
    let right = collect(&text, &hypothesis.right, units)?;
    let (pairable, pairing_reason) = pairing(&left, &right, seeds_shared);
    let kind = match options.test {
        Some(kind) if kind.is_paired() && !pairable => {
            return Err(HypothesisError::TestNotApplicable {
                hypothesis: text,
                test: kind,
                why: format!("it pairs replicates, but these sides cannot be paired ({pairing_reason})"),
            })
        }
        Some(TestKind::Fisher) if hypothesis.margin != 0.0 => {
            return Err(HypothesisError::TestNotApplicable {
                hypothesis: text,
                test: TestKind::Fisher,
                why: "it compares two proportions and has no way to test a margin; drop the margin or use the \
                      permutation test"
                    .into(),
            })
        }
        Some(kind) => kind,
        None if pairable => TestKind::PairedPermutation,
        None => TestKind::Permutation,
    };
    let paired = kind.is_paired();
    let pairing = if pairable && !paired {
        format!("unpaired: the {} does not pair replicates (they could have been paired)", kind.describe())
    } else {
        pairing_reason
    };
    let (x, y) = (left.values(), right.values());
    let alternative = hypothesis.op.alternative();
    let permutation = PermutationOptions {
        seed: crate::seed::mix(options.permutation.seed ^ crate::seed::fnv1a(text.as_bytes())),
        ..options.permutation
    };
    let outcome = run_test(kind, &x, &y, hypothesis.margin, alternative, &permutation);
    if let Err(error @ StatsError::NotBinary { .. }) = &outcome.p {
        return Err(HypothesisError::TestNotApplicable { hypothesis: text, test: kind, why: error.to_string() });
    }
    let level = 1.0 - options.alpha;
    let difference = stats::mean_difference(&x, &y, paired, level).ok();
    let effect = match &difference {
        Some(d) => d.estimate,
        None => x.iter().sum::<f64>() / x.len() as f64 - y.iter().sum::<f64>() / y.len() as f64,
    };
    let ci = difference.as_ref().map(|d| range_respecting_interval(&x, &y, paired, d.ci, left.bounds, right.bounds));
    let noise = if paired {
        let d: Vec<f64> = x.iter().zip(&y).map(|(a, b)| a - b).collect();
        side(&hypothesis.left, &d).sd.map(|sd| (sd, Design::Paired))
    } else {
        match (side(&hypothesis.left, &x).sd, side(&hypothesis.right, &y).sd) {
            (Some(a), Some(b)) => {
                let (nx, ny) = (x.len() as f64, y.len() as f64);
                Some((((nx - 1.0) * a * a + (ny - 1.0) * b * b) / (nx + ny - 2.0)).sqrt())
                    .map(|sd| (sd, Design::Independent))
            }
            _ => None,
        }
    };
    let floor = floor_p(kind, x.len(), y.len(), alternative, &options.permutation);
    let (p, test_error) = match outcome.p {
        Ok(p) => (Some(p), None),
        Err(error) => (None, Some(error)),
    };
    let result = HypothesisResult {
        hypothesis: text,
        left: side(&hypothesis.left, &x),
        right: side(&hypothesis.right, &y),
        margin: hypothesis.margin,
        alternative,
        test: kind,
        test_detail: outcome.detail,
        paired,
        pairing,
        effect,
        ci,
        hedges_g: stats::hedges_g(&x, &y).ok(),
        relative_change: stats::relative_change(&x, &y).ok(),
        p,
        p_adjusted: None,
        correction: options.correction,
        hypotheses_in_run: 0,
        alpha: options.alpha,
        min_effect: options.min_effect,
        verdict: Verdict::NotSupported,
        explanation: String::new(),
    };
    Ok(Partial { result, floor, test_error, noise: noise.filter(|(sd, _)| *sd > 0.0), n: x.len().min(y.len()) })
}

/// The interval of a difference that respects the metrics' range: Newcombe's hybrid score
/// interval when both sides are 0/1 (and not declared wider), the t interval `t` otherwise,
/// clamped to ±(high − low) when the metric is declared bounded.
fn range_respecting_interval(
    x: &[f64],
    y: &[f64],
    paired: bool,
    t: Interval,
    left: Option<(f64, f64)>,
    right: Option<(f64, f64)>,
) -> Interval {
    let bounds = match (left, right) {
        (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
        (one, other) => one.or(other),
    };
    let within_unit = bounds.is_none_or(|(low, high)| low >= 0.0 && high <= 1.0);
    if within_unit && stats::is_binary(x) && stats::is_binary(y) {
        if let Ok(interval) = stats::newcombe_difference(x, y, paired, t.level) {
            return interval;
        }
    }
    match bounds {
        Some((low, high)) if (high - low).is_finite() => stats::clamp_interval(t, low - high, high - low),
        _ => t,
    }
}

/// How many replicates per condition a t test would need to detect `effect` with the options'
/// power, as a sentence; `None` when it cannot be said.
fn power_sentence(partial: &Partial, effect: f64, what: &str, options: &EvalOptions) -> Option<String> {
    let (sd, design) = partial.noise?;
    let alternative = partial.result.alternative;
    let signed = match alternative {
        Alternative::Less => -effect.abs(),
        _ => effect.abs(),
    };
    let n = stats::n_per_side(signed, sd, options.alpha, options.power, alternative, design).ok()?;
    let unit = if design == Design::Paired { "pairs of replicates" } else { "replicates per condition" };
    let noise = if design == Design::Paired { "sd of the paired differences" } else { "pooled sd" };
    Some(format!(
        "to detect {what} of {} with {}% power at alpha = {} given the observed noise ({noise} {}), about {n} {unit} \
         would be needed (t-test approximation; this run has {})",
        num(effect.abs()),
        num(options.power * 100.0),
        num(options.alpha),
        num(sd),
        partial.n
    ))
}

fn decide(partial: &Partial, options: &EvalOptions, m: usize) -> (Verdict, String) {
    let r = &partial.result;
    let alpha = options.alpha;
    let test = r.test.describe();
    let shifted_effect = r.effect - r.margin;
    let what = match options.min_effect {
        Some(min) if min > 0.0 => ("the minimum effect", min),
        _ => ("the observed difference", shifted_effect),
    };
    let power = || power_sentence(partial, what.1, what.0, options);
    let direction = match r.alternative {
        Alternative::Greater => "higher than",
        Alternative::Less => "lower than",
        Alternative::TwoSided => "different from",
    };
    let margin_text = if r.margin != 0.0 {
        format!(" {} {}", if r.margin > 0.0 { "+" } else { "-" }, num(r.margin.abs()))
    } else {
        String::new()
    };
    let summary = format!(
        "{}.{} (mean {}, n = {}) vs {}.{} (mean {}, n = {}): difference {}{}",
        r.left.condition,
        r.left.metric,
        num(r.left.mean),
        r.left.n,
        r.right.condition,
        r.right.metric,
        num(r.right.mean),
        r.right.n,
        num(r.effect),
        r.ci.map(|ci| format!(" ({}% CI {} to {})", num(ci.level * 100.0), num(ci.low), num(ci.high)))
            .unwrap_or_default()
    );

    // 1. Data that cannot decide.
    if let Some(error) = &partial.test_error {
        let reason = format!("the {test} cannot be computed on these data: {error}");
        return (Verdict::Inconclusive { reason: reason.clone() }, format!("{summary}. Inconclusive: {reason}."));
    }
    let p = r.p.unwrap_or(1.0);
    let p_adjusted = r.p_adjusted.unwrap_or(1.0);
    if let Some(floor) = partial.floor.filter(|floor| *floor > alpha) {
        let needed = n_for_possible(r.test, r.alternative, alpha, &options.permutation);
        let sides =
            if r.paired { format!("{} pairs", partial.n) } else { format!("n = {} and {}", r.left.n, r.right.n) };
        let mut reason = format!(
            "with {sides}, the smallest p-value a {}{test} can give is {}, so no outcome could reach p ≤ {}",
            if r.alternative == Alternative::TwoSided { "two-sided " } else { "one-sided " },
            num(floor),
            num(alpha)
        );
        if let Some(needed) = needed {
            reason.push_str(&format!(
                "; at least {needed} {} are needed for that to be possible",
                if r.paired { "pairs of replicates" } else { "replicates per condition" }
            ));
        }
        if let Some(power) = power() {
            reason.push_str(&format!("; {power}"));
        }
        return (Verdict::Inconclusive { reason: reason.clone() }, format!("{summary}. Inconclusive: {reason}."));
    }

    let correction = match (options.correction, m) {
        (_, 1) | (Correction::None, _) => String::new(),
        (Correction::Holm, _) => format!(", Holm-adjusted over {m} hypotheses p = {}", num(p_adjusted)),
        (Correction::BenjaminiHochberg, _) => {
            format!(", Benjamini–Hochberg-adjusted over {m} hypotheses p = {}", num(p_adjusted))
        }
    };
    let evidence = format!("{test} ({}), p = {}{correction}", r.test_detail, num(p));
    // The interval, moved so that 0 means "exactly the margin".
    let band = options.min_effect;
    let (low, high) = r.ci.map(|ci| (ci.low - r.margin, ci.high - r.margin)).unwrap_or((f64::NAN, f64::NAN));
    if p_adjusted <= alpha {
        if let Some(band) = band {
            let clears = match r.alternative {
                Alternative::Greater => low > band,
                Alternative::Less => high < -band,
                Alternative::TwoSided => low > band || high < -band,
            };
            if !clears {
                let reason = format!(
                    "the difference is significant ({evidence} ≤ {}), but its interval reaches inside the noise band: \
                     a difference of at most {} from the margin is not ruled out",
                    num(alpha),
                    num(band)
                );
                return (
                    Verdict::WithinNoise { reason: reason.clone() },
                    format!("{summary}. Within noise: {reason}."),
                );
            }
        }
        return (
            Verdict::Supported,
            format!(
                "{summary}. Supported: {}.{} is {direction} {}.{}{margin_text}; {evidence} ≤ {}.",
                r.left.condition,
                r.left.metric,
                r.right.condition,
                r.right.metric,
                num(alpha)
            ),
        );
    }
    if let Some(band) = band {
        if low >= -band && high <= band {
            let reason = format!(
                "not significant ({evidence}), and the whole interval lies within ±{} of the margin: any difference is \
                 smaller than the minimum effect",
                num(band)
            );
            return (Verdict::WithinNoise { reason: reason.clone() }, format!("{summary}. Within noise: {reason}."));
        }
    }
    let mut explanation = format!("{summary}. Not supported: {evidence} > {}", num(alpha));
    if p <= alpha && m > 1 {
        explanation.push_str(&format!(
            " (p ≤ {} on its own, but not after correcting for the {m} hypotheses of the run)",
            num(alpha)
        ));
    }
    let wrong_way = match r.alternative {
        Alternative::Greater => shifted_effect < 0.0,
        Alternative::Less => shifted_effect > 0.0,
        Alternative::TwoSided => false,
    };
    if wrong_way {
        explanation.push_str("; the observed difference goes the other way");
    } else if let Some(power) = power() {
        explanation.push_str(&format!("; {power}"));
    }
    explanation.push('.');
    (Verdict::NotSupported, explanation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::UnitStatus;

    fn unit(condition: &str, replicate: u64, seed: u64, metrics: &[(&str, f64)]) -> UnitResult {
        UnitResult {
            experiment: "exp".into(),
            condition: condition.into(),
            replicate,
            seed,
            status: UnitStatus::Ok,
            error: None,
            metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            records: Vec::new(),
            duration_ms: 1.0,
            attempts: Vec::new(),
            cache: Default::default(),
        }
    }

    fn run(left: &[f64], right: &[f64]) -> Vec<UnitResult> {
        let mut units: Vec<UnitResult> =
            left.iter().enumerate().map(|(k, v)| unit("treated", k as u64, 100 + k as u64, &[("acc", *v)])).collect();
        units.extend(right.iter().enumerate().map(|(k, v)| unit("baseline", k as u64, 100 + k as u64, &[("acc", *v)])));
        units
    }

    fn h(text: &str) -> Hypothesis {
        text.parse().unwrap()
    }

    #[test]
    fn three_replicates_are_inconclusive_and_say_what_is_needed() {
        let units = run(&[0.9, 0.8, 0.95], &[0.5, 0.4, 0.45]);
        let results = evaluate(&[h("treated.acc > baseline.acc")], &units, true, &EvalOptions::default()).unwrap();
        let r = &results[0];
        assert_eq!((r.test, r.paired), (TestKind::PairedPermutation, true));
        assert_eq!(r.p, Some(0.125));
        let Verdict::Inconclusive { reason } = &r.verdict else { panic!("{:?}", r.verdict) };
        assert!(
            reason.contains(
                "with 3 pairs, the smallest p-value a one-sided paired permutation test (sign flips) can give is 0.125"
            ),
            "{reason}"
        );
        assert!(reason.contains("at least 5 pairs of replicates are needed"), "{reason}");
    }

    #[test]
    fn a_clear_difference_is_supported_and_serialises() {
        let left: Vec<f64> = (0..10).map(|k| 0.8 + 0.01 * k as f64).collect();
        let right: Vec<f64> = (0..10).map(|k| 0.5 + 0.012 * k as f64).collect();
        let units = run(&left, &right);
        let results = evaluate(&[h("treated.acc > baseline.acc")], &units, true, &EvalOptions::default()).unwrap();
        let r = &results[0];
        assert_eq!(r.verdict, Verdict::Supported, "{}", r.explanation);
        assert_eq!(r.p, Some(1.0 / 1024.0));
        let json = serde_json::to_value(r).unwrap();
        for field in ["hypothesis", "test", "effect", "ci", "p", "p_adjusted", "verdict"] {
            assert!(json.get(field).is_some(), "{field} missing in {json}");
        }
        assert_eq!(json["test"], "paired-permutation");
        assert_eq!(json["verdict"]["kind"], "supported");
        // Without shared seeds the same data are compared unpaired.
        let unpaired = evaluate(&[h("treated.acc > baseline.acc")], &units, false, &EvalOptions::default()).unwrap();
        assert_eq!((unpaired[0].test, unpaired[0].paired), (TestKind::Permutation, false));
        assert!(unpaired[0].pairing.contains("per-condition seed policy"));
    }

    #[test]
    fn margins_and_noise_bands_change_the_verdict() {
        let left: Vec<f64> = (0..12).map(|k| 0.70 + 0.004 * (k % 4) as f64).collect();
        let right: Vec<f64> = (0..12).map(|k| 0.69 + 0.004 * (k % 3) as f64).collect();
        let units = run(&left, &right);
        // Non-inferiority holds easily; superiority by 0.05 does not.
        let results = evaluate(
            &[h("treated.acc >= baseline.acc - 0.05"), h("treated.acc > baseline.acc + 0.05")],
            &units,
            true,
            &EvalOptions::default(),
        )
        .unwrap();
        assert_eq!(results[0].verdict, Verdict::Supported, "{}", results[0].explanation);
        assert_eq!(results[1].verdict, Verdict::NotSupported, "{}", results[1].explanation);
        assert!(results[0].p_adjusted.unwrap() >= results[0].p.unwrap());
        // A significant but tiny difference is within a noise band of 0.05.
        let options = EvalOptions { min_effect: Some(0.05), ..EvalOptions::default() };
        let r = &evaluate(&[h("treated.acc > baseline.acc")], &units, true, &options).unwrap()[0];
        assert!(matches!(r.verdict, Verdict::WithinNoise { .. }), "{:?}", r.verdict);
    }

    #[test]
    fn unknown_metrics_and_conditions_are_named() {
        let units = run(&[1.0, 0.0], &[0.0, 1.0]);
        let error =
            evaluate(&[h("treated.accuracy > baseline.acc")], &units, true, &EvalOptions::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "hypothesis 'treated.accuracy > baseline.acc': condition 'treated' has no metric 'accuracy'; its metrics: acc"
        );
        let error = evaluate(&[h("treatd.acc > baseline.acc")], &units, true, &EvalOptions::default()).unwrap_err();
        assert!(error.to_string().contains("no unit of condition 'treatd'; conditions: baseline, treated"), "{error}");
        let error = validate_conditions(&h("treatd.acc > baseline.acc"), &["baseline", "treated"]).unwrap_err();
        let shown = error.to_string();
        assert!(shown.starts_with("unknown condition 'treatd'; did you mean 'treated'?"), "{shown}");
        assert!(shown.ends_with("conditions: baseline, treated"), "{shown}");
        assert!(validate_conditions(&h("treated.acc > baseline.acc"), &["baseline", "treated"]).is_ok());
    }

    #[test]
    fn failed_units_break_the_pairing() {
        let mut units = run(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        units[2].status = UnitStatus::Error;
        let r = &evaluate(&[h("treated.acc > baseline.acc")], &units, true, &EvalOptions::default()).unwrap()[0];
        assert!(!r.paired);
        assert_eq!(r.pairing, "unpaired: the replicate sets differ (only the right side has replicates 2; failed units or missing metrics)");
        let options = EvalOptions { test: Some(TestKind::PairedT), ..EvalOptions::default() };
        assert!(matches!(
            evaluate(&[h("treated.acc > baseline.acc")], &units, true, &options),
            Err(HypothesisError::TestNotApplicable { .. })
        ));
    }

    #[test]
    fn bad_options_are_rejected() {
        let units = run(&[1.0, 2.0], &[0.0, 1.0]);
        let options = EvalOptions { alpha: 1.5, ..EvalOptions::default() };
        let error = evaluate(&[h("treated.acc > baseline.acc")], &units, true, &options).unwrap_err();
        assert!(error.to_string().starts_with("invalid hypothesis options: invalid alpha = 1.5"), "{error}");
        let options = EvalOptions { min_effect: Some(-0.1), ..EvalOptions::default() };
        assert!(matches!(
            evaluate(&[h("treated.acc > baseline.acc")], &units, true, &options),
            Err(HypothesisError::InvalidOptions(_))
        ));
    }

    #[test]
    fn min_replicates_follow_the_floor_of_each_test() {
        let options = PermutationOptions::default();
        let one_sided = Alternative::Greater;
        // 2^5 = 32 sign patterns: p = 1/32 ≤ 0.05 becomes possible at 5 pairs (one-sided), 6 two-sided.
        assert_eq!(min_replicates(TestKind::PairedPermutation, one_sided, 0.05, &options), Some(5));
        assert_eq!(min_replicates(TestKind::PairedPermutation, Alternative::TwoSided, 0.05, &options), Some(6));
        assert_eq!(min_replicates(TestKind::WelchT, one_sided, 0.05, &options), Some(2));
        // C(6, 3) = 20 arrangements: 1/20 = 0.05 at 3 per condition, but 1/6 at 2.
        assert_eq!(min_replicates(TestKind::Permutation, one_sided, 0.05, &options), Some(3));
    }

    #[test]
    fn named_tests_and_nan() {
        assert_eq!("welch".parse::<TestKind>().unwrap(), TestKind::WelchT);
        assert_eq!("sign_flip".parse::<TestKind>().unwrap(), TestKind::PairedPermutation);
        assert!("wilcoxn".parse::<TestKind>().unwrap_err().contains("did you mean 'wilcoxon'?"));
        let mut units = run(&[1.0, 2.0], &[0.0, 1.0]);
        units[1].metrics.insert("acc".into(), f64::NAN);
        let error = evaluate(&[h("treated.acc > baseline.acc")], &units, true, &EvalOptions::default()).unwrap_err();
        assert!(error.to_string().contains("replicate 1 of condition 'treated' recorded acc = NaN"), "{error}");
    }
}
