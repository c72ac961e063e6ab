//! [`UnitTable`]: the results of a run's units held compactly, for the report of a stored run.
//!
//! A [`UnitResult`] is about 230 bytes of struct plus its owned strings (experiment, condition,
//! every metric's name): at a million units, the report held more memory in them than in
//! anything else. The table keeps one fixed-size row per unit (its replicate, seed, status and
//! duration, and indices into shared tables of experiment, condition and metric names), its
//! metrics as `(metric, value)` pairs in one arena, and whatever else a unit has (an error,
//! tagged records, retried attempts, cache counts: rare) on the side. What the statistics read
//! (values by condition and metric, with their replicate indices) is read off the rows; a whole
//! [`UnitResult`] is rebuilt only for the one unit that needs it (`report --json` writes the
//! units one at a time), field for field what was stored, so its JSON is the same bytes.

use std::collections::{BTreeMap, HashMap};

use crate::results::{Attempt, CacheCount, MetricRecord, Metrics, UnitError, UnitResult, UnitStatus};

/// One unit: fixed size (48 bytes), its names as indices into the table's names.
#[derive(Clone, Debug)]
struct Row {
    replicate: u64,
    seed: u64,
    duration_ms: f64,
    /// Its metrics: `values[start..start + len]`, in name order (as [`Metrics`] holds them).
    start: usize,
    /// `len` in the low 31 bits, and in the top one whether the unit succeeded (a bool of its own
    /// would make the row 56 bytes).
    len_ok: u32,
    experiment: u32,
    condition: u32,
    /// Its index in `extras`, or [`NONE`] when it has nothing more.
    extra: u32,
}

/// The bit of [`Row::len_ok`] that says the unit succeeded.
const OK: u32 = 1 << 31;

impl Row {
    fn ok(&self) -> bool {
        self.len_ok & OK != 0
    }

    fn len(&self) -> usize {
        (self.len_ok & !OK) as usize
    }
}

/// No extra.
const NONE: u32 = u32::MAX;

/// What few units have, kept beside the rows.
#[derive(Clone, Debug, Default)]
struct Extra {
    error: Option<UnitError>,
    records: Vec<MetricRecord>,
    attempts: Vec<Attempt>,
    cache: BTreeMap<String, CacheCount>,
}

/// Distinct names, each with its index.
#[derive(Clone, Debug, Default)]
struct Names {
    names: Vec<String>,
    index: HashMap<String, u32>,
}

impl Names {
    /// `name`'s index, adding it if new.
    fn intern(&mut self, name: String) -> u32 {
        if let Some(&index) = self.index.get(&name) {
            return index;
        }
        // More than 4 billion distinct names cannot be held in memory anyway.
        let index = u32::try_from(self.names.len()).unwrap_or(NONE - 1);
        self.names.push(name.clone());
        self.index.insert(name, index);
        index
    }

    fn find(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

    fn name(&self, index: u32) -> &str {
        self.names.get(index as usize).map_or("", String::as_str)
    }
}

/// The results of a run's units, compactly (see the module's documentation), in the order they
/// were added or sorted into.
#[derive(Clone, Debug, Default)]
pub struct UnitTable {
    experiments: Names,
    conditions: Names,
    metrics: Names,
    rows: Vec<Row>,
    /// Every unit's metrics, `(metric name's index, value)`.
    values: Vec<(u32, f64)>,
    extras: Vec<Extra>,
}

/// One unit of a [`UnitTable`], read in place.
#[derive(Clone, Copy, Debug)]
pub struct UnitRow<'a> {
    table: &'a UnitTable,
    row: &'a Row,
}

impl UnitTable {
    /// An empty table whose conditions are `conditions`, in this order: each gets its index in
    /// it (see [`UnitTable::sort_by_condition_index`]).
    pub fn with_conditions(conditions: &[String]) -> UnitTable {
        let mut table = UnitTable::default();
        for condition in conditions {
            table.conditions.intern(condition.clone());
        }
        table
    }

    /// The table of `units`, in their order.
    pub fn from_results(units: &[UnitResult]) -> UnitTable {
        let mut table = UnitTable::default();
        table.rows.reserve(units.len());
        for unit in units {
            table.push(unit.clone());
        }
        table
    }

    /// Adds `unit` at the end; its index.
    pub fn push(&mut self, unit: UnitResult) -> usize {
        let row = self.row_of(unit);
        self.rows.push(row);
        self.rows.len() - 1
    }

    /// Replaces unit `index` with `unit` (its old metrics stay unused in the arena: a unit is
    /// replaced only when a journal holds several records of it, which is rare).
    pub fn replace(&mut self, index: usize, unit: UnitResult) {
        let old_extra = self.rows.get(index).map_or(NONE, |row| row.extra);
        let mut row = self.row_of_reusing(unit, old_extra);
        if let Some(slot) = self.rows.get_mut(index) {
            std::mem::swap(slot, &mut row);
        }
    }

    fn row_of(&mut self, unit: UnitResult) -> Row {
        self.row_of_reusing(unit, NONE)
    }

    /// The row of `unit`, its extra put in slot `reuse` when there is one.
    fn row_of_reusing(&mut self, unit: UnitResult, reuse: u32) -> Row {
        let UnitResult {
            experiment,
            condition,
            replicate,
            seed,
            status,
            error,
            metrics,
            records,
            duration_ms,
            attempts,
            cache,
        } = unit;
        let start = self.values.len();
        let len = metrics.len();
        for (name, value) in metrics {
            let id = self.metrics.intern(name);
            self.values.push((id, value));
        }
        let extra = if error.is_some() || !records.is_empty() || !attempts.is_empty() || !cache.is_empty() {
            let extra = Extra { error, records, attempts, cache };
            match self.extras.get_mut(reuse as usize) {
                Some(slot) => {
                    *slot = extra;
                    reuse
                }
                None => {
                    self.extras.push(extra);
                    u32::try_from(self.extras.len() - 1).unwrap_or(NONE)
                }
            }
        } else {
            NONE
        };
        // A unit of 2^31 metrics would be a journal line of over 40 GB: the count cannot overflow.
        let len = u32::try_from(len).unwrap_or(u32::MAX) & !OK;
        Row {
            replicate,
            seed,
            duration_ms,
            start,
            len_ok: if status == UnitStatus::Ok { len | OK } else { len },
            experiment: self.experiments.intern(experiment),
            condition: self.conditions.intern(condition),
            extra,
        }
    }

    /// Reserves room for `more` units (and a metric each).
    pub(crate) fn reserve(&mut self, more: usize) {
        self.rows.reserve(more);
        self.values.reserve(more);
    }

    /// How many units.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Unit `index`.
    pub fn get(&self, index: usize) -> Option<UnitRow<'_>> {
        self.rows.get(index).map(|row| UnitRow { table: self, row })
    }

    /// Every unit, in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = UnitRow<'_>> + ExactSizeIterator + Clone + '_ {
        self.rows.iter().map(move |row| UnitRow { table: self, row })
    }

    /// How many units failed.
    pub fn failed(&self) -> usize {
        self.rows.iter().filter(|row| !row.ok()).count()
    }

    /// The index of metric `name`, when some unit has it: for [`UnitRow::metric_at`].
    pub fn metric_index(&self, name: &str) -> Option<u32> {
        self.metrics.find(name)
    }

    /// Every unit rebuilt as a [`UnitResult`], in order (for the few readers that want them
    /// all, such as the HTML report).
    pub fn to_results(&self) -> Vec<UnitResult> {
        self.iter().map(|unit| unit.to_result()).collect()
    }

    /// Keeps the units for which `keep(index)` holds, in order.
    pub(crate) fn retain_indices(&mut self, mut keep: impl FnMut(usize) -> bool) {
        let mut index = 0;
        self.rows.retain(|_| {
            index += 1;
            keep(index - 1)
        });
    }

    /// Sorts the units by condition (its index: the order of [`UnitTable::with_conditions`]), then
    /// replicate; units of the same condition and replicate stay in no particular order.
    pub(crate) fn sort_by_condition_index(&mut self) {
        self.rows.sort_unstable_by_key(|row| (row.condition, row.replicate));
    }

    /// Frees what the table reserved beyond what it holds.
    pub(crate) fn shrink_to_fit(&mut self) {
        self.rows.shrink_to_fit();
        self.values.shrink_to_fit();
        self.extras.shrink_to_fit();
    }
}

impl<'a> UnitRow<'a> {
    /// The experiment.
    pub fn experiment(self) -> &'a str {
        self.table.experiments.name(self.row.experiment)
    }

    /// The condition.
    pub fn condition(self) -> &'a str {
        self.table.conditions.name(self.row.condition)
    }

    /// The replicate index.
    pub fn replicate(self) -> u64 {
        self.row.replicate
    }

    /// The unit's seed.
    pub fn seed(self) -> u64 {
        self.row.seed
    }

    /// Whether it succeeded.
    pub fn is_ok(self) -> bool {
        self.row.ok()
    }

    fn pairs(self) -> &'a [(u32, f64)] {
        let start = self.row.start;
        self.table.values.get(start..start.saturating_add(self.row.len())).unwrap_or(&[])
    }

    /// Each metric's name and value, in name order.
    pub fn metrics(self) -> impl Iterator<Item = (&'a str, f64)> + 'a {
        let names = &self.table.metrics;
        self.pairs().iter().map(move |(id, value)| (names.name(*id), *value))
    }

    /// The value of metric `name`.
    pub fn metric(self, name: &str) -> Option<f64> {
        self.metric_at(self.table.metric_index(name)?)
    }

    /// The value of the metric of index `id` ([`UnitTable::metric_index`]).
    pub fn metric_at(self, id: u32) -> Option<f64> {
        self.pairs().iter().find(|(metric, _)| *metric == id).map(|(_, value)| *value)
    }

    fn extra(self) -> Option<&'a Extra> {
        self.table.extras.get(self.row.extra as usize)
    }

    /// Why it failed, when it did.
    pub fn error(self) -> Option<&'a UnitError> {
        self.extra().and_then(|extra| extra.error.as_ref())
    }

    /// The attempts that failed before this one (`--retries`).
    pub fn attempts(self) -> &'a [Attempt] {
        self.extra().map_or(&[], |extra| extra.attempts.as_slice())
    }

    /// The unit as a [`UnitResult`], field for field what was added.
    pub fn to_result(self) -> UnitResult {
        let mut metrics = Metrics::new();
        for (name, value) in self.metrics() {
            metrics.insert(name.to_owned(), value);
        }
        let extra = self.extra();
        UnitResult {
            experiment: self.experiment().to_owned(),
            condition: self.condition().to_owned(),
            replicate: self.row.replicate,
            seed: self.row.seed,
            status: if self.row.ok() { UnitStatus::Ok } else { UnitStatus::Error },
            error: extra.and_then(|e| e.error.clone()),
            metrics,
            records: extra.map(|e| e.records.clone()).unwrap_or_default(),
            duration_ms: self.row.duration_ms,
            attempts: extra.map(|e| e.attempts.clone()).unwrap_or_default(),
            cache: extra.map(|e| e.cache.clone()).unwrap_or_default(),
        }
    }
}

// The size the memory of a big report was planned with.
const _: () = assert!(std::mem::size_of::<Row>() == 48);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{FailureKind, UnitError};

    fn unit(condition: &str, replicate: u64, metrics: &[(&str, f64)]) -> UnitResult {
        UnitResult {
            experiment: "exp".into(),
            condition: condition.into(),
            replicate,
            seed: 100 + replicate,
            status: UnitStatus::Ok,
            error: None,
            metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            records: Vec::new(),
            duration_ms: 1.5,
            attempts: Vec::new(),
            cache: Default::default(),
        }
    }

    #[test]
    fn every_unit_comes_back_field_for_field() {
        let mut failed = unit("b", 1, &[("x", -0.0)]);
        failed.status = UnitStatus::Error;
        failed.error =
            Some(UnitError { message: "boom".into(), location: Some("a.rs:1:2".into()), kind: FailureKind::Panic });
        failed.records = vec![MetricRecord { name: "x".into(), value: 1.0, tags: vec![("k".into(), "v".into())] }];
        failed.cache.insert("step".into(), CacheCount { hits: 2, misses: 1 });
        let units = vec![unit("a", 0, &[("y", 2.0), ("x", f64::MIN_POSITIVE)]), failed, unit("a", 2, &[])];
        let table = UnitTable::from_results(&units);
        assert_eq!(table.to_results(), units);
        assert_eq!(table.failed(), 1);
        let first = table.get(0).unwrap();
        assert_eq!(first.metric("x"), Some(f64::MIN_POSITIVE));
        assert_eq!(first.metric("z"), None);
        assert_eq!(first.metrics().collect::<Vec<_>>(), [("x", f64::MIN_POSITIVE), ("y", 2.0)]);
        for (unit, row) in units.iter().zip(table.iter()) {
            let json = serde_json::to_string(unit).unwrap();
            assert_eq!(serde_json::to_string(&row.to_result()).unwrap(), json, "the same bytes");
        }
    }

    #[test]
    fn replaced_and_removed_units_and_the_order_of_the_plan() {
        let mut table = UnitTable::with_conditions(&["b".to_owned(), "a".to_owned()]);
        table.push(unit("a", 1, &[("x", 1.0)]));
        table.push(unit("b", 1, &[("x", 2.0)]));
        table.push(unit("b", 0, &[("x", 3.0)]));
        let mut failed = unit("a", 0, &[]);
        failed.status = UnitStatus::Error;
        table.push(failed);
        table.replace(3, unit("a", 0, &[("x", 4.0)]));
        table.retain_indices(|index| index != 1);
        table.sort_by_condition_index();
        let order: Vec<(&str, u64, Option<f64>)> =
            table.iter().map(|u| (u.condition(), u.replicate(), u.metric("x"))).collect();
        assert_eq!(order, [("b", 0, Some(3.0)), ("a", 0, Some(4.0)), ("a", 1, Some(1.0))]);
        assert_eq!(table.failed(), 0);
    }
}
