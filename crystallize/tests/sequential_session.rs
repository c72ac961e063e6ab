//! `Session::until_decided` through the library API, sync and async: a metric declared bounded
//! with `#[crystallize(bounds = 0..=1)]` gets the betting sequence, a large effect stops well
//! before the maximum, and the decision does not depend on `--jobs`.

use crystallize::prelude::*;
use crystallize::session::{SequentialStatus, Session, StoppingRule};
use crystallize::stats::sequential::SequentialTest;

#[derive(Metrics)]
pub struct Score {
    /// A share in [0, 1].
    #[crystallize(bounds = 0..=1)]
    pub share: f64,
}

fn share(ctx: &Ctx, shift: f64) -> f64 {
    (ctx.rng().random::<f64>() * 0.5 + shift).clamp(0.0, 1.0)
}

#[experiment(replicates = 4, seed = 3, params(shift: f64 = 0.2), smoke_test = false)]
fn shares(params: &SharesParams, ctx: &mut Ctx) -> Score {
    Score { share: share(ctx, params.shift) }
}

#[treatment(shares, set(shift = 0.45))]
fn better() {}

/// The baseline's own parameters: no effect.
#[treatment(shares, set(shift = 0.2))]
fn same() {}

#[experiment(replicates = 4, seed = 3, params(shift: f64 = 0.2), smoke_test = false)]
async fn async_shares(params: &AsyncSharesParams, ctx: &mut Ctx) -> Score {
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    Score { share: share(ctx, params.shift) }
}

#[treatment(async_shares, set(shift = 0.45))]
fn async_better() {}

fn rule(h: &str) -> StoppingRule {
    StoppingRule {
        hypotheses: vec![h.to_owned()],
        max_replicates: 200,
        min_replicates: 0,
        min_effect: None,
        alpha: 0.05,
        test: None,
        tuning: 20,
        power: None,
    }
}

#[test]
fn a_bounded_metric_is_decided_by_betting_and_stops_early_whatever_the_jobs() {
    let mut decided_at = Vec::new();
    for (experiment, treatment, jobs) in [
        ("shares", "better", 1),
        ("shares", "better", 4),
        ("async_shares", "async_better", 1),
        ("async_shares", "async_better", 8),
    ] {
        let h = format!("{treatment}.share > baseline.share");
        let finished =
            Session::named(experiment).treatment(treatment).jobs(jobs).until_decided(rule(&h)).run().unwrap();
        let decisions = finished.sequential.expect("a sequential run says where it stands");
        assert!(decisions.all_decided, "{experiment} jobs {jobs}: {decisions:?}");
        let result = &decisions.results[0];
        assert_eq!((result.status, result.test), (SequentialStatus::Supported, SequentialTest::Betting));
        let units = finished.results.units.len();
        assert!(units < 100, "{experiment} jobs {jobs}: {units} units of 400 ran");
        decided_at.push((experiment, result.decided_at, result.low));
    }
    // Same seed, same sequence: the decision is the same with 1 job or many, sync or async.
    assert_eq!(decided_at[0].1, decided_at[1].1);
    assert_eq!(decided_at[2].1, decided_at[3].1);
    assert_eq!(decided_at[0].1, decided_at[2].1, "{decided_at:?}");
}

#[test]
fn bad_rules_are_refused_before_any_unit() {
    let mut too_small = rule("better.share > baseline.share");
    too_small.min_replicates = 300;
    let error = Session::named("shares").treatment("better").until_decided(too_small).run().unwrap_err();
    assert!(error.to_string().contains("--min-replicates 300 is above --max-replicates 200"), "{error}");
    let error = Session::named("shares").until_decided(rule("bettr.share > baseline.share")).run().unwrap_err();
    assert!(error.to_string().contains("unknown condition 'bettr'; did you mean 'better'?"), "{error}");
}

#[test]
fn an_sprt_decides_the_same_whatever_the_jobs_and_a_null_stops_for_futility() {
    let sprt =
        |h: &str| StoppingRule { test: Some(SequentialTest::Sprt), min_effect: Some(0.1), power: Some(0.8), ..rule(h) };
    let mut seen = Vec::new();
    for jobs in [1, 4] {
        let h = "better.share > baseline.share";
        let finished = Session::named("shares").treatment("better").jobs(jobs).until_decided(sprt(h)).run().unwrap();
        let decisions = finished.sequential.expect("a sequential run says where it stands");
        let result = &decisions.results[0];
        assert_eq!((result.status, result.test), (SequentialStatus::Supported, SequentialTest::Sprt));
        let evidence = result.evidence.expect("an SPRT reports its e-values");
        assert!(evidence.effect >= evidence.effect_needed, "{evidence:?}");
        seen.push(result.decided_at);
    }
    // (The e-values go on with the units that were in flight, more of them with more jobs.)
    assert_eq!(seen[0], seen[1], "the same decision at the same pair with 1 job or 4");
    // No effect: it stops short of the planned effect, early.
    let finished = Session::named("shares").treatment("same").until_decided(sprt("same.share > baseline.share")).run();
    let finished = finished.unwrap();
    let result = &finished.sequential.expect("sequential").results[0];
    assert_eq!(result.status, SequentialStatus::WithinNoise, "{result:?}");
    assert!(result.decided_at.is_some_and(|n| n < 100), "{result:?}");
}
