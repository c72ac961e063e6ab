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
    /// A sequential probability ratio test by betting against a planned effect ([`Sprt`]):
    /// needs bounds and `--min-effect`; stops for futility as well as for an effect.
    Sprt,
}

impl SequentialTest {
    /// Its name on the command line and in records.
    pub fn name(self) -> &'static str {
        match self {
            SequentialTest::Betting => "betting",
            SequentialTest::Asymptotic => "asymptotic",
            SequentialTest::Sprt => "sprt",
        }
    }
}

impl std::str::FromStr for SequentialTest {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "betting" => Ok(SequentialTest::Betting),
            "asymptotic" => Ok(SequentialTest::Asymptotic),
            "sprt" => Ok(SequentialTest::Sprt),
            other => Err(format!("unknown sequential test '{other}'; tests: betting, asymptotic, sprt")),
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
/// The same for an SPRT's bets: they are Kelly bets against the planned effect, which for
/// values that spread far less than their bounds allow are large; capping them at half the
/// room gave a bounded continuous metric 40 % more pairs than a fixed design at its effect.
const MAX_SPRT_BET: f64 = 0.9;

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

/// Where an [`Sprt`] stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Neither gambler has won yet.
    Open,
    /// The mean is beyond the margin, on the claimed side (at level `alpha_side`).
    Effect,
    /// The mean is on the other side of the margin (at level `alpha_side`).
    Reverse,
    /// The mean falls short of the planned effect (at level `beta`): futility.
    Short,
}

/// One side of an [`Sprt`]: bets on values `d` (already turned so that the claim is
/// "mean > margin"), each a nonnegative martingale under the hypothesis it bets against.
#[derive(Clone, Debug)]
struct Side {
    /// ln wealth of betting that the mean is above the margin (against "mean ≤ margin").
    effect: f64,
    /// ln wealth of betting that the mean is below margin + effect (against "mean ≥ margin + effect").
    short: f64,
    /// ln wealth of betting that the mean is below the margin (against "mean ≥ margin").
    reverse: f64,
    /// +1, or −1 for the side of a claim "mean < margin" (turned into "−mean > −margin").
    sign: f64,
    /// The values' range after turning.
    low: f64,
    high: f64,
    margin: f64,
}

impl Side {
    /// Bets `lambda` (the same size on each gamble, each capped so that its wealth stays
    /// positive whatever value comes) on value `d`.
    fn update(&mut self, d: f64, lambda: f64, effect: f64) {
        let cap = |room: f64| if room > 0.0 { MAX_SPRT_BET / room } else { f64::INFINITY };
        let (m, e) = (self.margin, effect);
        let up = lambda.min(cap(m - self.low));
        let short = lambda.min(cap(self.high - m - e));
        let reverse = lambda.min(cap(self.high - m));
        self.effect += (up * (d - m)).ln_1p();
        self.short += (-short * (d - m - e)).ln_1p();
        self.reverse += (-reverse * (d - m)).ln_1p();
    }
}

/// A sequential probability ratio test of "mean > margin" against a planned effect, by betting
/// (for values within known bounds).
///
/// Three gamblers bet, with the same predictable size λ_t = E / (σ̂²_{t−1} + E²) (the Kelly bet
/// against an alternative E above the margin, with the variance seen so far): one that the mean
/// is above the margin, one that it is below margin + E, one that it is below the margin. Each
/// one's wealth is a nonnegative martingale while the hypothesis it bets against holds, so by
/// Ville's inequality it ever reaches 1/level with probability at most that level, at every n
/// at once and for every distribution on the bounds: "effect" at `alpha_side`, "short of the
/// planned effect" at `beta` (1 − the planned power), "reverse" at `alpha_side`. Betting at
/// the planned effect is what an SPRT does and why it needs fewer values than a confidence
/// sequence near that effect; stopping for futility is what saves values under the null.
#[derive(Clone, Debug)]
pub struct Sprt {
    /// One side for "mean > margin"; two for a two-sided claim (the second on −d).
    sides: Vec<Side>,
    /// The values' bounds.
    low: f64,
    high: f64,
    effect: f64,
    alpha_side: f64,
    beta: f64,
    n: u64,
    mean: f64,
    m2: f64,
    prior_variance: f64,
    verdict: Verdict,
}

impl Sprt {
    /// A test of values in `[low, high]` that their mean is beyond `margin` on the side of
    /// `alternative`, planned for an effect of `effect` (> 0) beyond it; errors at `alpha_side`
    /// per side and `beta` for futility.
    pub fn new(
        low: f64,
        high: f64,
        margin: f64,
        effect: f64,
        alternative: super::Alternative,
        alpha_side: f64,
        beta: f64,
    ) -> Result<Sprt, StatsError> {
        use super::Alternative;
        check_alpha(alpha_side)?;
        let invalid = |name, value: f64, why| Err(StatsError::InvalidArgument { name, value: value.to_string(), why });
        if !(beta > 0.0 && beta < 1.0) {
            return invalid("beta", beta, "the futility error 1 − power lies strictly between 0 and 1");
        }
        if !(low.is_finite() && high.is_finite() && low < high) {
            return invalid("bounds", high - low, "a sequential probability ratio test by betting needs finite bounds");
        }
        if !(effect > 0.0 && effect.is_finite()) {
            return invalid("min_effect", effect, "the planned effect (--min-effect) of an SPRT is a finite value > 0");
        }
        if !(low < margin - effect && margin + effect < high) {
            return invalid("margin", margin, "the margin and the planned effect lie within the differences' bounds");
        }
        let side = |sign: f64| {
            let (a, b) = (sign * low, sign * high);
            Side { effect: 0.0, short: 0.0, reverse: 0.0, sign, low: a.min(b), high: a.max(b), margin: sign * margin }
        };
        let sides = match alternative {
            Alternative::Greater => vec![side(1.0)],
            Alternative::Less => vec![side(-1.0)],
            Alternative::TwoSided => vec![side(1.0), side(-1.0)],
        };
        let width = high - low;
        Ok(Sprt {
            sides,
            low,
            high,
            effect,
            alpha_side,
            beta,
            n: 0,
            mean: 0.0,
            m2: 0.0,
            prior_variance: width * width / 8.0,
            verdict: Verdict::Open,
        })
    }

    /// Adds one value; the verdict, once reached, stands. A value outside the bounds is
    /// refused (a bet sized for them could lose more than everything).
    pub fn update(&mut self, value: f64) -> Result<(), StatsError> {
        if !value.is_finite() {
            return Err(StatsError::NonFinite { sample: "d", index: self.n as usize, value });
        }
        let slack = 1e-12 * (self.high - self.low);
        if !(self.low - slack..=self.high + slack).contains(&value) {
            return Err(StatsError::InvalidArgument {
                name: "value",
                value: value.to_string(),
                why: "an SPRT by betting needs every value within the metric's declared bounds",
            });
        }
        let value = value.clamp(self.low, self.high);
        // The variance before this value (predictable), shrunk toward a prior for the first.
        let t = self.n as f64;
        let variance = (self.prior_variance + self.m2) / (t + 1.0);
        let lambda = self.effect / (variance + self.effect * self.effect);
        for side in &mut self.sides {
            side.update(side.sign * value, lambda, self.effect);
        }
        self.n += 1;
        let delta = value - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (value - self.mean);
        if self.verdict == Verdict::Open {
            self.verdict = self.current();
        }
        Ok(())
    }

    /// Where the test stands: one side's gambler at its level decides (a two-sided claim is an
    /// effect when either side's is; short of the planned effect when both sides' are).
    fn current(&self) -> Verdict {
        let level = |ln_wealth: f64, error: f64| ln_wealth >= -error.ln();
        if self.sides.iter().any(|s| level(s.effect, self.alpha_side)) {
            Verdict::Effect
        } else if self.sides.len() == 1 && level(self.sides[0].reverse, self.alpha_side) {
            Verdict::Reverse
        } else if self.sides.iter().all(|s| level(s.short, self.beta)) {
            Verdict::Short
        } else {
            Verdict::Open
        }
    }

    /// The verdict so far.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// How many values it has seen.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// The evidence so far, as e-values: for an effect (the larger side's wealth; it decides at
    /// 1/`alpha_side`) and for falling short of the planned effect (the smaller side's; it
    /// decides at 1/`beta`).
    pub fn evidence(&self) -> (f64, f64) {
        let effect = self.sides.iter().map(|s| s.effect).fold(f64::NEG_INFINITY, f64::max);
        let short = self.sides.iter().map(|s| s.short).fold(f64::INFINITY, f64::min);
        (effect.exp(), short.exp())
    }

    /// The e-values at which it decides: (effect, short of the planned effect).
    pub fn thresholds(&self) -> (f64, f64) {
        (1.0 / self.alpha_side, 1.0 / self.beta)
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
    fn sprt_decides_each_way_and_refuses_bad_plans() {
        use crate::stats::Alternative;
        let run = |alternative, values: &mut dyn Iterator<Item = f64>| {
            let mut sprt = Sprt::new(-1.0, 1.0, 0.0, 0.2, alternative, 0.05, 0.2).unwrap();
            for value in values.take(400) {
                sprt.update(value).unwrap();
                if sprt.verdict() != Verdict::Open {
                    break;
                }
            }
            (sprt.verdict(), sprt.n())
        };
        // A clear effect up, down, either way; nothing at all (short of the planned effect).
        let up = || [1.0, 0.0, 1.0, 1.0, 0.0].into_iter().cycle();
        assert_eq!(run(Alternative::Greater, &mut up()).0, Verdict::Effect);
        assert_eq!(run(Alternative::Less, &mut up().map(|v| -v)).0, Verdict::Effect);
        assert_eq!(run(Alternative::TwoSided, &mut up().map(|v| -v)).0, Verdict::Effect);
        // The other way: short of the planned effect comes first (it needs less evidence).
        assert!(matches!(run(Alternative::Less, &mut up()).0, Verdict::Short | Verdict::Reverse));
        let none = || [1.0, -1.0, 0.0, 0.0].into_iter().cycle();
        let (verdict, n) = run(Alternative::Greater, &mut none());
        assert!(verdict == Verdict::Short && n < 100, "{verdict:?} after {n}");
        assert_eq!(run(Alternative::TwoSided, &mut none()).0, Verdict::Short);
        let mut sprt = Sprt::new(-1.0, 1.0, 0.0, 0.2, Alternative::Greater, 0.05, 0.2).unwrap();
        assert!(sprt.update(f64::NAN).is_err() && sprt.update(1.5).is_err() && sprt.n() == 0);
        assert_eq!(sprt.thresholds(), (20.0, 5.0));
        for (low, high, margin, effect, beta) in [
            (1.0, -1.0, 0.0, 0.2, 0.2),
            (-1.0, 1.0, 0.0, 0.0, 0.2),
            (-1.0, 1.0, 0.9, 0.2, 0.2),
            (-1.0, 1.0, 0.0, 0.2, 1.0),
        ] {
            assert!(Sprt::new(low, high, margin, effect, Alternative::Greater, 0.05, beta).is_err());
        }
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
