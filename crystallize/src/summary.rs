//! Aggregates of a run: per condition and metric n, mean, sd, a 95 % interval of the mean, min,
//! max; as a terminal table and as the JSON object of `run --json` (CLI.md). The hypotheses and
//! the integrity of a confirmation are added by [`crate::report`].

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::runner::{RunInfo, RunResults, UnitResult};
use crate::stats::{self, Alternative, Interval, StatsError};
use crate::unit_table::{UnitRow, UnitTable};

/// The confidence level of the interval of every mean in a summary.
pub const LEVEL: f64 = 0.95;

/// Summary statistics of one metric in one condition, over its successful units.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricSummary {
    /// Number of units that recorded the metric.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1 in the denominator); `null` in JSON when n < 2.
    pub sd: Option<f64>,
    /// The 95 % interval of the mean; `null` when n < 2. For 0/1 values it is the
    /// Clopper–Pearson interval of the proportion (inside [0, 1]); otherwise the t interval
    /// (`mean ± t(0.975, n − 1) · sd / √n`), clamped to the metric's declared bounds. When
    /// every value is the same it is the single point `[mean, mean]`.
    pub ci: Option<Interval>,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

impl MetricSummary {
    /// Summarises `values`; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<MetricSummary> {
        MetricSummary::of_bounded(values, None)
    }

    /// Summarises the values of a metric declared to lie in `bounds` (see
    /// `registry::declared_bounds`): its interval never leaves them.
    pub fn of_bounded(values: &[f64], bounds: Option<(f64, f64)>) -> Option<MetricSummary> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let sd = (n > 1).then(|| {
            let squares: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
            (squares / (n - 1) as f64).sqrt()
        });
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let ci = bounded_mean_interval(values, LEVEL, bounds);
        Some(MetricSummary { n, mean, sd, ci, min, max })
    }
}

/// The two-sided t interval of the mean of `values` at `level` (the one-sample t test's
/// interval); `None` below 2 values or for non-finite values. Values without spread give the
/// point `[mean, mean]`.
pub fn mean_interval(values: &[f64], level: f64) -> Option<Interval> {
    if values.len() < 2 {
        return None;
    }
    match stats::one_sample_t(values, 0.0, Alternative::TwoSided) {
        Ok(test) => test.confidence_interval(level).ok(),
        Err(StatsError::ZeroVariance { .. }) => {
            let mean = values[0];
            Some(Interval { low: mean, high: mean, level })
        }
        Err(_) => None,
    }
}

/// The interval of the mean of `values` that respects their range: Clopper–Pearson for 0/1
/// values (unless declared wider than [0, 1]), otherwise [`mean_interval`] clamped to `bounds`.
pub fn bounded_mean_interval(values: &[f64], level: f64, bounds: Option<(f64, f64)>) -> Option<Interval> {
    if values.len() < 2 {
        return None;
    }
    let within_unit = bounds.is_none_or(|(low, high)| low >= 0.0 && high <= 1.0);
    if within_unit && stats::is_binary(values) {
        let successes = values.iter().filter(|v| **v == 1.0).count() as u64;
        if let Ok(interval) = stats::clopper_pearson(successes, values.len() as u64, level) {
            return Some(interval);
        }
    }
    let interval = mean_interval(values, level)?;
    Some(match bounds {
        Some((low, high)) => stats::clamp_interval(interval, low, high),
        None => interval,
    })
}

/// An interval as `[low, high]` in the format of [`number`].
pub fn interval_text(ci: &Interval) -> String {
    format!("[{}, {}]", number(ci.low), number(ci.high))
}

/// The summary of one condition.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConditionSummary {
    /// The condition.
    pub condition: String,
    /// Units that finished, well or not.
    pub units: usize,
    /// Units that failed.
    pub failed: usize,
    /// Each metric, by name.
    pub metrics: Vec<(String, MetricSummary)>,
}

/// What the summaries read of a run: what ran, its units (compactly) and how many were not run.
#[derive(Clone, Copy)]
pub struct Ran<'a> {
    /// What ran.
    pub info: &'a RunInfo,
    /// Its finished units.
    pub units: &'a UnitTable,
    /// Units not run.
    pub skipped: usize,
}

/// Summarises `units` per condition, in the order of `conditions`.
pub fn summarize(conditions: &[String], units: &[UnitResult]) -> Vec<ConditionSummary> {
    summarize_table(conditions, &UnitTable::from_results(units))
}

/// [`summarize`] of the units of a [`UnitTable`].
pub fn summarize_table(conditions: &[String], units: &UnitTable) -> Vec<ConditionSummary> {
    conditions
        .iter()
        .map(|condition| {
            let mine: Vec<UnitRow<'_>> = units.iter().filter(|u| u.condition() == condition).collect();
            let names: BTreeSet<&str> = mine.iter().flat_map(|u| u.metrics().map(|(name, _)| name)).collect();
            let metrics = names
                .into_iter()
                .filter_map(|name| {
                    let id = units.metric_index(name)?;
                    let values: Vec<f64> = mine.iter().filter(|u| u.is_ok()).filter_map(|u| u.metric_at(id)).collect();
                    let bounds = mine.first().and_then(|u| crate::registry::declared_bounds(u.experiment(), name));
                    MetricSummary::of_bounded(&values, bounds).map(|summary| (name.to_owned(), summary))
                })
                .collect();
            ConditionSummary {
                condition: condition.clone(),
                units: mine.len(),
                failed: mine.iter().filter(|u| !u.is_ok()).count(),
                metrics,
            }
        })
        .collect()
}

/// `results` as the summaries read it (its units copied into a [`UnitTable`]), to `read`.
fn with_ran<T>(results: &RunResults, read: impl FnOnce(Ran<'_>) -> T) -> T {
    let units = UnitTable::from_results(&results.units);
    read(Ran { info: &results.info, units: &units, skipped: results.skipped })
}

/// The JSON object of `run --json`: `run`, `experiment`, `seed`, `replicates`, `units`,
/// `conditions` (condition → metric → n, mean, sd, ci, min, max; `ci` is `{low, high, level}`
/// or null), `failed`, `skipped`.
pub fn to_json(run_id: Option<&str>, results: &RunResults) -> Value {
    with_ran(results, |ran| json_object(run_id, ran, true))
}

/// [`to_json`] of a [`Ran`].
pub fn to_json_of(run_id: Option<&str>, ran: Ran<'_>) -> Value {
    json_object(run_id, ran, true)
}

/// [`to_json`] without `units`: the aggregates of a run whose units were already printed one by
/// one (the summary line of `stream`), without building a JSON object per unit to drop.
pub fn aggregates_json(run_id: Option<&str>, ran: Ran<'_>) -> Value {
    json_object(run_id, ran, false)
}

fn json_object(run_id: Option<&str>, ran: Ran<'_>, with_units: bool) -> Value {
    let summaries = summarize_table(&ran.info.conditions, ran.units);
    let mut conditions = Map::new();
    for summary in &summaries {
        let metrics: Map<String, Value> = summary
            .metrics
            .iter()
            .map(|(name, m)| {
                (name.clone(), json!({"n": m.n, "mean": m.mean, "sd": m.sd, "ci": m.ci, "min": m.min, "max": m.max}))
            })
            .collect();
        conditions.insert(summary.condition.clone(), Value::Object(metrics));
    }
    let mut object = Map::new();
    object.insert("run".into(), json!(run_id));
    object.insert("experiment".into(), json!(ran.info.experiment));
    object.insert("seed".into(), json!(ran.info.seed));
    object.insert("replicates".into(), json!(ran.info.replicates.len()));
    if with_units {
        object.insert("units".into(), ran.units.iter().map(|u| unit_json(run_id, &u.to_result())).collect());
    }
    object.insert("conditions".into(), Value::Object(conditions));
    object.insert("failed".into(), json!(ran.units.failed()));
    object.insert("skipped".into(), json!(ran.skipped));
    Value::Object(object)
}

/// One unit as a JSON object of type `unit` (CLI.md).
pub fn unit_json(run_id: Option<&str>, unit: &UnitResult) -> Value {
    let mut object = Map::new();
    object.insert("type".into(), json!("unit"));
    object.insert("run".into(), json!(run_id));
    if let Ok(Value::Object(fields)) = serde_json::to_value(unit) {
        object.extend(fields);
    }
    Value::Object(object)
}

/// The first line of a run's report: what ran and how it ended. Contains nothing that differs
/// between the end of `run` and a later `report` (no timings), so the two print the same.
///
/// `decided`: the run is sequential and stopped with every hypothesis decided, so the units it
/// did not run are "not needed" rather than "not run yet".
pub fn headline_of(run_id: &str, ran: Ran<'_>, decided: bool) -> String {
    let info = ran.info;
    // A confirmation runs replicate indices that do not start at 0: say which.
    let range = match (info.replicates.first(), info.replicates.last()) {
        (Some(&first), Some(&last)) if first != 0 => format!(" ({first}..={last})"),
        _ => String::new(),
    };
    let failed = ran.units.failed();
    let mut line = format!(
        "run {run_id}: {}, {} conditions x {} replicates{range}, seed {}: {} units done",
        info.experiment,
        info.conditions.len(),
        info.replicates.len(),
        info.seed,
        ran.units.len() - failed,
    );
    if failed > 0 {
        line += &format!(", {failed} FAILED");
    }
    if ran.skipped > 0 {
        let why = if decided { "not needed (every hypothesis decided)" } else { "not run yet" };
        line += &format!(", {} {why}", ran.skipped);
    }
    line
}

/// The terminal table of a run: one row per condition and metric.
pub fn to_table(results: &RunResults) -> String {
    with_ran(results, to_table_of)
}

/// [`to_table`] of a [`Ran`].
pub fn to_table_of(ran: Ran<'_>) -> String {
    align(&rows(ran), 2)
}

/// The table of a run in Markdown: one row per condition and metric.
pub fn to_markdown(ran: Ran<'_>) -> String {
    markdown(&rows(ran), 2)
}

/// The header and the rows of a run's table.
fn rows(ran: Ran<'_>) -> Vec<[String; 8]> {
    let summaries = summarize_table(&ran.info.conditions, ran.units);
    let mut rows: Vec<[String; 8]> =
        vec![["condition", "metric", "n", "mean", "sd", "95% CI", "min", "max"].map(String::from)];
    for summary in &summaries {
        if summary.metrics.is_empty() {
            let mut row: [String; 8] = Default::default();
            row[0] = summary.condition.clone();
            row[1] = "(no metrics)".into();
            rows.push(row);
        }
        for (name, m) in &summary.metrics {
            rows.push([
                summary.condition.clone(),
                name.clone(),
                m.n.to_string(),
                number(m.mean),
                m.sd.map(number).unwrap_or_else(|| "-".into()),
                m.ci.as_ref().map(interval_text).unwrap_or_else(|| "-".into()),
                number(m.min),
                number(m.max),
            ]);
        }
    }
    rows
}

/// A Markdown table: the first row is the header; the first `text_columns` columns are
/// left-aligned, the others right-aligned. `|` in cells is escaped.
pub fn markdown<const N: usize>(rows: &[[String; N]], text_columns: usize) -> String {
    let mut out = String::new();
    let line = |cells: &[String; N]| {
        let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
        format!("| {} |\n", cells.join(" | "))
    };
    let Some((header, body)) = rows.split_first() else { return out };
    out.push_str(&line(header));
    let rule: Vec<&str> = (0..N).map(|c| if c < text_columns { "---" } else { "---:" }).collect();
    out.push_str(&format!("|{}|\n", rule.join("|")));
    for row in body {
        out.push_str(&line(row));
    }
    out
}

/// Aligns a table: the first `text_columns` columns left-aligned (names), the rest right-aligned
/// (numbers), as in every statistics table.
pub fn align<const N: usize>(rows: &[[String; N]], text_columns: usize) -> String {
    let widths: Vec<usize> = (0..N).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            if column < text_columns {
                let _ = write!(line, "{cell:<width$}  ", width = widths[column]);
            } else {
                let _ = write!(line, "{cell:>width$}  ", width = widths[column]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A number in a table: integers as integers, others with 4 significant decimals.
pub fn number(x: f64) -> String {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else if x.is_finite() {
        format!("{x:.4}")
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `summarize` computed from one record per unit before the units were held in a
    /// [`UnitTable`]: the oracle the table's summary is held to.
    fn summarize_records(conditions: &[String], units: &[UnitResult]) -> Vec<ConditionSummary> {
        conditions
            .iter()
            .map(|condition| {
                let mine: Vec<&UnitResult> = units.iter().filter(|u| &u.condition == condition).collect();
                let names: BTreeSet<&String> = mine.iter().flat_map(|u| u.metrics.keys()).collect();
                let metrics = names
                    .into_iter()
                    .filter_map(|name| {
                        let values: Vec<f64> =
                            mine.iter().filter(|u| u.is_ok()).filter_map(|u| u.metrics.get(name).copied()).collect();
                        MetricSummary::of_bounded(&values, None).map(|summary| (name.clone(), summary))
                    })
                    .collect();
                ConditionSummary {
                    condition: condition.clone(),
                    units: mine.len(),
                    failed: mine.iter().filter(|u| !u.is_ok()).count(),
                    metrics,
                }
            })
            .collect()
    }

    #[test]
    fn the_summary_of_the_compact_units_is_the_summary_of_their_records_bit_for_bit() {
        let mut units = Vec::new();
        for replicate in 0..40u64 {
            for (index, condition) in ["baseline", "treated", "other"].iter().enumerate() {
                let x = ((replicate * 7919 + index as u64 * 104729) % 1000) as f64 / 997.0;
                let mut metrics: Vec<(String, f64)> = vec![("acc".into(), x * 0.1 + 0.3)];
                if replicate % 3 != 0 {
                    metrics.push(("latency".into(), 1.0 / (x + 0.01)));
                }
                if replicate % 5 == 0 {
                    metrics.push(("zero_one".into(), (replicate % 2) as f64));
                }
                units.push(UnitResult {
                    experiment: "summary-oracle".into(),
                    condition: condition.to_string(),
                    replicate,
                    seed: replicate,
                    status: if replicate % 11 == 4 {
                        crate::runner::UnitStatus::Error
                    } else {
                        crate::runner::UnitStatus::Ok
                    },
                    error: None,
                    metrics: metrics.into_iter().collect(),
                    records: Vec::new(),
                    duration_ms: 1.0,
                    attempts: Vec::new(),
                    cache: Default::default(),
                });
            }
        }
        let conditions: Vec<String> = ["treated", "baseline", "missing"].map(String::from).to_vec();
        let expected = summarize_records(&conditions, &units);
        let table = summarize_table(&conditions, &UnitTable::from_results(&units));
        assert_eq!(format!("{table:?}"), format!("{expected:?}"), "the same numbers, to the last bit");
        assert_eq!(table, expected);
    }

    #[test]
    fn summary_uses_the_sample_standard_deviation() {
        let s = MetricSummary::of(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(s.n, 4);
        assert_eq!(s.mean, 2.5);
        assert!((s.sd.unwrap() - 1.290_994_448_735_805_6).abs() < 1e-15);
        assert_eq!((s.min, s.max), (1.0, 4.0));
    }

    #[test]
    fn one_value_has_no_standard_deviation() {
        assert_eq!(MetricSummary::of(&[3.0]).unwrap().sd, None);
        assert_eq!(MetricSummary::of(&[]), None);
    }

    #[test]
    fn the_interval_of_a_mean_is_the_t_interval() {
        // scipy.stats.t.interval(0.95, df=3, loc=2.5, scale=scipy.stats.sem([1, 2, 3, 4]))
        let ci = mean_interval(&[1.0, 2.0, 3.0, 4.0], 0.95).unwrap();
        assert!((ci.low - 0.445_739_743_239_121).abs() < 1e-9, "{ci:?}");
        assert!((ci.high - 4.554_260_256_760_879).abs() < 1e-9, "{ci:?}");
        assert_eq!(MetricSummary::of(&[1.0, 2.0, 3.0, 4.0]).unwrap().ci, Some(ci));
        // No spread: the single point; one value: none.
        assert_eq!(mean_interval(&[2.0, 2.0, 2.0], 0.95), Some(Interval { low: 2.0, high: 2.0, level: 0.95 }));
        assert_eq!(mean_interval(&[2.0], 0.95), None);
        assert_eq!(interval_text(&ci), "[0.4457, 4.5543]");
    }

    #[test]
    fn markdown_tables_align_numbers_right_and_escape_pipes() {
        let rows = [["name".to_owned(), "n".to_owned()], ["a|b".to_owned(), "3".to_owned()]];
        assert_eq!(markdown(&rows, 1), "| name | n |\n|---|---:|\n| a\\|b | 3 |\n");
    }

    #[test]
    fn numbers_print_compactly() {
        assert_eq!(number(1.0), "1");
        assert_eq!(number(0.5), "0.5000");
        assert_eq!(number(f64::NAN), "NaN");
    }
}
