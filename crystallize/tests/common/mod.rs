//! Helpers shared by the integration tests that compare runs bit for bit.

use std::collections::BTreeMap;

use crystallize::results::UnitResult;

/// Every unit's metrics by replicate, as bits.
pub fn metrics(units: &[UnitResult]) -> BTreeMap<u64, Vec<(String, u64)>> {
    units
        .iter()
        .map(|unit| {
            (unit.replicate, unit.metrics.iter().map(|(name, value)| (name.clone(), value.to_bits())).collect())
        })
        .collect()
}
