//! Anytime-valid confidence sequences for the mean of paired differences: intervals that hold
//! at every number of replicates at once, so a run may be looked at after every replicate and
//! stopped when the answer is known without inflating its error rate (docs/SEQUENTIAL.md).
//!
//! * [`SequentialTest::Betting`] — for differences of a **bounded** metric (in [low, high], so
//!   a difference lies in [low − high, high − low]): the hedged-capital betting confidence
//!   sequence of Waudby-Smith & Ramdas (2023, JRSS-B, "Estimating means of bounded random
//!   variables by betting"), with their predictable plug-in bets. Valid at every n for any
//!   distribution on those bounds (Ville's inequality on a nonnegative martingale), not only
//!   asymptotically; and as tight as the best known for 0/1 data.
//! * [`SequentialTest::Asymptotic`] — for an **unbounded** metric: the asymptotic confidence
//!   sequence of Waudby-Smith, Arnold, Wu, Howard & Ramdas (2024, "Time-uniform central limit
//!   theory"), the Gaussian-mixture boundary with the sample variance, which GrowthBook ships.
//!   Its tuning parameter ρ is set from the number of replicates `tuning` at which the interval
//!   should be tightest: ρ² = (−2 ln α + ln(−2 ln α + 1)) / tuning.
//!
//! Both give a lower and an upper bound, each valid on its own at level `alpha_side`
//! (P(the mean ever falls below the lower bound) ≤ `alpha_side`); a two-sided interval at α
//! takes `alpha_side = α / 2`, a one-sided claim `alpha_side = α`. The bounds are running
//! intersections (an interval never widens), so a decision, once reached, stands.

use serde::{Deserialize, Serialize};

use super::StatsError;

/// Which confidence sequence to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SequentialTest {
    /// Hedged-capital betting (Waudby-Smith & Ramdas 2023): needs bounds.
    Betting,
    /// Asymptotic Gaussian-mixture sequence (Waudby-Smith et al. 2024).
    Asymptotic,
}

impl SequentialTest {
    /// Its name on the command line and in records.
    pub fn name(self) -> &'static str {
        match self {
            SequentialTest::Betting => "betting",
            SequentialTest::Asymptotic => "asymptotic",
        }
    }
}

impl std::str::FromStr for SequentialTest {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "betting" => Ok(SequentialTest::Betting),
            "asymptotic" => Ok(SequentialTest::Asymptotic),
            other => Err(format!("unknown sequential test '{other}'; tests: betting, asymptotic")),
        }
    }
}

/// Pairs before the asymptotic sequence gives a finite bound. Its validity is asymptotic, and
/// with a variance estimated from 2 pairs the false-"supported" rate of a one-sided claim
/// updated after every pair up to 200 was 9.9 % at alpha 5 %; from 5 pairs on 4.0 %, from 10
/// pairs on 1.8 % (the calibration tests, docs/SEQUENTIAL.md).
pub const ASYMPTOTIC_BURN_IN: u64 = 10;

/// Points of the grid of candidate means a betting sequence tracks (on the differences' range).
const GRID: usize = 1001;
/// The largest bet as a fraction of what keeps the capital positive (the paper's c = 1/2).
const MAX_BET: f64 = 0.5;

/// A confidence sequence for the mean of a stream of values, updated one value at a time.
#[derive(Clone, Debug)]
pub struct ConfidenceSequence {
    alpha_side: f64,
    n: u64,
    low: f64,
    high: f64,
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    Betting(Box<Betting>),
    Asymptotic(Asymptotic),
}

#[derive(Clone, Debug)]
struct Betting {
    /// Values are mapped to z = (v − offset) / width ∈ [0, 1].
    offset: f64,
    width: f64,
    /// ln of the capital betting on "the mean is above m" / "below m", per grid point m.
    up: Vec<f64>,
    down: Vec<f64>,
    /// Grid points ruled out from below / from above so far.
    ruled_low: Vec<bool>,
    ruled_high: Vec<bool>,
    sum: f64,
    squares: f64,
}

#[derive(Clone, Debug)]
struct Asymptotic {
    rho2: f64,
    sum: f64,
    mean: f64,
    m2: f64,
}

impl ConfidenceSequence {
    /// A betting sequence for values in `[low, high]`.
    pub fn betting(low: f64, high: f64, alpha_side: f64) -> Result<ConfidenceSequence, StatsError> {
        check_alpha(alpha_side)?;
        if !(low.is_finite() && high.is_finite() && low < high) {
            return Err(StatsError::InvalidArgument {
                name: "bounds",
                value: format!("[{low}, {high}]"),
                why: "a betting confidence sequence needs finite bounds with low < high",
            });
        }
        let betting = Betting {
            offset: low,
            width: high - low,
            up: vec![0.0; GRID],
            down: vec![0.0; GRID],
            ruled_low: vec![false; GRID],
            ruled_high: vec![false; GRID],
            sum: 0.0,
            squares: 0.0,
        };
        Ok(ConfidenceSequence { alpha_side, n: 0, low, high, kind: Kind::Betting(Box::new(betting)) })
    }

    /// An asymptotic sequence, tightest near `tuning` values.
    pub fn asymptotic(tuning: u64, alpha_side: f64) -> Result<ConfidenceSequence, StatsError> {
        check_alpha(alpha_side)?;
        if tuning == 0 {
            return Err(StatsError::InvalidArgument {
                name: "tuning",
                value: "0".into(),
                why: "the asymptotic sequence is tuned for a number of replicates ≥ 1",
            });
        }
        let l = -2.0 * alpha_side.ln();
        let rho2 = (l + (l + 1.0).ln()) / tuning as f64;
        let kind = Kind::Asymptotic(Asymptotic { rho2, sum: 0.0, mean: 0.0, m2: 0.0 });
        Ok(ConfidenceSequence { alpha_side, n: 0, low: f64::NEG_INFINITY, high: f64::INFINITY, kind })
    }

    /// How many values it has seen.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// The current interval `(low, high)` (infinite ends before there is information).
    pub fn bounds(&self) -> (f64, f64) {
        (self.low, self.high)
    }

    /// Adds one value. A betting sequence refuses a value outside its bounds.
    pub fn update(&mut self, value: f64) -> Result<(), StatsError> {
        if !value.is_finite() {
            return Err(StatsError::NonFinite { sample: "d", index: self.n as usize, value });
        }
        self.n += 1;
        let t = self.n as f64;
        let threshold = -self.alpha_side.ln();
        match &mut self.kind {
            Kind::Betting(b) => {
                let z = (value - b.offset) / b.width;
                if !(-1e-12..=1.0 + 1e-12).contains(&z) {
                    return Err(StatsError::InvalidArgument {
                        name: "value",
                        value: value.to_string(),
                        why: "a betting confidence sequence needs every value within the metric's declared bounds",
                    });
                }
                let z = z.clamp(0.0, 1.0);
                // Predictable plug-in: the bet uses the variance estimate before this value.
                let variance = (0.25 + b.squares) / t;
                let lambda = (2.0 * (1.0 / self.alpha_side).ln() / (variance * t * (1.0 + t).ln())).sqrt();
                for i in 0..GRID {
                    // A point once ruled out stays out of the running intersection: its
                    // capital no longer matters.
                    if b.ruled_low[i] || b.ruled_high[i] {
                        continue;
                    }
                    let m = i as f64 / (GRID - 1) as f64;
                    let up = lambda.min(MAX_BET / m.max(1e-12));
                    let down = lambda.min(MAX_BET / (1.0 - m).max(1e-12));
                    b.up[i] += (up * (z - m)).ln_1p();
                    b.down[i] += (-down * (z - m)).ln_1p();
                    b.ruled_low[i] |= b.up[i] >= threshold;
                    b.ruled_high[i] |= b.down[i] >= threshold;
                }
                b.sum += z;
                let mean = (0.5 + b.sum) / (t + 1.0);
                b.squares += (z - mean) * (z - mean);
                // The interval: from the first grid point not ruled out from below to the last
                // not ruled out from above, widened by one grid step (the true mean may lie
                // between grid points).
                let step = 1.0 / (GRID - 1) as f64;
                let first = (0..GRID).find(|&i| !b.ruled_low[i] && !b.ruled_high[i]);
                let last = (0..GRID).rev().find(|&i| !b.ruled_low[i] && !b.ruled_high[i]);
                if let (Some(first), Some(last)) = (first, last) {
                    let low = b.offset + b.width * (first as f64 * step - step).max(0.0);
                    let high = b.offset + b.width * (last as f64 * step + step).min(1.0);
                    self.low = self.low.max(low);
                    self.high = self.high.min(high);
                }
            }
            Kind::Asymptotic(a) => {
                a.sum += value;
                let delta = value - a.mean;
                a.mean += delta / t;
                a.m2 += delta * (value - a.mean);
                if self.n >= ASYMPTOTIC_BURN_IN {
                    let variance = a.m2 / (t - 1.0);
                    let v = t * a.rho2 * variance + 1.0;
                    let radius = (2.0 * v / (t * t * a.rho2) * (v.sqrt() / self.alpha_side).ln()).sqrt();
                    let mean = a.sum / t;
                    self.low = self.low.max(mean - radius);
                    self.high = self.high.min(mean + radius);
                }
            }
        }
        if self.low > self.high {
            // Running intersections can cross only on data the model does not describe; keep
            // the last point rather than an empty interval.
            let mid = 0.5 * (self.low + self.high);
            self.low = mid;
            self.high = mid;
        }
        Ok(())
    }
}

fn check_alpha(alpha: f64) -> Result<(), StatsError> {
    if !(alpha > 0.0 && alpha < 0.5) {
        return Err(StatsError::InvalidArgument {
            name: "alpha",
            value: alpha.to_string(),
            why: "each side of a confidence sequence has an error level in (0, 0.5)",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn betting_narrows_around_the_mean_and_stays_in_bounds() {
        let mut cs = ConfidenceSequence::betting(-1.0, 1.0, 0.025).unwrap();
        assert_eq!(cs.bounds(), (-1.0, 1.0));
        for i in 0..200 {
            cs.update(if i % 4 == 0 { 0.0 } else { 1.0 }).unwrap();
        }
        let (low, high) = cs.bounds();
        assert!((-1.0..0.75).contains(&low) && high > 0.75 && high <= 1.0 && high - low < 0.4, "{low} {high}");
        assert!(cs.update(1.5).is_err());
    }

    #[test]
    fn asymptotic_narrows_around_the_mean() {
        let mut cs = ConfidenceSequence::asymptotic(20, 0.025).unwrap();
        for i in 0..100 {
            cs.update(3.0 + if i % 2 == 0 { 1.0 } else { -1.0 }).unwrap();
        }
        let (low, high) = cs.bounds();
        assert!(low < 3.0 && 3.0 < high && high - low < 1.5, "{low} {high}");
        assert!(
            ConfidenceSequence::asymptotic(0, 0.025).is_err() && ConfidenceSequence::betting(1.0, 0.0, 0.1).is_err()
        );
    }
}
