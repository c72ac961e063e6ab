//! [`Metrics`]: the metrics of one unit, each metric's value by name; and [`DeclaredMetrics`],
//! the struct of metrics an experiment returns (`#[derive(Metrics)]`).
//!
//! A run of a million cheap units keeps a million of these, so they are a sorted vector rather
//! than a `BTreeMap`: one allocation of 32 bytes per metric instead of a B-tree node of about
//! 400 bytes, most of it empty for the usual handful of metrics. Lookups are binary searches.
//! The API follows `BTreeMap` (`get`, `insert`, `keys`, `iter`, `m["name"]`), and the JSON form is
//! the same object, keys in order.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Each metric's value in one unit, by name, in name order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics(Vec<(String, f64)>);

impl Metrics {
    /// No metrics.
    pub const fn new() -> Metrics {
        Metrics(Vec::new())
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(key, _)| key.as_str().cmp(name))
    }

    /// The value of metric `name`.
    pub fn get(&self, name: &str) -> Option<&f64> {
        self.position(name).ok().map(|index| &self.0[index].1)
    }

    /// Whether metric `name` has a value.
    pub fn contains_key(&self, name: &str) -> bool {
        self.position(name).is_ok()
    }

    /// Sets metric `name`; its previous value, if it had one.
    pub fn insert(&mut self, name: String, value: f64) -> Option<f64> {
        match self.position(&name) {
            Ok(index) => Some(std::mem::replace(&mut self.0[index].1, value)),
            Err(index) => {
                self.0.insert(index, (name, value));
                None
            }
        }
    }

    /// The number of metrics.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names, in order.
    pub fn keys(&self) -> impl Iterator<Item = &String> + '_ {
        self.0.iter().map(|(name, _)| name)
    }

    /// The values, in the order of their names.
    pub fn values(&self) -> impl Iterator<Item = &f64> + '_ {
        self.0.iter().map(|(_, value)| value)
    }

    /// Names and values, in name order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.0.iter())
    }
}

/// The iterator of [`Metrics::iter`].
#[derive(Clone, Debug)]
pub struct Iter<'a>(std::slice::Iter<'a, (String, f64)>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a String, &'a f64);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(name, value)| (name, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<'a> IntoIterator for &'a Metrics {
    type Item = (&'a String, &'a f64);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl IntoIterator for Metrics {
    type Item = (String, f64);
    type IntoIter = std::vec::IntoIter<(String, f64)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<K: Into<String>> FromIterator<(K, f64)> for Metrics {
    /// Later values of a repeated name replace earlier ones, as in a map.
    fn from_iter<I: IntoIterator<Item = (K, f64)>>(iter: I) -> Metrics {
        let mut pairs: Vec<(String, f64)> = iter.into_iter().map(|(name, value)| (name.into(), value)).collect();
        // A stable sort keeps repeated names in their given order, so the last is the one kept.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut metrics: Vec<(String, f64)> = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            match metrics.last_mut() {
                Some(last) if last.0 == name => last.1 = value,
                _ => metrics.push((name, value)),
            }
        }
        Metrics(metrics)
    }
}

impl<K: Into<String>, const N: usize> From<[(K, f64); N]> for Metrics {
    fn from(pairs: [(K, f64); N]) -> Metrics {
        pairs.into_iter().collect()
    }
}

impl From<std::collections::BTreeMap<String, f64>> for Metrics {
    fn from(map: std::collections::BTreeMap<String, f64>) -> Metrics {
        // Already in order and distinct.
        Metrics(map.into_iter().collect())
    }
}

impl std::ops::Index<&str> for Metrics {
    type Output = f64;

    /// The value of metric `name`; panics if it has none, as a map does.
    fn index(&self, name: &str) -> &f64 {
        match self.get(name) {
            Some(value) => value,
            None => panic!("no metric '{name}'; metrics: {}", self.keys().cloned().collect::<Vec<_>>().join(", ")),
        }
    }
}

impl Serialize for Metrics {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Metrics {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Metrics, D::Error> {
        struct MetricsVisitor;

        impl<'de> Visitor<'de> for MetricsVisitor {
            type Value = Metrics;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("an object of metric names and numbers")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Metrics, A::Error> {
                let mut pairs = Vec::with_capacity(access.size_hint().unwrap_or(0).min(64));
                while let Some(pair) = access.next_entry::<String, f64>()? {
                    pairs.push(pair);
                }
                // Written in order by this crate: usually nothing to sort.
                if pairs.windows(2).all(|w| w[0].0 < w[1].0) {
                    Ok(Metrics(pairs))
                } else {
                    Ok(pairs.into_iter().collect())
                }
            }
        }

        deserializer.deserialize_map(MetricsVisitor)
    }
}

/// A struct of metrics that an experiment returns, implemented by `#[derive(Metrics)]`: one
/// metric per field (a bool, an integer or a float), recorded as `ctx.record` would record it
/// (a bool as 0 or 1).
///
/// Declaring the metrics lets the command line reject a hypothesis about a metric the experiment
/// does not have before any unit runs, and lets `expect(...)` in the attributes be checked by
/// the compiler.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a struct of metrics",
    label = "not a `#[derive(Metrics)]` struct",
    note = "an experiment returns `()`, a `#[derive(Metrics)]` struct, or `Result` of either"
)]
pub trait DeclaredMetrics {
    /// The metrics' names, in field order.
    const NAMES: &'static [&'static str];

    /// Each metric's bounds `(low, high)`, parallel to [`DeclaredMetrics::NAMES`]; an unbounded
    /// end is infinite. A bool lies in [0, 1], an unsigned integer in [0, ∞), and a field with
    /// `#[crystallize(bounds = LOW..=HIGH)]` in [LOW, HIGH]. Intervals never leave them.
    const BOUNDS: &'static [(f64, f64)] = &[];

    /// Records every field in `ctx`.
    fn record(self, ctx: &crate::Ctx);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn behaves_as_a_sorted_map() {
        let mut metrics = Metrics::new();
        assert_eq!(metrics.insert("win".into(), 1.0), None);
        assert_eq!(metrics.insert("accuracy".into(), 0.5), None);
        assert_eq!(metrics.insert("win".into(), 0.0), Some(1.0));
        assert_eq!(metrics.keys().map(String::as_str).collect::<Vec<_>>(), ["accuracy", "win"]);
        assert_eq!(metrics.get("win"), Some(&0.0));
        assert_eq!(metrics["accuracy"], 0.5);
        assert!(!metrics.contains_key("rounds"));
        assert_eq!(metrics.len(), 2);
    }

    #[test]
    fn repeated_names_keep_the_last_value() {
        let metrics: Metrics = [("b", 1.0), ("a", 2.0), ("b", 3.0)].into_iter().collect();
        assert_eq!(metrics.iter().map(|(k, v)| (k.as_str(), *v)).collect::<Vec<_>>(), [("a", 2.0), ("b", 3.0)]);
    }

    #[test]
    fn json_is_the_object_a_map_writes_and_reads_back_in_any_order() {
        let map: BTreeMap<String, f64> = [("zeta".to_owned(), 1.5), ("alpha".into(), -2.0)].into();
        let metrics: Metrics = map.clone().into_iter().collect();
        assert_eq!(serde_json::to_string(&metrics).unwrap(), serde_json::to_string(&map).unwrap());
        let read: Metrics = serde_json::from_str(r#"{"zeta":1.5,"alpha":-2.0}"#).unwrap();
        assert_eq!(read, metrics);
        let error = serde_json::from_str::<Metrics>(r#"{"win":"yes"}"#).unwrap_err();
        assert!(error.to_string().contains("expected f64"), "{error}");
    }

    #[test]
    #[should_panic(expected = "no metric 'rounds'; metrics: win")]
    fn indexing_a_missing_metric_names_the_ones_there_are() {
        let metrics: Metrics = [("win", 1.0)].into_iter().collect();
        let _ = metrics["rounds"];
    }
}
