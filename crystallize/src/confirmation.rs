//! Explore, then confirm — honestly. A hypothesis found by looking at a run (exploration) is
//! only evidence once it is tested on data that played no part in finding it. `confirm`
//! pre-registers the hypothesis (store format: [`crate::store::preregistration`]), runs replicate
//! indices no earlier run of the experiment used, and reports the verdict with an **integrity
//! status** computed here by [`assess`]:
//!
//! | check | passes when |
//! | --- | --- |
//! | `preregistered` | the record exists, its digest is unchanged and matches the manifest's, it names this run and its hypothesis, and no unit ran before it was written |
//! | `code` | the code that ran has exactly the registered fingerprints, and no session was forced through a change |
//! | `fresh` | no earlier run of the experiment had used the registered replicate indices, and the run recorded no others |
//! | `n` | every condition has at least the replicates registered as needed (the test's floor, and the power against the exploratory effect) |
//! | `exploration` | (with `--from RUN`) the hypothesis's conditions and the code they run are the same as in the exploratory run |
//!
//! The status is `VALID` only when every check passes; `CONFOUNDED` when only `exploration`
//! fails (the confirmation tests other code than the one the hypothesis came from: each changed
//! part is named); `INVALID` otherwise. `--force` lets a confirmation run despite a failed
//! check, and the check stays failed: nothing turns a failed check into `VALID`.
//!
//! [`sample_size`] answers "how many replicates do I need?" from the effect and spread of a run
//! (`plan`, and the `n` check of a confirmation made `--from` an exploratory run).

use crate::store::manifest::Part;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use serde_json::{json, Value};

use crate::hypothesis::{self, EvalOptions, Hypothesis, HypothesisError, HypothesisResult, Operand, TestKind};
use crate::runner::UnitResult;
use crate::stats::{self, Alternative, Design};
use crate::store::manifest::{self, Manifest, Session};
use crate::store::preregistration::{EarlierUse, Preregistration, Read, UsedRange};
use crate::store::{RunDir, RunState, Store};

/// The integrity of a confirmation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Status {
    /// Every check passed.
    #[serde(rename = "VALID")]
    Valid,
    /// Only the comparison with the exploratory run failed: the confirmation tested other code
    /// or configuration than the one the hypothesis came from.
    #[serde(rename = "CONFOUNDED")]
    Confounded,
    /// A check other than the exploration's failed.
    #[serde(rename = "INVALID")]
    Invalid,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Valid => "VALID",
            Status::Confounded => "CONFOUNDED",
            Status::Invalid => "INVALID",
        })
    }
}

/// One integrity check.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    /// Which check.
    pub check: CheckName,
    /// Whether it passed.
    pub ok: bool,
    /// What was found, in words; for a failure, every problem.
    pub detail: String,
}

/// The checks of a confirmation's integrity, in the order reports list them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckName {
    /// The pre-registration is there and unchanged.
    Preregistered,
    /// The code that ran is the registered code.
    Code,
    /// The replicates are fresh: no earlier run used them.
    Fresh,
    /// The replicates are enough for the test and the power registered.
    #[serde(rename = "n")]
    N,
    /// Nothing changed since the exploratory run (a failure makes the run CONFOUNDED).
    Exploration,
}

impl CheckName {
    /// The name reports and JSON use.
    pub fn name(self) -> &'static str {
        match self {
            CheckName::Preregistered => "preregistered",
            CheckName::Code => "code",
            CheckName::Fresh => "fresh",
            CheckName::N => "n",
            CheckName::Exploration => "exploration",
        }
    }
}

/// The integrity of a confirmation: its status and every check.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Integrity {
    /// `VALID`, `CONFOUNDED` or `INVALID`.
    pub status: Status,
    /// The status with what made it so: `VALID`, `INVALID: fresh, n`, or `CONFOUNDED: code of
    /// step game::play changed since exploratory run R`.
    pub summary: String,
    /// The registered hypothesis.
    pub hypothesis: Option<String>,
    /// Every check, passed or not.
    pub checks: Vec<Check>,
    /// The checks that had failed when registering and were overridden with `--force`.
    pub forced: Vec<String>,
}

impl Integrity {
    /// The checks that failed.
    #[cfg(test)]
    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok)
    }
}

/// Everything [`assess`] looks at, gathered from the store by [`assess_run`] (or made up by a
/// test).
#[derive(Clone, Debug)]
pub struct Evidence<'a> {
    /// The confirmation run's manifest.
    pub manifest: &'a Manifest,
    /// What reading its `preregistration.json` found.
    pub preregistration: &'a Read,
    /// Its session records.
    pub sessions: &'a [Session],
    /// The replicate indices it has records of.
    pub replicates_recorded: BTreeSet<u64>,
    /// The replicate indices that other runs of the experiment had planned before the
    /// registration, as the store shows them now.
    pub earlier: &'a [UsedRange],
    /// The registered hypothesis, evaluated on the run; `None` when it could not be.
    pub result: Option<&'a HypothesisResult>,
}

/// Decides the integrity of a confirmation from `evidence`; see the module documentation.
pub fn assess(evidence: &Evidence<'_>) -> Integrity {
    let manifest = evidence.manifest;
    let record = match evidence.preregistration {
        Read::Found { record, .. } => Some(&**record),
        _ => None,
    };
    let mut checks = vec![
        check_preregistered(evidence),
        check_code(manifest, record, evidence.sessions),
        check_fresh(evidence, record),
        check_n(record, evidence.result),
    ];
    let mut changes = Vec::new();
    if let Some(from) = record.and_then(|r| r.from.as_ref()) {
        let conditions: Vec<&str> =
            record.map(|r| r.conditions.iter().map(String::as_str).collect()).unwrap_or_default();
        changes = exploration_changes(&from.config, &manifest.config.to_value(), &conditions);
        checks.push(Check {
            check: CheckName::Exploration,
            ok: changes.is_empty(),
            detail: if changes.is_empty() {
                format!("the same code and configuration as the exploratory run {}", from.run)
            } else {
                format!("changed since the exploratory run {}: {}", from.run, changes.join("; "))
            },
        });
    }
    let core_failed: Vec<&'static str> =
        checks.iter().filter(|c| !c.ok && c.check != CheckName::Exploration).map(|c| c.check.name()).collect();
    let exploration = record.and_then(|r| r.from.as_ref()).map(|f| f.run.clone()).unwrap_or_default();
    let changed = || format!("{} since exploratory run {exploration}", changes.join("; "));
    let (status, summary) = match (core_failed.is_empty(), changes.is_empty()) {
        (true, true) => (Status::Valid, "VALID".to_owned()),
        (true, false) => (Status::Confounded, format!("CONFOUNDED: {}", changed())),
        (false, true) => (Status::Invalid, format!("INVALID: {}", core_failed.join(", "))),
        (false, false) => (Status::Invalid, format!("INVALID: {}; CONFOUNDED: {}", core_failed.join(", "), changed())),
    };
    Integrity {
        status,
        summary,
        hypothesis: record.map(|r| r.hypothesis.clone()).or_else(|| manifest.hypotheses.first().cloned()),
        checks: {
            // Failed checks first, each group in the order of the table above.
            let mut sorted = checks;
            sorted.sort_by_key(|c| (c.ok, c.check));
            sorted
        },
        forced: record.map(|r| r.forced.clone()).unwrap_or_default(),
    }
}

fn check_preregistered(evidence: &Evidence<'_>) -> Check {
    let manifest = evidence.manifest;
    let fail = |detail: String| Check { check: CheckName::Preregistered, ok: false, detail };
    let (record, actual) = match evidence.preregistration {
        Read::Missing => {
            return fail(match &manifest.preregistration {
                Some(digest) => format!(
                    "the run's manifest names a pre-registration (digest {digest}), but preregistration.json is missing"
                ),
                None => "the run has no preregistration.json".to_owned(),
            })
        }
        Read::Invalid(why) => return fail(why.clone()),
        Read::Found { record, actual_digest } => (record, actual_digest),
    };
    let mut problems = Vec::new();
    if *actual != record.digest {
        problems.push(format!(
            "the record was changed after it was written (sealed with digest {}, its content now has {actual})",
            record.digest
        ));
    }
    match &manifest.preregistration {
        Some(digest) if *digest == record.digest => {}
        Some(digest) => problems.push(format!(
            "its digest {} is not the one the run's manifest recorded before the run ({digest})",
            record.digest
        )),
        None => problems.push("the run's manifest records no pre-registration".to_owned()),
    }
    if record.run != manifest.run {
        problems.push(format!("it registers run {}, not this run", record.run));
    }
    if manifest.hypotheses.first() != Some(&record.hypothesis) || manifest.hypotheses.len() != 1 {
        problems.push(format!(
            "the run reports {:?}, not only the registered hypothesis '{}'",
            manifest.hypotheses, record.hypothesis
        ));
    }
    for session in evidence.sessions {
        if session.started < record.registered {
            problems.push(format!(
                "units ran before it was registered (session {} started {}, registered {})",
                session.writer, session.started, record.registered
            ));
        }
    }
    if !problems.is_empty() {
        return fail(problems.join("; "));
    }
    let last = record.first_replicate + record.replicates.saturating_sub(1);
    Check {
        check: CheckName::Preregistered,
        ok: true,
        detail: format!(
            "registered {} before any unit ran: '{}', {} test, alpha {}, {} replicates per condition (indices {}..={last}); \
             digest {} unchanged",
            record.registered,
            record.hypothesis,
            record.test,
            record.alpha,
            record.replicates,
            record.first_replicate,
            record.digest
        ),
    }
}

fn check_code(manifest: &Manifest, record: Option<&Preregistration>, sessions: &[Session]) -> Check {
    let Some(record) = record else {
        return Check {
            check: CheckName::Code,
            ok: false,
            detail: "no registered fingerprints to compare with".into(),
        };
    };
    let ran = json!(manifest.config.fingerprints);
    let registered = json!(record.fingerprints);
    let mut problems =
        manifest::drift_of_values(&json!({ "fingerprints": registered }), &json!({ "fingerprints": ran }));
    for session in sessions.iter().filter(|s| s.forced) {
        problems.push(format!(
            "session {} resumed the run with --force despite: {}",
            session.writer,
            if session.drift.is_empty() { "(unrecorded changes)".to_owned() } else { session.drift.join("; ") }
        ));
    }
    if problems.is_empty() {
        Check {
            check: CheckName::Code,
            ok: true,
            detail: format!("the code that ran has the {} registered fingerprints", record.fingerprints.len()),
        }
    } else {
        Check {
            check: CheckName::Code,
            ok: false,
            detail: format!("the code that ran is not the registered code: {}", problems.join("; ")),
        }
    }
}

fn check_fresh(evidence: &Evidence<'_>, record: Option<&Preregistration>) -> Check {
    let Some(record) = record else {
        return Check { check: CheckName::Fresh, ok: false, detail: "no registered replicate indices to check".into() };
    };
    let registered = record.first_replicate..record.first_replicate + record.replicates;
    let mut problems = Vec::new();
    if let Some(highest) = record.earlier.highest.filter(|h| *h >= record.first_replicate) {
        problems.push(format!(
            "the registered indices start at {} although earlier runs had used up to {highest}",
            record.first_replicate
        ));
    }
    for used in evidence.earlier {
        let (low, high) = (used.first.max(registered.start), used.end.min(registered.end));
        if low < high {
            problems.push(format!("run {} had used replicates {low}..={} before the registration", used.run, high - 1));
        }
    }
    if evidence.manifest.first_replicate != record.first_replicate || evidence.manifest.replicates != record.replicates
    {
        problems.push(format!(
            "the run planned replicates {}..{} instead of the registered {}..{}",
            evidence.manifest.first_replicate,
            evidence.manifest.first_replicate + evidence.manifest.replicates,
            registered.start,
            registered.end
        ));
    }
    for session in evidence.sessions.iter().filter(|s| s.replicates != record.replicates) {
        problems.push(format!(
            "session {} planned {} replicates instead of the registered {}",
            session.writer, session.replicates, record.replicates
        ));
    }
    let outside: Vec<String> =
        evidence.replicates_recorded.iter().filter(|r| !registered.contains(r)).map(u64::to_string).collect();
    if !outside.is_empty() {
        problems.push(format!("the run has records of unregistered replicates {}", outside.join(", ")));
    }
    if !problems.is_empty() {
        return Check { check: CheckName::Fresh, ok: false, detail: problems.join("; ") };
    }
    let before = match record.earlier.highest {
        Some(highest) => format!("earlier runs used indices up to {highest}"),
        None => "no earlier run of the experiment".to_owned(),
    };
    Check {
        check: CheckName::Fresh,
        ok: true,
        detail: format!(
            "replicates {}..={} were never used before the registration ({before})",
            registered.start,
            registered.end.saturating_sub(1)
        ),
    }
}

fn check_n(record: Option<&Preregistration>, result: Option<&HypothesisResult>) -> Check {
    let Some(record) = record else {
        return Check { check: CheckName::N, ok: false, detail: "no registered sample size to check".into() };
    };
    let required = record.adequacy.required;
    let mut problems = Vec::new();
    if record.replicates < required {
        problems.push(format!(
            "{} replicates were registered but {required} are needed ({})",
            record.replicates, record.adequacy.reason
        ));
    }
    let n = result.map(|r| r.left.n.min(r.right.n) as u64);
    match n {
        None => problems.push("the hypothesis could not be evaluated, so the data have no n to check".into()),
        Some(n) if n < required && n < record.replicates => problems.push(format!(
            "only {n} replicates per condition have the metric (failed units, or an unfinished run) but {required} are \
             needed ({})",
            record.adequacy.reason
        )),
        Some(_) => {}
    }
    if problems.is_empty() {
        Check {
            check: CheckName::N,
            ok: true,
            detail: format!(
                "n = {} per condition, at least the {required} needed ({})",
                n.unwrap_or(0),
                record.adequacy.reason
            ),
        }
    } else {
        Check { check: CheckName::N, ok: false, detail: problems.join("; ") }
    }
}

/// The parts of a run's configuration that matter for a hypothesis on `conditions`: the seed
/// policy, those conditions (datasource, treatment, params, input), the experiment's and every
/// step's fingerprint, and the fingerprints of the datasources and treatments of those
/// conditions. What the exploration check compares.
pub fn relevant_config(config: &Value, conditions: &[&str]) -> Value {
    let mut selected = serde_json::Map::new();
    let mut parts: BTreeSet<String> = BTreeSet::new();
    for name in conditions {
        let Some(condition) = config.get("conditions").and_then(|c| c.get(*name)) else { continue };
        selected.insert((*name).to_owned(), condition.clone());
        if let Some(datasource) = condition.get("datasource").and_then(Value::as_str) {
            parts.insert(Part::Datasource.key(datasource));
        }
        if let Some(treatment) = condition.get("treatment").and_then(Value::as_str) {
            parts.insert(Part::Treatment.key(treatment));
        }
    }
    let fingerprints: serde_json::Map<String, Value> = config
        .get("fingerprints")
        .and_then(Value::as_object)
        .map(|all| {
            all.iter()
                .filter(|(key, _)| {
                    // The experiment and every step concern every condition; datasources and
                    // treatments only the conditions that use them.
                    matches!(Part::of_key(key), Some((Part::Experiment | Part::Step, _))) || parts.contains(*key)
                })
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "seed_policy": config.get("seed_policy").cloned().unwrap_or(Value::Null),
        "conditions": selected,
        "fingerprints": fingerprints,
    })
}

/// What changed, for a hypothesis on `conditions`, between an exploratory run's configuration
/// (whole, or already reduced by [`relevant_config`]) and a confirmation's: one line per
/// change, code changes named by part (`code of step game::play changed`).
pub fn exploration_changes(exploration: &Value, confirmation: &Value, conditions: &[&str]) -> Vec<String> {
    manifest::drift_of_values(&relevant_config(exploration, conditions), &relevant_config(confirmation, conditions))
}

/// The replicate indices the runs of `experiment` in `store` had used: with `before`, only runs
/// created before that time (RFC 3339) and only what their sessions started before it had
/// planned; without it, every run, with what it planned and what its journals recorded.
/// `except` leaves out one run (the confirmation itself).
pub fn earlier_use(store: &Store, experiment: &str, before: Option<&str>, except: Option<&str>) -> EarlierUse {
    let (runs, _) = store.runs();
    let mut used = Vec::new();
    for run in runs {
        let manifest = &run.manifest;
        if manifest.experiment != experiment || Some(manifest.run.as_str()) == except {
            continue;
        }
        if before.is_some_and(|time| manifest.created.as_str() >= time) {
            continue;
        }
        let (sessions, _) = run.sessions();
        let planned = sessions
            .iter()
            .filter(|s| before.is_none_or(|time| s.started.as_str() < time))
            .map(|s| s.replicates)
            .chain([manifest.replicates])
            .max()
            .unwrap_or(0);
        let first = manifest.first_replicate;
        let mut end = first + planned;
        let mut start = first;
        if before.is_none() {
            // Which replicates have records, not the results: the light scan resume uses.
            if let Some(recorded) = run.scan().recorded_range() {
                start = start.min(recorded.start);
                end = end.max(recorded.end);
            }
        }
        if end > start {
            used.push(UsedRange { run: manifest.run.clone(), first: start, end });
        }
    }
    let highest = used.iter().map(|u| u.end - 1).max();
    EarlierUse { runs: used, highest }
}

/// The integrity of `run` when it is a confirmation (it has a pre-registration, or its manifest
/// says it should); `None` for any other run. `result` is the registered hypothesis evaluated on
/// the run, when it could be.
pub fn assess_run(
    store: &Store,
    run: &RunDir,
    state: &RunState,
    units: &crate::unit_table::UnitTable,
    result: Option<&HypothesisResult>,
) -> Option<Integrity> {
    let read = run.read_preregistration();
    if read == Read::Missing && run.manifest.preregistration.is_none() {
        return None;
    }
    let (sessions, _) = run.sessions();
    let earlier = match &read {
        Read::Found { record, .. } => {
            earlier_use(store, &run.manifest.experiment, Some(&record.registered), Some(&run.manifest.run)).runs
        }
        _ => Vec::new(),
    };
    let evidence = Evidence {
        manifest: &run.manifest,
        preregistration: &read,
        sessions: &sessions,
        // Records the store ignores as outside the plan still show which indices the run used.
        replicates_recorded: units
            .iter()
            .map(|unit| unit.replicate())
            .chain(state.rejected.iter().map(|(_, r)| *r))
            .collect(),
        earlier: &earlier,
        result,
    };
    Some(assess(&evidence))
}

/// How many replicates a hypothesis needs, planned from the effect and spread of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SampleSize {
    /// The hypothesis, in canonical spelling.
    pub hypothesis: String,
    /// The test that decides it on such data.
    pub test: TestKind,
    /// Whether replicates are paired (shared seeds).
    pub paired: bool,
    /// The alternative about `left − right − margin`.
    pub alternative: Alternative,
    /// The observed difference `mean(left) − mean(right)`.
    pub effect: f64,
    /// The margin of the hypothesis.
    pub margin: f64,
    /// The noise: the sd of the paired differences, or the pooled sd; `None` below 2 values.
    pub sd: Option<f64>,
    /// Replicates per condition (pairs) in the run planned from.
    pub n_observed: usize,
    /// The significance level.
    pub alpha: f64,
    /// The power asked for.
    pub power: f64,
    /// Replicates per condition (pairs) a t test needs for that power against the observed
    /// effect; `None` when it cannot be said (see `why_not`).
    pub for_power: Option<usize>,
    /// Why `for_power` is `None`.
    pub why_not: Option<String>,
    /// The fewest replicates with which the test can give p ≤ alpha at all.
    pub min_possible: Option<usize>,
    /// What to run: the larger of `for_power` and `min_possible`; `None` with `for_power`.
    pub required: Option<usize>,
}

fn values(units: &[UnitResult], operand: &Operand) -> BTreeMap<u64, f64> {
    let (experiment, condition) = match operand.condition.split_once('/') {
        Some((experiment, condition)) => (Some(experiment), condition),
        None => (None, operand.condition.as_str()),
    };
    units
        .iter()
        .filter(|u| u.is_ok() && u.condition == condition && experiment.is_none_or(|e| u.experiment == e))
        .filter_map(|u| u.metrics.get(&operand.metric).map(|v| (u.replicate, *v)))
        .collect()
}

fn sample_sd(values: &[f64]) -> Option<f64> {
    let n = values.len();
    (n > 1).then(|| {
        let mean = values.iter().sum::<f64>() / n as f64;
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    })
}

/// The replicates per condition a confirmation needs: what the power asks for, but never fewer
/// than the test's floor (below which it cannot reach p ≤ alpha at all). `None` when either is
/// unknown: no power estimate, or a test that cannot reach alpha with any number of replicates.
pub fn required_replicates(for_power: Option<usize>, min_possible: Option<usize>) -> Option<usize> {
    Some(for_power?.max(min_possible?))
}

/// Plans the replicates per condition `hypothesis` needs to be decided with `options.power` at
/// `options.alpha`, from the effect and the spread it has in `units` (a t-test approximation of
/// the test that would decide it, which is also never below the test's floor). Errors are those
/// of [`hypothesis::evaluate`]: an unknown metric or condition.
pub fn sample_size(
    hypothesis: &Hypothesis,
    units: &[UnitResult],
    seeds_shared: bool,
    options: &EvalOptions,
) -> Result<SampleSize, HypothesisError> {
    let result = hypothesis::evaluate(std::slice::from_ref(hypothesis), units, seeds_shared, options)?
        .pop()
        .expect("one result per hypothesis");
    let (left, right) = (values(units, &hypothesis.left), values(units, &hypothesis.right));
    let (sd, design, n_observed) = if result.paired {
        let d: Vec<f64> = left.iter().filter_map(|(k, a)| right.get(k).map(|b| a - b)).collect();
        (sample_sd(&d), Design::Paired, d.len())
    } else {
        let (x, y): (Vec<f64>, Vec<f64>) = (left.values().copied().collect(), right.values().copied().collect());
        let pooled = match (sample_sd(&x), sample_sd(&y)) {
            (Some(a), Some(b)) => {
                let (nx, ny) = (x.len() as f64, y.len() as f64);
                Some((((nx - 1.0) * a * a + (ny - 1.0) * b * b) / (nx + ny - 2.0)).sqrt())
            }
            _ => None,
        };
        (pooled, Design::Independent, x.len().min(y.len()))
    };
    let shifted = result.effect - result.margin;
    let direction_ok = match result.alternative {
        Alternative::Greater => shifted > 0.0,
        Alternative::Less => shifted < 0.0,
        Alternative::TwoSided => shifted != 0.0,
    };
    let (for_power, why_not) = match sd {
        _ if !direction_ok => (
            None,
            Some(format!(
                "the observed difference {} is not in the direction the hypothesis claims, so no number of \
                 replicates can be expected to show it",
                crate::summary::number(result.effect)
            )),
        ),
        None => (None, Some("the run has fewer than 2 values per condition, so its spread is unknown".into())),
        Some(0.0) => (
            None,
            Some(
                "the run shows no spread at all, so the power approximation does not apply; the test's floor decides"
                    .into(),
            ),
        ),
        Some(sd) => match stats::n_per_side(shifted, sd, options.alpha, options.power, result.alternative, design) {
            Ok(n) => (Some(n), None),
            Err(error) => (None, Some(error.to_string())),
        },
    };
    let min_possible = hypothesis::min_replicates(result.test, result.alternative, options.alpha, &options.permutation);
    let required = required_replicates(for_power, min_possible);
    let why_not = why_not.or_else(|| {
        min_possible.is_none().then(|| {
            format!(
                "the {} test cannot reach p ≤ {} with up to 200 replicates per condition; choose a larger alpha or \
                 another test",
                result.test, options.alpha
            )
        })
    });
    Ok(SampleSize {
        hypothesis: result.hypothesis,
        test: result.test,
        paired: result.paired,
        alternative: result.alternative,
        effect: result.effect,
        margin: result.margin,
        sd,
        n_observed,
        alpha: options.alpha,
        power: options.power,
        for_power,
        why_not,
        min_possible,
        required,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::UnitStatus;
    use crate::seed::SeedPolicy;
    use crate::stats::Correction;
    use crate::store::preregistration::{Adequacy, Exploration};

    fn manifest(run: &str, first: u64, replicates: u64) -> Manifest {
        serde_json::from_value(json!({
            "schema": 1, "run": run, "experiment": "exp", "created": "2026-01-02T00:00:00.000Z", "command": [],
            "replicates": replicates, "first_replicate": first,
            "request": {"treatments": ["treated"], "sets": []},
            "config": {
                "seed": 42, "seed_policy": "shared",
                "conditions": {
                    "baseline": {"datasource": "table", "treatment": null, "params": {"t": 0.7}},
                    "treated": {"datasource": "table", "treatment": "treated", "params": {"t": 0.7}}
                },
                "fingerprints": {"experiment exp": "01", "datasource table": "02", "treatment treated": "03",
                                 "step game::play": "04"}
            },
            "versions": {"crate_name": "x", "crate_version": "0", "crystallize": "0"}, "git": null, "host": "h",
            "hypotheses": ["treated.win > baseline.win"]
        }))
        .unwrap()
    }

    fn record(manifest: &Manifest) -> Preregistration {
        let fingerprints = manifest.config.fingerprints.clone();
        Preregistration {
            schema: 1,
            run: manifest.run.clone(),
            experiment: "exp".into(),
            registered: manifest.created.clone(),
            hypothesis: "treated.win > baseline.win".into(),
            test: "paired-permutation".into(),
            alpha: 0.05,
            correction: Correction::Holm,
            power: 0.8,
            replicates: manifest.replicates,
            first_replicate: manifest.first_replicate,
            seed: 42,
            seed_policy: SeedPolicy::Shared,
            conditions: vec!["baseline".into(), "treated".into()],
            fingerprints,
            earlier: EarlierUse { runs: vec![UsedRange { run: "exp-a".into(), first: 0, end: 10 }], highest: Some(9) },
            adequacy: Adequacy {
                required: 5,
                min_possible: Some(5),
                for_power: None,
                reason: "the test's floor".into(),
            },
            from: None,
            forced: vec![],
            command: vec![],
            policy: None,
            digest: String::new(),
        }
    }

    fn session(started: &str, replicates: u64) -> Session {
        Session {
            schema: 1,
            writer: "w1".into(),
            started: started.into(),
            command: vec![],
            replicates,
            forced: false,
            drift: vec![],
            host: "h".into(),
            shard: None,
        }
    }

    fn unit(condition: &str, replicate: u64, win: f64) -> UnitResult {
        UnitResult {
            experiment: "exp".into(),
            condition: condition.into(),
            replicate,
            seed: 1000 + replicate,
            status: UnitStatus::Ok,
            error: None,
            metrics: [("win".to_owned(), win)].into(),
            records: Vec::new(),
            duration_ms: 1.0,
            attempts: Vec::new(),
            cache: Default::default(),
        }
    }

    /// A clear win of `treated` over replicates `first..first + n`.
    fn units(first: u64, n: u64) -> Vec<UnitResult> {
        let mut all: Vec<UnitResult> =
            (first..first + n).map(|k| unit("treated", k, if k % 5 == 0 { 0.0 } else { 1.0 })).collect();
        all.extend((first..first + n).map(|k| unit("baseline", k, if k % 3 == 0 { 1.0 } else { 0.0 })));
        all
    }

    fn evaluate(units: &[UnitResult]) -> HypothesisResult {
        let h: Hypothesis = "treated.win > baseline.win".parse().unwrap();
        hypothesis::evaluate(&[h], units, true, &EvalOptions::default()).unwrap().pop().unwrap()
    }

    /// A sealed, consistent confirmation: manifest, record, one session, its units.
    struct Case {
        manifest: Manifest,
        record: Preregistration,
        sessions: Vec<Session>,
        units: Vec<UnitResult>,
        earlier: Vec<UsedRange>,
    }

    impl Case {
        fn new() -> Case {
            let mut manifest = manifest("exp-c", 10, 20);
            let mut record = record(&manifest);
            manifest.preregistration = Some(record.seal());
            Case {
                sessions: vec![session("2026-01-02T00:00:00.001Z", 20)],
                units: units(10, 20),
                earlier: vec![UsedRange { run: "exp-a".into(), first: 0, end: 10 }],
                manifest,
                record,
            }
        }

        fn assess(&self) -> Integrity {
            self.assess_read(&self.read())
        }

        fn read(&self) -> Read {
            let mut value = serde_json::to_value(&self.record).unwrap();
            let actual_digest = crate::store::preregistration::digest_of(&mut value);
            Read::Found { record: Box::new(self.record.clone()), actual_digest }
        }

        fn assess_read(&self, read: &Read) -> Integrity {
            let result = evaluate(&self.units);
            assess(&Evidence {
                manifest: &self.manifest,
                preregistration: read,
                sessions: &self.sessions,
                replicates_recorded: self.units.iter().map(|u| u.replicate).collect(),
                earlier: &self.earlier,
                result: Some(&result),
            })
        }
    }

    fn failed(integrity: &Integrity) -> Vec<&'static str> {
        integrity.failed().map(|c| c.check.name()).collect()
    }

    #[test]
    fn a_clean_confirmation_is_valid() {
        let integrity = Case::new().assess();
        assert_eq!(integrity.status, Status::Valid, "{integrity:#?}");
        assert_eq!(integrity.summary, "VALID");
        assert_eq!(integrity.checks.len(), 4);
        assert!(integrity.checks.iter().all(|c| c.ok));
        let json = serde_json::to_value(&integrity).unwrap();
        assert_eq!(json["status"], "VALID");
        assert_eq!(json["checks"][0]["check"], "preregistered");
    }

    #[test]
    fn a_missing_or_edited_preregistration_is_invalid() {
        let case = Case::new();
        let integrity = case.assess_read(&Read::Missing);
        assert_eq!(
            (integrity.status, failed(&integrity)),
            (Status::Invalid, vec!["preregistered", "code", "fresh", "n"])
        );
        assert!(integrity.checks[0].detail.contains("preregistration.json is missing"), "{integrity:#?}");

        // Edited after sealing: the content no longer has its digest.
        let mut edited = Case::new();
        edited.record.alpha = 0.2;
        let integrity = edited.assess();
        assert_eq!(failed(&integrity), vec!["preregistered"]);
        assert!(integrity.checks[0].detail.contains("changed after it was written"), "{integrity:#?}");
        assert_eq!(integrity.summary, "INVALID: preregistered");

        // Edited and re-sealed: the manifest still holds the original digest.
        let mut resealed = Case::new();
        resealed.record.alpha = 0.2;
        resealed.record.seal();
        let integrity = resealed.assess();
        assert!(integrity.checks[0].detail.contains("not the one the run's manifest recorded"), "{integrity:#?}");

        // Registered after units ran.
        let mut late = Case::new();
        late.sessions[0].started = "2026-01-01T23:59:59.000Z".into();
        let integrity = late.assess();
        assert!(integrity.checks[0].detail.contains("units ran before it was registered"), "{integrity:#?}");
    }

    #[test]
    fn other_code_stale_replicates_and_small_n_are_each_named() {
        let mut case = Case::new();
        case.manifest.config.fingerprints.insert("step game::play".into(), "ff".into());
        let integrity = case.assess();
        assert_eq!(failed(&integrity), vec!["code"]);
        assert!(integrity.checks[0].detail.contains("code of step game::play changed"), "{integrity:#?}");

        let mut forced = Case::new();
        forced.sessions[0].forced = true;
        forced.sessions[0].drift = vec!["code of step game::play changed".into()];
        assert_eq!(failed(&forced.assess()), vec!["code"]);

        let mut stale = Case::new();
        stale.earlier.push(UsedRange { run: "exp-b".into(), first: 0, end: 15 });
        let integrity = stale.assess();
        assert_eq!(failed(&integrity), vec!["fresh"]);
        assert!(integrity.checks[0].detail.contains("run exp-b had used replicates 10..=14"), "{integrity:#?}");

        let mut small = Case::new();
        small.record.adequacy.required = 25;
        small.manifest.preregistration = Some(small.record.seal());
        let integrity = small.assess();
        assert_eq!(failed(&integrity), vec!["n"]);
        assert!(
            integrity.checks[0].detail.contains("20 replicates were registered but 25 are needed"),
            "{integrity:#?}"
        );

        let mut failures = Case::new();
        failures.units.retain(|u| u.replicate >= 27 || u.condition == "baseline");
        failures.record.adequacy.required = 10;
        failures.manifest.preregistration = Some(failures.record.seal());
        let integrity = failures.assess();
        assert!(integrity.checks[0].detail.contains("only 3 replicates per condition"), "{integrity:#?}");

        // Several failures: all named, and --force does not help.
        let mut many = Case::new();
        many.manifest.config.fingerprints.insert("step game::play".into(), "ff".into());
        many.record.forced = vec!["n".into()];
        many.record.adequacy.required = 25;
        many.manifest.preregistration = Some(many.record.seal());
        let integrity = many.assess();
        assert_eq!(integrity.summary, "INVALID: code, n");
        assert_eq!(integrity.forced, vec!["n"]);
    }

    #[test]
    fn changed_code_since_the_exploration_confounds_and_names_each_part() {
        let mut case = Case::new();
        let mut exploration = case.manifest.config.to_value();
        exploration["fingerprints"]["step game::play"] = json!("aa");
        exploration["fingerprints"]["treatment treated"] = json!("bb");
        // Parts of conditions the hypothesis does not name do not matter.
        exploration["conditions"]["other"] = json!({"datasource": "big", "treatment": "other"});
        exploration["fingerprints"]["treatment other"] = json!("cc");
        exploration["seed"] = json!(7);
        case.record.from = Some(Exploration {
            run: "exp-a".into(),
            config: relevant_config(&exploration, &["baseline", "treated"]),
            effect: 0.5,
            changed: vec![],
        });
        case.manifest.preregistration = Some(case.record.seal());
        let integrity = case.assess();
        assert_eq!(integrity.status, Status::Confounded, "{integrity:#?}");
        assert_eq!(
            integrity.summary,
            "CONFOUNDED: code of step game::play changed; code of treatment treated changed since exploratory run exp-a"
        );
        assert_eq!(failed(&integrity), vec!["exploration"]);

        // The same code: valid.
        let mut same = Case::new();
        same.record.from = Some(Exploration {
            run: "exp-a".into(),
            config: relevant_config(&same.manifest.config.to_value(), &["baseline", "treated"]),
            effect: 0.5,
            changed: vec![],
        });
        same.manifest.preregistration = Some(same.record.seal());
        let integrity = same.assess();
        assert_eq!(integrity.status, Status::Valid, "{integrity:#?}");
        assert_eq!(integrity.checks.len(), 5);
    }

    #[test]
    fn sample_size_plans_from_the_observed_effect_and_spread() {
        let units = units(0, 30);
        let h: Hypothesis = "treated.win > baseline.win".parse().unwrap();
        let plan = sample_size(&h, &units, true, &EvalOptions::default()).unwrap();
        assert!(plan.paired);
        assert_eq!(plan.test, TestKind::PairedPermutation);
        assert_eq!(plan.n_observed, 30);
        assert_eq!(plan.min_possible, Some(5));
        let needed = plan.for_power.unwrap();
        // Against the formula: the t-test's n for this effect and the sd of the differences.
        let d: Vec<f64> =
            (0..30).map(|k| (if k % 5 == 0 { 0.0 } else { 1.0 }) - (if k % 3 == 0 { 1.0 } else { 0.0 })).collect();
        let sd = sample_sd(&d).unwrap();
        assert!((plan.sd.unwrap() - sd).abs() < 1e-12);
        let expected = stats::n_per_side(plan.effect, sd, 0.05, 0.8, Alternative::Greater, Design::Paired).unwrap();
        assert_eq!(needed, expected);
        assert_eq!(plan.required, Some(needed.max(5)));

        // The other direction cannot be planned for.
        let h: Hypothesis = "treated.win < baseline.win".parse().unwrap();
        let plan = sample_size(&h, &units, true, &EvalOptions::default()).unwrap();
        assert_eq!((plan.for_power, plan.required), (None, None));
        assert!(plan.why_not.unwrap().contains("not in the direction"));
        // An alpha the test cannot reach with any number of replicates: no sample size, and why.
        let h: Hypothesis = "treated.win > baseline.win".parse().unwrap();
        let tiny = EvalOptions { alpha: 1e-9, ..EvalOptions::default() };
        let plan = sample_size(&h, &units, true, &tiny).unwrap();
        assert_eq!((plan.min_possible, plan.required), (None, None), "{plan:?}");
        assert!(plan.for_power.is_some());
        assert!(plan.why_not.unwrap().contains("cannot reach p ≤ 0.000000001"));
        // Unpaired without shared seeds.
        let plan = sample_size(&"treated.win > baseline.win".parse().unwrap(), &units, false, &EvalOptions::default())
            .unwrap();
        assert!(!plan.paired);
        assert_eq!(plan.test, TestKind::Permutation);
    }
}
