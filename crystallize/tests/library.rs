//! The library API without the command line: a `Session` runs, streams, stores and resumes.

use std::time::Duration;

use std::collections::BTreeMap;

use crystallize::prelude::*;
use crystallize::results::UnitResult;
use crystallize::session::{Session, Shard};
use crystallize::store::Store;

#[datasource]
fn numbers(ctx: &Ctx) -> Vec<u64> {
    let mut rng = ctx.rng();
    (0..5).map(|_| rng.random_range(0..100)).collect()
}

#[step]
fn total(values: &[u64]) -> u64 {
    values.iter().sum()
}

#[experiment(datasource = numbers, replicates = 6, seed = 5, params(pause_ms: u64 = 0))]
fn sums(values: Vec<u64>, params: &SumsParams, ctx: &mut Ctx) {
    std::thread::sleep(Duration::from_millis(params.pause_ms));
    ctx.record("total", total(&values));
}

// A treatment mutates the experiment's input type itself, a `Vec` here, not a slice of it.
#[allow(clippy::ptr_arg)]
#[treatment(sums)]
fn doubled(values: &mut Vec<u64>) {
    values.iter_mut().for_each(|v| *v *= 2);
}

/// The metrics of every unit, by (condition, replicate), as bits: equal means equal to the last bit.
fn metric_bits(units: &[UnitResult]) -> BTreeMap<(String, u64), Vec<(String, u64)>> {
    units
        .iter()
        .map(|u| {
            let metrics = u.metrics.iter().map(|(name, value)| (name.clone(), value.to_bits())).collect();
            ((u.condition.clone(), u.replicate), metrics)
        })
        .collect()
}

#[test]
fn a_stream_yields_every_unit_and_finishes_with_the_whole_run() {
    let mut stream = Session::of::<sums>().replicates(4).jobs(2).stream().expect("valid session");
    let first: Vec<_> = stream.by_ref().take(3).collect();
    assert_eq!(first.len(), 3);
    let rest: Vec<_> = stream.by_ref().collect();
    assert_eq!(first.len() + rest.len(), 8);
    let finished = stream.finish().expect("finished");
    assert_eq!(finished.run, None, "a session without a store stores nothing");
    let results = finished.results;
    assert_eq!(results.units.len(), 8);
    // The treatment doubles every input, and both conditions share seeds per replicate.
    for replicate in 0..4 {
        let of = |condition: &str| {
            results.units.iter().find(|u| u.condition == condition && u.replicate == replicate).expect("unit").metrics
                ["total"]
        };
        assert_eq!(of("doubled"), 2.0 * of("baseline"));
    }
}

#[test]
fn a_stored_stream_broken_off_after_3_resumes_to_the_uninterrupted_result() {
    let dir = tempfile::tempdir().expect("temp dir");
    let session = || Session::of::<sums>().replicates(10).set("pause_ms", 5).jobs(1).store(dir.path());
    for (index, _unit) in session().stream().expect("valid session").enumerate() {
        if index == 2 {
            break; // dropping the stream cancels the rest; what finished is stored
        }
    }
    let store = Store::locate(Some(dir.path()));
    let (runs, _) = store.runs();
    assert_eq!(runs.len(), 1, "the stream stored one run");
    let state = runs[0].scan();
    assert!(state.done() >= 3 && state.done() < 20, "3 units stored, the rest cancelled ({} done)", state.done());

    let resumed = session().resume(runs[0].manifest.run.clone()).run().expect("resumed");
    assert_eq!(resumed.run.as_deref(), Some(runs[0].manifest.run.as_str()));
    assert_eq!(resumed.results.units.len(), 20 - state.done(), "the resume runs only what is missing");
    let stored = runs[0].state();
    assert_eq!(stored.done(), 20);

    let uninterrupted = Session::of::<sums>().replicates(10).jobs(2).run().expect("run");
    assert_eq!(metric_bits(&stored.results()), metric_bits(&uninterrupted.results.units));
}

#[test]
fn resuming_a_complete_run_has_nothing_to_do_and_an_empty_store_nothing_to_resume() {
    let dir = tempfile::tempdir().expect("temp dir");
    let error = Session::of::<sums>().store(dir.path()).resume_latest().run().expect_err("nothing to resume");
    assert!(error.to_string().contains("no unfinished run of experiment 'sums'"), "{error}");
    let first = Session::of::<sums>().replicates(2).store(dir.path()).run().expect("run");
    // A requeued job resuming a complete run succeeds, running nothing and writing nothing.
    let again = Session::of::<sums>().store(dir.path()).resume_latest().run().expect("nothing to do");
    assert_eq!(again.run, first.run);
    assert!(again.results.units.is_empty(), "{:?}", again.results.units);
    let files = std::fs::read_dir(first.path().expect("stored")).expect("run dir").count();
    let again = Session::of::<sums>().store(dir.path()).resume(first.run.clone().expect("id")).run().expect("again");
    assert!(again.results.units.is_empty());
    assert_eq!(std::fs::read_dir(first.path().expect("stored")).expect("run dir").count(), files, "no new records");
}

#[test]
fn bad_names_are_refused_before_anything_is_stored() {
    let dir = tempfile::tempdir().expect("temp dir");
    let error = Session::named("sumz").store(dir.path()).run().expect_err("unknown experiment");
    assert!(error.to_string().contains("did you mean 'sums'"), "{error}");
    let error = Session::of::<sums>().treatment("double").store(dir.path()).run().expect_err("unknown treatment");
    assert!(error.to_string().contains("did you mean 'doubled'"), "{error}");
    let error = Session::of::<sums>().set("pause_ms", "soon").store(dir.path()).run().expect_err("bad value");
    assert!(error.to_string().contains("pause_ms"), "{error}");
    assert!(Store::locate(Some(dir.path())).runs().0.is_empty(), "nothing was stored");
}

#[test]
fn errors_print_their_message_when_main_returns_them() {
    // `fn main() -> Result<(), crystallize::Error>` prints the error with `Debug`.
    let error = Session::named("sumz").run().expect_err("unknown experiment");
    assert_eq!(format!("{error:?}"), error.to_string());
}

#[test]
fn shards_of_one_run_id_record_what_one_session_records() {
    let dir = tempfile::tempdir().expect("temp dir");
    let shard = |index| {
        Session::of::<sums>()
            .replicates(5)
            .store(dir.path())
            .run_id("shared-1")
            .shard(Shard::new(index, 2).expect("a shard"))
            .run()
            .expect("a shard runs")
    };
    let first = shard(1);
    assert!(first.results.units.iter().all(|u| u.replicate % 2 == 1), "shard 1/2 runs the odd replicates");
    let second = shard(0);
    assert_eq!(first.run.as_deref(), Some("shared-1"));
    assert_eq!(second.run, first.run, "the second shard joins the run the first created");
    let runs = Store::locate(Some(dir.path())).runs().0;
    assert_eq!(runs.len(), 1);
    let stored = runs[0].state();
    assert_eq!(stored.done(), stored.planned());
    let whole = Session::of::<sums>().replicates(5).run().expect("one session");
    assert_eq!(metric_bits(&stored.results()), metric_bits(&whole.results.units));
    // A shard joining with another plan is refused with what differs.
    let other = Session::of::<sums>().replicates(6).store(dir.path()).run_id("shared-1").run().expect_err("refused");
    assert!(other.to_string().contains("replicates: 0..5 -> 0..6"), "{other}");
}
