//! Multiple-comparison corrections: Holm (controls the family-wise error rate) and
//! Benjamini–Hochberg (controls the false discovery rate). Both return adjusted p-values in the
//! order of the input, so that "reject when adjusted p ≤ α" applies the procedure.

use serde::{Deserialize, Serialize};

use super::StatsError;

/// Which correction to apply across the hypotheses of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    /// Holm's step-down procedure (the default): the chance of any false positive stays ≤ α.
    #[default]
    Holm,
    /// Benjamini–Hochberg: the expected share of false positives among the positives stays ≤ α.
    BenjaminiHochberg,
    /// No correction.
    None,
}

impl Correction {
    /// The adjusted p-values of `p`.
    pub fn adjust(self, p: &[f64]) -> Result<Vec<f64>, StatsError> {
        match self {
            Correction::Holm => holm(p),
            Correction::BenjaminiHochberg => benjamini_hochberg(p),
            Correction::None => {
                check(p)?;
                Ok(p.to_vec())
            }
        }
    }
}

fn check(p: &[f64]) -> Result<(), StatsError> {
    match p.iter().find(|v| !(0.0..=1.0).contains(*v)) {
        Some(bad) => {
            Err(StatsError::InvalidArgument { name: "p-value", value: bad.to_string(), why: "p-values lie in [0, 1]" })
        }
        None => Ok(()),
    }
}

fn ascending(p: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    order
}

/// Holm's adjusted p-values: with p sorted ascending, `p̃₍ᵢ₎ = max_{j ≤ i} min(1, (m − j + 1) p₍ⱼ₎)`.
pub fn holm(p: &[f64]) -> Result<Vec<f64>, StatsError> {
    check(p)?;
    let m = p.len();
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0f64;
    for (rank, &index) in ascending(p).iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[index]).min(1.0));
        adjusted[index] = running;
    }
    Ok(adjusted)
}

/// Benjamini–Hochberg adjusted p-values: with p sorted ascending,
/// `p̃₍ᵢ₎ = min_{j ≥ i} min(1, m p₍ⱼ₎ / j)`.
pub fn benjamini_hochberg(p: &[f64]) -> Result<Vec<f64>, StatsError> {
    check(p)?;
    let m = p.len();
    let mut adjusted = vec![0.0; m];
    let mut running = 1.0f64;
    for (rank, &index) in ascending(p).iter().enumerate().rev() {
        running = running.min(m as f64 * p[index] / (rank + 1) as f64);
        adjusted[index] = running;
    }
    Ok(adjusted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holm_steps_down() {
        assert_eq!(holm(&[0.01, 0.04, 0.03]).unwrap(), vec![0.03, 0.06, 0.06]);
        assert_eq!(holm(&[0.5]).unwrap(), vec![0.5]);
        assert!(holm(&[f64::NAN]).is_err());
        assert!(holm(&[]).unwrap().is_empty());
    }

    #[test]
    fn bh_steps_up() {
        let adjusted = benjamini_hochberg(&[0.01, 0.04, 0.03]).unwrap();
        for (a, b) in adjusted.iter().zip([0.03, 0.04, 0.04]) {
            assert!((a - b).abs() < 1e-15);
        }
    }
}
