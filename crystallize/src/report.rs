//! The report of a run: per condition and metric n, mean, sd, the 95 % interval of the mean,
//! min and max ([`crate::summary`]); every hypothesis decided — the test used, the effect and its
//! interval, p, the p-value corrected across the report's hypotheses, the verdict and why
//! ([`crate::hypothesis`]); and for a confirmation, its integrity ([`crate::confirmation`]). As a
//! terminal table ([`Report::to_text`]), Markdown ([`Report::to_markdown`]) and the JSON object
//! of `run --json` / `report --json` ([`Report::to_json`]).
//!
//! [`Report::from_store`] recomputes the report of a stored run from its files alone: `run`
//! prints exactly that at its end, and `report RUN` prints it again later.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use crate::confirmation::{self, Integrity};
use crate::hypothesis::{self, EvalOptions, Hypothesis, HypothesisError, HypothesisResult};
use crate::runner::{RunInfo, RunResults};
use crate::stats::Correction;
use crate::store::preregistration::Read;
use crate::store::{Damage, RunDir, RunState, Status, Store};
use crate::summary::{self, number};
use crate::unit_table::UnitTable;

/// A hypothesis of the report, decided.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decided {
    /// Everything the hypothesis module found.
    #[serde(flatten)]
    pub result: HypothesisResult,
    /// In the report of a confirmation: whether this is its pre-registered hypothesis (the only
    /// one its integrity speaks for; others are exploratory and corrected on their own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preregistered: Option<bool>,
}

/// A hypothesis of the report that could not be decided: it does not parse, or does not fit
/// the run (an unknown metric, a condition that did not run, every unit failed).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Undecided {
    /// The hypothesis as written.
    pub hypothesis: String,
    /// Why it could not be decided, naming what would be valid.
    pub error: String,
}

/// The report of a run.
#[derive(Clone, Debug)]
pub struct Report {
    /// The run's id, when it is stored.
    pub run: Option<String>,
    /// What ran.
    pub info: RunInfo,
    /// Its finished units, in plan order, held compactly: a big run's report holds every unit.
    pub units: UnitTable,
    /// Units not run (yet).
    pub skipped: usize,
    /// The hypotheses decided, in the order given.
    pub hypotheses: Vec<Decided>,
    /// The hypotheses that could not be decided.
    pub undecided: Vec<Undecided>,
    /// The integrity of a confirmation; `None` for any other run.
    pub integrity: Option<Integrity>,
    /// For a run with `--until-decided`: its stopping rule and the anytime-valid decisions,
    /// replayed from the stored units. The fixed-n p-values of `hypotheses` are then not valid
    /// (the run stopped when it looked decided), and the report says so.
    pub sequential: Option<SequentialReport>,
    /// For a stored run: its status and the damage its journals hold (every damaged line is
    /// also a warning naming its file and line).
    pub stored: Option<(Status, Damage)>,
}

/// The sequential part of a report (see [`Report::sequential`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SequentialReport {
    /// The stopping rule, as the manifest records it.
    pub rule: crate::sequential::StoppingRule,
    /// Each hypothesis's anytime-valid interval, status and where it was decided.
    pub results: Vec<crate::sequential::SequentialResult>,
    /// Whether every hypothesis is decided.
    pub all_decided: bool,
    /// Where the last session stopped and why, as its journal's `stop` record says (`None`
    /// for a run written before stops were recorded, or whose record is damaged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<crate::sequential::Stop>,
    /// Where the replay from the stored units disagrees with the recorded decisions (damage,
    /// or a unit's results changed after the decision): one line each, also warnings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disagreements: Vec<String>,
}

/// The hypothesis an error is about, when it names one.
fn about(error: &HypothesisError) -> Option<&str> {
    match error {
        HypothesisError::UnknownMetric { hypothesis, .. }
        | HypothesisError::NoResults { hypothesis, .. }
        | HypothesisError::AllFailed { hypothesis, .. }
        | HypothesisError::AmbiguousCondition { hypothesis, .. }
        | HypothesisError::NonFinite { hypothesis, .. }
        | HypothesisError::TestNotApplicable { hypothesis, .. }
        | HypothesisError::Stats { hypothesis, .. } => Some(hypothesis),
        HypothesisError::InvalidOptions(_) => None,
    }
}

/// Decides `hypotheses` together (one correction over all of them); those that cannot be
/// decided are set aside with their error and the others are corrected among themselves.
pub fn decide(
    hypotheses: &[Hypothesis],
    units: &UnitTable,
    seeds_shared: bool,
    options: &EvalOptions,
) -> (Vec<HypothesisResult>, Vec<Undecided>) {
    let mut pending: Vec<Hypothesis> = hypotheses.to_vec();
    let mut undecided = Vec::new();
    loop {
        if pending.is_empty() {
            return (Vec::new(), undecided);
        }
        match hypothesis::evaluate_table(&pending, units, seeds_shared, options) {
            Ok(results) => return (results, undecided),
            Err(error) => {
                let index = about(&error).and_then(|text| pending.iter().position(|h| h.to_string() == text));
                match index {
                    Some(index) => {
                        let hypothesis = pending.remove(index);
                        undecided.push(Undecided { hypothesis: hypothesis.to_string(), error: error.to_string() });
                    }
                    None => {
                        // Options that no hypothesis can be decided with.
                        undecided.extend(
                            pending
                                .drain(..)
                                .map(|h| Undecided { hypothesis: h.to_string(), error: error.to_string() }),
                        );
                    }
                }
            }
        }
    }
}

/// The results of a stored run as `run` saw them at its end.
pub fn stored_results(run: &RunDir, state: &RunState, units: Vec<crate::runner::UnitResult>) -> RunResults {
    let planned = state.planned();
    RunResults {
        info: stored_info(run, state),
        skipped: planned.saturating_sub(units.len()),
        units,
        elapsed: std::time::Duration::ZERO,
    }
}

/// What ran of a stored run, as `run` saw it at its start.
pub fn stored_info(run: &RunDir, state: &RunState) -> RunInfo {
    let planned = state.planned();
    RunInfo {
        experiment: run.manifest.experiment.clone(),
        conditions: state.conditions.clone(),
        replicates: state.replicate_range().collect(),
        seed: run.manifest.config.seed.unwrap_or(0),
        units_planned: planned,
        units_per_condition: vec![state.replicates as usize; state.conditions.len()],
        jobs: 0,
        limits: Default::default(),
    }
}

/// Whether a stored run gave every condition the same seed per replicate (the shared seed
/// policy), which lets its hypotheses pair replicates.
pub fn seeds_shared(run: &RunDir) -> bool {
    run.manifest.config.seed_policy.is_none_or(|policy| policy == crate::seed::SeedPolicy::Shared)
}

impl Report {
    /// A report of `results` without hypotheses.
    #[cfg(test)]
    pub fn new(run: Option<&str>, results: RunResults) -> Report {
        let units = UnitTable::from_results(&results.units);
        Report::of(run, results.info, units, results.skipped)
    }

    /// A report of `units` (of what `info` says ran, `skipped` of them not run) without
    /// hypotheses.
    pub fn of(run: Option<&str>, info: RunInfo, units: UnitTable, skipped: usize) -> Report {
        Report {
            run: run.map(str::to_owned),
            info,
            units,
            skipped,
            hypotheses: Vec::new(),
            undecided: Vec::new(),
            integrity: None,
            sequential: None,
            stored: None,
        }
    }

    /// Decides `texts` together (parsing them first: one that does not parse is undecided) and
    /// adds them to the report; `preregistered` marks them in a confirmation's report.
    pub fn decide(&mut self, texts: &[String], seeds_shared: bool, options: &EvalOptions, preregistered: Option<bool>) {
        let mut parsed = Vec::new();
        // (index in `texts`, what went wrong), to list them in the order given.
        let mut undecided: Vec<(usize, Undecided)> = Vec::new();
        for (index, text) in texts.iter().enumerate() {
            match hypothesis::parse(text) {
                // The same hypothesis twice is one hypothesis (and one correction).
                Ok(h)
                    if parsed.iter().any(|(_, p)| *p == h)
                        || self.hypotheses.iter().any(|d| d.result.hypothesis == h.to_string()) => {}
                Ok(h) => parsed.push((index, h)),
                Err(error) => undecided.push((index, Undecided { hypothesis: text.clone(), error: error.to_string() })),
            }
        }
        let hypotheses: Vec<Hypothesis> = parsed.iter().map(|(_, h)| h.clone()).collect();
        let (results, failed) = decide(&hypotheses, &self.units, seeds_shared, options);
        for failure in failed {
            let (index, _) =
                parsed.iter().find(|(_, h)| h.to_string() == failure.hypothesis).expect("decided from parsed");
            undecided.push((*index, Undecided { hypothesis: texts[*index].clone(), error: failure.error }));
        }
        undecided.sort_by_key(|(index, _)| *index);
        self.hypotheses.extend(results.into_iter().map(|result| Decided { result, preregistered }));
        self.undecided.extend(undecided.into_iter().map(|(_, u)| u));
    }

    /// The report of a stored run, recomputed from its files: its recorded hypotheses (the
    /// experiment's declared ones, or a confirmation's pre-registered one) and `extra` ones, all
    /// corrected together (Holm at alpha 0.05). A confirmation's hypothesis is decided with the
    /// test, alpha and correction it registered, on its own; `extra` ones form a family of their
    /// own beside it, and the report carries the confirmation's integrity.
    pub fn from_store(store: &Store, run: &RunDir, extra: &[String]) -> Report {
        Report::from_store_with(store, run, extra, &EvalOptions::default())
    }

    /// [`Report::from_store`], deciding the run's own hypotheses and `extra` ones with `options`
    /// (alpha, correction, test, minimum effect). A confirmation's registered hypothesis is still
    /// decided as it was registered: options chosen after seeing the data cannot change it.
    pub fn from_store_with(store: &Store, run: &RunDir, extra: &[String], options: &EvalOptions) -> Report {
        // The units apart from the state, in plan order: no map of a million units beside them.
        let (state, units) = run.unit_table();
        for warning in &state.warnings {
            eprintln!("warning: {warning}");
        }
        let status = state.status_of(&units);
        let skipped = state.planned().saturating_sub(units.len());
        let mut report = Report::of(Some(&run.manifest.run), stored_info(run, &state), units, skipped);
        report.stored = Some((status, state.damage));
        let shared = seeds_shared(run);
        let defaults = EvalOptions::default();
        match run.read_preregistration() {
            Read::Found { record, .. } => {
                let mut registered =
                    EvalOptions { alpha: record.alpha, correction: record.correction, ..defaults.clone() };
                match record.test.parse() {
                    Ok(test) => registered.test = Some(test),
                    Err(error) => report.undecided.push(Undecided {
                        hypothesis: record.hypothesis.clone(),
                        error: format!("registered test: {error}"),
                    }),
                }
                if registered.test.is_some() {
                    report.decide(std::slice::from_ref(&record.hypothesis), shared, &registered, Some(true));
                }
                report.decide(extra, shared, options, Some(false));
                let result = report.hypotheses.iter().find(|d| d.preregistered == Some(true)).map(|d| &d.result);
                report.integrity = confirmation::assess_run(store, run, &state, &report.units, result);
            }
            _ => {
                let mut all = run.manifest.hypotheses.clone();
                all.extend(extra.iter().cloned());
                report.decide(&all, shared, options, None);
                report.integrity = confirmation::assess_run(store, run, &state, &report.units, None);
            }
        }
        if let Some(rule) = &run.manifest.stopping {
            let first = run.manifest.first_replicate;
            let results = crate::sequential::replay_table(rule, &run.manifest.experiment, first, &report.units);
            let all_decided = results.iter().all(|r| r.status != crate::sequential::Status::Open);
            // The last session's decisions must be what the stored units replay to: the
            // sequence is read in index order, so they reach the same decision at the same pair.
            // (The state's warnings, printed above, name a stop line that does not parse.)
            let stop = state.stop.clone();
            let disagreements = stop.as_ref().map_or_else(Vec::new, |(stop, at)| {
                let lines = stop.disagreements(&results);
                lines.into_iter().map(|line| format!("{at}: {line}")).collect()
            });
            for line in &disagreements {
                eprintln!("warning: the recorded stop disagrees with the replay: {line}");
            }
            let stop = stop.map(|(stop, _)| stop);
            report.sequential =
                Some(SequentialReport { rule: rule.clone(), results, all_decided, stop, disagreements });
        }
        report
    }

    /// Whether the run is sequential and stopped with every hypothesis decided.
    pub fn decided(&self) -> bool {
        self.stored.is_some_and(|(status, _)| status == Status::Decided)
    }

    /// Whether something in the report calls for exit code 1: a failed unit, a hypothesis that
    /// could not be decided, a confirmation that is not `VALID`.
    pub fn has_problems(&self) -> bool {
        self.units.failed() > 0
            || !self.undecided.is_empty()
            || self.stored.is_some_and(|(status, _)| status == Status::Damaged)
            || self.sequential.as_ref().is_some_and(|s| !s.disagreements.is_empty())
            || self.integrity.as_ref().is_some_and(|i| i.status != confirmation::Status::Valid)
    }

    /// The JSON object of `run --json` ([`summary::to_json`]) with `hypotheses` (a list of
    /// objects with `hypothesis`, `test`, `effect`, `ci`, `p`, `p_adjusted`, `verdict` and the
    /// rest of [`HypothesisResult`]), `hypothesis_errors` when some could not be decided
    /// (`hypothesis`, `error`), and `integrity` for a confirmation.
    pub fn to_json(&self) -> Value {
        self.with_hypotheses(summary::to_json_of(self.run.as_deref(), self.ran()))
    }

    /// Writes [`Report::to_json`] to `out`, byte for byte what `to_json().to_string()` is, but
    /// one unit at a time: the JSON object of every unit of a million-unit run, built at once,
    /// took about 2 KB per unit.
    pub fn write_json(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let Value::Object(object) = self.to_json_without_units() else {
            return serde_json::to_writer(out, &self.to_json()).map_err(std::io::Error::other);
        };
        out.write_all(b"{")?;
        for (index, (key, value)) in object.iter().enumerate() {
            if index > 0 {
                out.write_all(b",")?;
            }
            serde_json::to_writer(&mut *out, key)?;
            out.write_all(b":")?;
            serde_json::to_writer(&mut *out, value)?;
            // `units` follows `replicates` in [`summary::to_json`].
            if key == "replicates" {
                out.write_all(b",\"units\":[")?;
                for (index, unit) in self.units.iter().enumerate() {
                    if index > 0 {
                        out.write_all(b",")?;
                    }
                    serde_json::to_writer(&mut *out, &summary::unit_json(self.run.as_deref(), &unit.to_result()))?;
                }
                out.write_all(b"]")?;
            }
        }
        out.write_all(b"}")
    }

    /// [`Report::to_json`] without `units`: what the last line of `stream` holds.
    pub fn to_json_without_units(&self) -> Value {
        self.with_hypotheses(summary::aggregates_json(self.run.as_deref(), self.ran()))
    }

    /// What the summaries read of the report's run.
    pub fn ran(&self) -> summary::Ran<'_> {
        summary::Ran { info: &self.info, units: &self.units, skipped: self.skipped }
    }

    /// How many units needed retries and how their attempts and the failed units failed, by
    /// kind (error, panic, timeout): what to look at before trusting a run of flaky units.
    fn attempts(&self) -> Attempts {
        let mut attempts = Attempts::default();
        for unit in self.units.iter() {
            if !unit.attempts().is_empty() {
                attempts.retried_units += 1;
            }
            for attempt in unit.attempts() {
                *attempts.failed_attempts.entry(attempt.error.kind.name()).or_default() += 1;
            }
            if let Some(error) = unit.error() {
                *attempts.failed_units.entry(error.kind.name()).or_default() += 1;
            }
        }
        attempts
    }

    /// `damaged: ...` when the run's journals hold damaged or rejected records; `None` otherwise.
    fn damage_line(&self) -> Option<String> {
        let (status, damage) = self.stored?;
        (damage.total() > 0).then(|| {
            format!(
                "{}: {} damaged journal line(s), {} record(s) outside the plan, {} disagreeing record(s), {} unit(s) \
                 in doubt (each named on stderr){}",
                if status == Status::Damaged { "damaged" } else { "damage (every unit has a result)" },
                damage.lines,
                damage.rejected,
                damage.conflicts,
                damage.in_doubt,
                if status == Status::Damaged { "; `run --resume` runs the affected units again" } else { "" }
            )
        })
    }

    /// `retries: 3 units needed retries (4 failed attempts: 3 timeout, 1 error)`, and the failed
    /// units by kind; `None` when nothing failed.
    fn attempts_line(&self) -> Option<String> {
        let attempts = self.attempts();
        let by_kind = |counts: &BTreeMap<&str, usize>| {
            counts.iter().map(|(kind, n)| format!("{n} {kind}")).collect::<Vec<_>>().join(", ")
        };
        let mut parts = Vec::new();
        if attempts.retried_units > 0 {
            let failed: usize = attempts.failed_attempts.values().sum();
            parts.push(format!(
                "{} units needed retries ({failed} failed attempts: {})",
                attempts.retried_units,
                by_kind(&attempts.failed_attempts)
            ));
        }
        if !attempts.failed_units.is_empty() {
            let failed: usize = attempts.failed_units.values().sum();
            parts.push(format!("{failed} units failed ({})", by_kind(&attempts.failed_units)));
        }
        (!parts.is_empty()).then(|| format!("failures: {}", parts.join("; ")))
    }

    fn with_hypotheses(&self, mut value: Value) -> Value {
        if let Value::Object(object) = &mut value {
            let attempts = self.attempts();
            if attempts.retried_units > 0 || !attempts.failed_units.is_empty() {
                object.insert(
                    "failures".into(),
                    serde_json::json!({
                        "retried_units": attempts.retried_units,
                        "failed_attempts": attempts.failed_attempts,
                        "failed_units": attempts.failed_units,
                    }),
                );
            }
            if let Some((status, damage)) = &self.stored {
                object.insert("status".into(), serde_json::to_value(status).unwrap_or(Value::Null));
                object.insert("damage".into(), serde_json::to_value(damage).unwrap_or(Value::Null));
            }
            object.insert("hypotheses".into(), serde_json::to_value(&self.hypotheses).unwrap_or(Value::Null));
            if !self.undecided.is_empty() {
                object.insert("hypothesis_errors".into(), serde_json::to_value(&self.undecided).unwrap_or(Value::Null));
            }
            if let Some(integrity) = &self.integrity {
                object.insert("integrity".into(), serde_json::to_value(integrity).unwrap_or(Value::Null));
            }
            if let Some(sequential) = &self.sequential {
                // After optional stopping a fixed-n p-value is not a valid p-value: say so on
                // each hypothesis, beside the sequential decisions that are.
                if let Some(Value::Array(hypotheses)) = object.get_mut("hypotheses") {
                    for h in hypotheses.iter_mut().filter_map(Value::as_object_mut) {
                        h.insert("p_valid".into(), Value::Bool(false));
                    }
                }
                object.insert("sequential".into(), serde_json::to_value(sequential).unwrap_or(Value::Null));
            }
        }
        value
    }

    /// The report for a terminal: the headline (for a stored run), the table, the hypotheses
    /// with their explanations, what could not be decided, and the integrity.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        if let Some(run) = &self.run {
            let _ = writeln!(out, "{}", summary::headline_of(run, self.ran(), self.decided()));
        }
        out.push_str(&summary::to_table_of(self.ran()));
        if let Some(line) = self.damage_line() {
            let _ = writeln!(out, "{line}");
        }
        if let Some(line) = self.attempts_line() {
            let _ = writeln!(out, "{line}");
        }
        if let Some(sequential) = &self.sequential {
            out.push_str(&sequential_text(sequential));
        }
        if !self.hypotheses.is_empty() {
            let _ = writeln!(out, "\n{}", self.family_line());
            if self.sequential.is_some() {
                let _ = writeln!(
                    out,
                    "  NOT VALID as p-values: this run's length depended on its sequential test; the fixed-n \
                     tests below ignore that (see the sequential decisions above)"
                );
            }
            out.push_str(&summary::align(&self.hypothesis_rows(), 3));
            for decided in &self.hypotheses {
                let r = &decided.result;
                out.push_str(&wrap(&format!("{}: {}", r.hypothesis, r.explanation), 100, "  "));
            }
        }
        if !self.undecided.is_empty() {
            let _ = writeln!(out, "\ncould not be decided:");
            for undecided in &self.undecided {
                out.push_str(&wrap(&undecided.error, 100, "  "));
            }
        }
        if let Some(integrity) = &self.integrity {
            let _ = writeln!(out, "\n{}", integrity_line(integrity));
            let width = integrity.checks.iter().map(|c| c.check.name().len()).max().unwrap_or(0);
            let failed = integrity.checks.iter().any(|c| !c.ok);
            for check in &integrity.checks {
                let mark = match (check.ok, failed) {
                    (true, false) => "ok  ",
                    (true, true) => "ok      ",
                    (false, _) => "FAILED  ",
                };
                let first = format!("  {mark}{:<width$}  ", check.check.name());
                let rest = " ".repeat(first.chars().count());
                out.push_str(&wrap_hanging(&check.detail, 100, &first, &rest));
            }
            if !integrity.forced.is_empty() {
                let _ = writeln!(out, "  forced with --force despite: {}", integrity.forced.join(", "));
            }
        }
        out
    }

    /// The report in Markdown: tables to paste into a paper or a pull request.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        if let Some(run) = &self.run {
            let _ = writeln!(out, "{}\n", summary::headline_of(run, self.ran(), self.decided()));
        }
        out.push_str(&summary::to_markdown(self.ran()));
        if let Some(sequential) = &self.sequential {
            out.push_str(&sequential_text(sequential));
        }
        if let Some(line) = self.damage_line() {
            let _ = writeln!(out, "\n{line}");
        }
        if !self.hypotheses.is_empty() {
            let _ = writeln!(out, "\n{}\n", self.family_line());
            if self.sequential.is_some() {
                let _ = writeln!(out, "**Not valid as p-values**: this run stopped by its sequential test.\n");
            }
            let mut rows = self.hypothesis_rows();
            for row in rows.iter_mut().skip(1) {
                row[0] = format!("`{}`", row[0]);
            }
            out.push_str(&summary::markdown(&rows, 3));
            out.push('\n');
            for decided in &self.hypotheses {
                let r = &decided.result;
                let _ = writeln!(out, "- `{}`: {}", r.hypothesis, r.explanation);
            }
        }
        if !self.undecided.is_empty() {
            let _ = writeln!(out, "\nCould not be decided:\n");
            for undecided in &self.undecided {
                let _ = writeln!(out, "- `{}`: {}", undecided.hypothesis, undecided.error);
            }
        }
        if let Some(integrity) = &self.integrity {
            let _ = writeln!(out, "\n**{}**\n", integrity_line(integrity));
            let mut rows = vec![["check".to_owned(), "result".to_owned(), "detail".to_owned()]];
            for check in &integrity.checks {
                rows.push([
                    check.check.name().to_owned(),
                    if check.ok { "ok" } else { "**FAILED**" }.to_owned(),
                    check.detail.clone(),
                ]);
            }
            out.push_str(&summary::markdown(&rows, 3));
            if !integrity.forced.is_empty() {
                let _ = writeln!(out, "\nForced with `--force` despite: {}", integrity.forced.join(", "));
            }
        }
        out
    }

    /// `hypotheses (Holm-corrected over 2, alpha 0.05):`; in a confirmation's report with
    /// exploratory hypotheses beside the registered one, says that they are two families.
    fn family_line(&self) -> String {
        let correction = |first: &HypothesisResult| match (first.correction, first.hypotheses_in_run) {
            (_, 1) | (Correction::None, _) => "no correction needed for one".to_owned(),
            (Correction::Holm, m) => format!("Holm-corrected over {m}"),
            (Correction::BenjaminiHochberg, m) => format!("Benjamini–Hochberg-corrected over {m}"),
        };
        let first = &self.hypotheses[0].result;
        let exploratory = self.hypotheses.iter().find(|d| d.preregistered == Some(false)).map(|d| &d.result);
        match exploratory {
            Some(other) if self.hypotheses.iter().any(|d| d.preregistered == Some(true)) => format!(
                "hypotheses (the pre-registered one on its own at alpha {}; the others exploratory, {}, alpha {}):",
                number_text(first.alpha),
                correction(other),
                number_text(other.alpha)
            ),
            _ => format!("hypotheses ({}, alpha {}):", correction(first), number_text(first.alpha)),
        }
    }

    fn hypothesis_rows(&self) -> Vec<[String; 7]> {
        let level = self.hypotheses.first().map(|d| 1.0 - d.result.alpha).unwrap_or(0.95);
        let mut rows = vec![[
            "hypothesis".to_owned(),
            "verdict".to_owned(),
            "test".to_owned(),
            "effect".to_owned(),
            format!("{}% CI", number_text(level * 100.0)),
            "p".to_owned(),
            "p adj".to_owned(),
        ]];
        for decided in &self.hypotheses {
            let r = &decided.result;
            let mut hypothesis = r.hypothesis.clone();
            if decided.preregistered == Some(true) {
                hypothesis.push_str(" (pre-registered)");
            }
            rows.push([
                hypothesis,
                r.verdict.to_string(),
                r.test.to_string(),
                number(r.effect),
                r.ci.as_ref().map(summary::interval_text).unwrap_or_else(|| "-".into()),
                r.p.map(p_text).unwrap_or_else(|| "-".into()),
                r.p_adjusted.map(p_text).unwrap_or_else(|| "-".into()),
            ]);
        }
        rows
    }
}

fn integrity_line(integrity: &Integrity) -> String {
    match &integrity.hypothesis {
        Some(h) => format!("integrity of the confirmation of '{h}': {}", integrity.summary),
        None => format!("integrity of the confirmation: {}", integrity.summary),
    }
}

/// A p-value in a table: 4 decimals, or 2 significant digits below 0.001 (never a bare 0).
pub fn p_text(p: f64) -> String {
    if p >= 0.001 || p == 0.0 {
        format!("{p:.4}")
    } else {
        format!("{p:.1e}")
    }
}

/// A plain number without trailing zeros (`0.05`, `95`).
fn number_text(x: f64) -> String {
    let text = format!("{x:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// `text` wrapped at `width` columns, every line starting with `prefix`, continuation lines
/// indented two more spaces.
fn wrap(text: &str, width: usize, prefix: &str) -> String {
    wrap_hanging(text, width, prefix, &format!("{prefix}  "))
}

/// `text` wrapped at `width` columns, the first line starting with `first`, the others with
/// `rest`.
fn wrap_hanging(text: &str, width: usize, first: &str, rest: &str) -> String {
    let mut out = String::new();
    let mut line = first.to_owned();
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.chars().count() + 1 + word.chars().count() > width {
            out.push_str(&line);
            out.push('\n');
            line = rest.to_owned();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    if !empty {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{UnitResult, UnitStatus};

    fn unit(condition: &str, replicate: u64, metrics: &[(&str, f64)]) -> UnitResult {
        UnitResult {
            experiment: "exp".into(),
            condition: condition.into(),
            replicate,
            seed: 500 + replicate,
            status: UnitStatus::Ok,
            error: None,
            metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            records: Vec::new(),
            duration_ms: 1.0,
            attempts: Vec::new(),
            cache: Default::default(),
        }
    }

    fn results() -> RunResults {
        let mut units = Vec::new();
        for k in 0..12u64 {
            units.push(unit("baseline", k, &[("acc", 0.50 + 0.01 * (k % 4) as f64)]));
            units.push(unit("treated", k, &[("acc", 0.70 + 0.01 * (k % 3) as f64)]));
        }
        RunResults {
            info: RunInfo {
                experiment: "exp".into(),
                conditions: vec!["baseline".into(), "treated".into()],
                replicates: (0..12).collect(),
                seed: 1,
                units_planned: 24,
                units_per_condition: vec![12, 12],
                jobs: 1,
                limits: Default::default(),
            },
            units,
            skipped: 0,
            elapsed: std::time::Duration::ZERO,
        }
    }

    fn report(hypotheses: &[&str]) -> Report {
        let mut report = Report::new(Some("exp-1"), results());
        let texts: Vec<String> = hypotheses.iter().map(|h| h.to_string()).collect();
        report.decide(&texts, true, &EvalOptions::default(), None);
        report
    }

    #[test]
    fn json_has_the_hypothesis_fields_and_the_interval_of_every_mean() {
        let report = report(&["treated.acc > baseline.acc", "treated.acc != baseline.acc"]);
        let json = report.to_json();
        let hypotheses = json["hypotheses"].as_array().unwrap();
        assert_eq!(hypotheses.len(), 2);
        for h in hypotheses {
            for field in ["hypothesis", "test", "effect", "ci", "p", "p_adjusted", "verdict"] {
                assert!(h.get(field).is_some(), "{field} missing in {h}");
            }
            assert_eq!(h["hypotheses_in_run"], 2, "corrected together");
            assert!(h.get("preregistered").is_none());
        }
        assert_eq!(hypotheses[0]["verdict"]["kind"], "supported");
        assert!(json.get("hypothesis_errors").is_none() && json.get("integrity").is_none());
        let ci = &json["conditions"]["baseline"]["acc"]["ci"];
        let (low, high, mean) = (ci["low"].as_f64().unwrap(), ci["high"].as_f64().unwrap(), 0.515);
        assert!(low < mean && mean < high && ci["level"] == 0.95, "{ci}");
        assert!(!report.has_problems());
        let mut written = Vec::new();
        report.write_json(&mut written).unwrap();
        assert_eq!(String::from_utf8(written).unwrap(), json.to_string(), "written one unit at a time, the same bytes");
    }

    #[test]
    fn undecidable_hypotheses_are_set_aside_and_the_rest_still_corrected_together() {
        let report = report(&["treated.acc > baseline.acc", "treated.accuracy > baseline.acc", "treated.acc >> b.x"]);
        assert_eq!(report.hypotheses.len(), 1);
        assert_eq!(report.hypotheses[0].result.hypotheses_in_run, 1);
        let errors: Vec<&str> = report.undecided.iter().map(|u| u.error.as_str()).collect();
        assert!(errors[0].contains("has no metric 'accuracy'; its metrics: acc"), "{errors:?}");
        assert!(errors[1].contains("expected a condition name") && errors[1].contains('^'), "{errors:?}");
        assert!(report.has_problems());
        let json = report.to_json();
        assert_eq!(json["hypothesis_errors"][0]["hypothesis"], "treated.accuracy > baseline.acc");
        let text = report.to_text();
        assert!(text.contains("could not be decided:"), "{text}");
    }

    #[test]
    fn text_and_markdown_show_the_same_numbers() {
        let report = report(&["treated.acc > baseline.acc"]);
        let text = report.to_text();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("run exp-1: exp, 2 conditions x 12 replicates"), "{text}");
        assert!(lines[1].split_whitespace().eq(["condition", "metric", "n", "mean", "sd", "95%", "CI", "min", "max"]));
        let baseline = lines.iter().find(|l| l.starts_with("baseline")).unwrap();
        assert!(baseline.contains("[0.5"), "{baseline}");
        assert!(text.contains("hypotheses (no correction needed for one, alpha 0.05):"), "{text}");
        let row = lines.iter().find(|l| l.starts_with("treated.acc > baseline.acc  ")).unwrap();
        let r = &report.hypotheses[0].result;
        for cell in [number(r.effect), p_text(r.p.unwrap()), "supported".into(), "paired-permutation".into()] {
            assert!(row.contains(&cell), "{row} lacks {cell}");
        }
        assert!(text.contains("  treated.acc > baseline.acc: treated.acc (mean 0.71"), "{text}");
        assert!(text.lines().all(|l| l.chars().count() <= 100 || !l.starts_with("  ")), "{text}");

        let md = report.to_markdown();
        assert!(md.contains("| condition | metric | n | mean | sd | 95% CI | min | max |"), "{md}");
        assert!(md.contains("|---|---|---:|---:|---:|---:|---:|---:|"), "{md}");
        assert!(md.contains("| `treated.acc > baseline.acc` | supported | paired-permutation |"), "{md}");
        assert!(md.contains(&format!("| {} |", p_text(r.p.unwrap()))), "{md}");
    }

    #[test]
    fn p_values_never_print_as_zero() {
        assert_eq!(p_text(0.04321), "0.0432");
        assert_eq!(p_text(0.0000123), "1.2e-5");
        assert_eq!(p_text(1.0), "1.0000");
        assert_eq!(wrap("aaa bbb ccc", 9, "  "), "  aaa bbb\n    ccc\n");
    }
}

/// What [`Report::attempts`] counts.
#[derive(Default)]
struct Attempts {
    retried_units: usize,
    failed_attempts: BTreeMap<&'static str, usize>,
    failed_units: BTreeMap<&'static str, usize>,
}

/// The sequential decisions of a report, as text.
fn sequential_text(sequential: &SequentialReport) -> String {
    let rule = &sequential.rule;
    let mut out = format!(
        "\nsequential decisions (anytime-valid confidence sequences on the paired differences, alpha {} \
         Bonferroni-split over {}, max {} replicates{}{}):\n",
        number_text(rule.alpha),
        rule.hypotheses.len(),
        rule.max_replicates,
        if rule.min_replicates > 0 { format!(", min {}", rule.min_replicates) } else { String::new() },
        rule.min_effect.map(|e| format!(", min effect {}", number_text(e))).unwrap_or_default()
    );
    for result in &sequential.results {
        let at = result.decided_at.map(|n| format!(" (decided after {n} pairs)")).unwrap_or_default();
        let _ = writeln!(out, "  {} [{}]{at}", crate::sequential::line(result), result.test.name());
    }
    if sequential.all_decided {
        let _ = writeln!(out, "  every hypothesis is decided");
    }
    if let Some(stop) = &sequential.stop {
        let at = stop.at.map(|n| format!(" after {n} pairs")).unwrap_or_default();
        let why = match stop.reason {
            crate::sequential::StopReason::Decided => "every hypothesis decided",
            crate::sequential::StopReason::Maximum => "at the maximum",
            crate::sequential::StopReason::Interrupted => "interrupted",
        };
        let _ = writeln!(out, "  the run stopped{at}: {why} (recorded in its journal)");
    }
    for line in &sequential.disagreements {
        let _ = writeln!(out, "  DISAGREES with the recorded stop: {line}");
    }
    out
}
