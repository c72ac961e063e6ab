//! The smoke tests the attributes generate, and what a failing one says.

use crystallize::prelude::*;

#[datasource]
fn seats() -> Vec<u32> {
    vec![1, 2, 3]
}

#[datasource]
fn broken_seats() -> Vec<u32> {
    panic!("the broken datasource was called")
}

// Its own generated tests (`crystallize_smoke__healthy__*`) run as part of this file.
#[experiment(datasource = seats, replicates = 2, seed = 4)]
fn healthy(seats: Vec<u32>, ctx: &mut Ctx) {
    ctx.record("seats", seats.len() as f64);
}

#[treatment(healthy)]
fn one_more(seats: &mut Vec<u32>) {
    seats.push(4);
}

// Opted out: its treatment's generated test must not fail although the datasource panics.
#[experiment(datasource = seats, replicates = 2, seed = 9, smoke_test = false)]
fn fragile(seats: Vec<u32>, ctx: &mut Ctx) {
    ctx.record("seats", seats.len() as f64);
}

#[treatment(fragile, datasource = broken_seats)]
fn broken() {}

#[test]
fn a_failing_condition_names_itself_its_seed_and_the_reproduce_command() {
    crystallize::testing::smoke("fragile", "baseline");
    let panic = std::panic::catch_unwind(|| crystallize::testing::smoke("fragile", "broken")).unwrap_err();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    let seed = crystallize::store::unit_seed(9, 0, "broken", Default::default());
    assert!(message.contains("fragile/broken replicate 0"), "{message}");
    assert!(message.contains(&format!("(seed {seed})")), "{message}");
    assert!(message.contains("the broken datasource was called"), "{message}");
    assert!(message.contains("debug fragile/broken --replicate 0 --seed 9"), "{message}");
}

#[test]
fn an_unknown_condition_is_a_clear_failure() {
    let panic = std::panic::catch_unwind(|| crystallize::testing::smoke("healthy", "nope")).unwrap_err();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("unknown treatment 'nope'"), "{message}");
}

#[test]
fn every_condition_has_a_generated_test() {
    // The generated tests are ordinary functions of this crate; naming them proves they exist.
    // (`fragile` has no baseline test: it opted out with `smoke_test = false`.)
    let generated: [fn(); 3] = [
        crystallize_smoke__healthy__baseline,
        crystallize_smoke__healthy__one_more,
        crystallize_smoke__fragile__broken,
    ];
    generated[0]();
    generated[1]();
    generated[2](); // opted out: a no-op, although the datasource panics
}

#[test]
fn test_runs_assert_hypotheses_and_report_deterministically() {
    let run = || crystallize::testing::TestRun::new("healthy").replicates(6).seed(2).run().expect("valid names");
    let results = run();
    results.assert_ok();
    let verdict = results.assert_hypothesis("one_more.seats > baseline.seats");
    assert_eq!(verdict.effect, 1.0);
    assert_eq!(results.report(), run().report(), "the report has no timings or paths");
    assert!(results.report().starts_with("healthy: baseline, one_more x 6 replicates, seed 2: 12 units, 0 failed\n"));
    let refuted = std::panic::catch_unwind(|| results.assert_hypothesis("one_more.seats < baseline.seats"));
    let message = refuted.unwrap_err().downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("is not supported"), "{message}");
    let bad = crystallize::testing::TestRun::new("healthy").treatment("one_mor").run().unwrap_err().to_string();
    assert!(bad.contains("did you mean 'one_more'"), "{bad}");
}
