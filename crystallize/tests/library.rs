//! The library API without the command line: plan, run, stream, store.

use std::time::Duration;

use crystallize::plan::Plan;
use crystallize::prelude::*;
use crystallize::registry::Registry;
use crystallize::runner::{self, RunOptions};
use crystallize::store::manifest::Request;
use crystallize::store::recorder::{self, Origin};
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

fn plan(replicates: u64, pause_ms: u64) -> Plan {
    let registry = Registry::collect().expect("registry");
    let experiment = registry.experiment(Some("sums")).expect("experiment");
    let sets = [crystallize::plan::Override::parse(&format!("pause_ms={pause_ms}")).expect("set")];
    Plan::new(experiment, &[], replicates, 5, &sets).expect("plan")
}

#[test]
fn a_stream_yields_every_unit_and_finishes_with_the_whole_run() {
    let mut stream = runner::stream(plan(4, 0), RunOptions { jobs: 2, ..RunOptions::default() }, Vec::new());
    let first: Vec<_> = stream.by_ref().take(3).collect();
    assert_eq!(first.len(), 3);
    let rest: Vec<_> = stream.by_ref().collect();
    assert_eq!(first.len() + rest.len(), 8);
    let results = stream.finish();
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
fn dropping_a_stream_cancels_the_rest_and_stores_what_finished() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::locate(Some(dir.path()));
    let plan = plan(20, 30);
    let origin = Origin { crate_name: "library-test".into(), crate_version: "0".into(), command: vec!["test".into()] };
    let run = recorder::create_run(&store, &plan, Request::default(), &origin).expect("run");
    let options = RunOptions { jobs: 1, ..RunOptions::default() };
    let journal = recorder::begin_session(&run, &plan, &origin, Vec::new(), options.cancel.clone()).expect("journal");
    let mut stream = runner::stream(plan, options, vec![Box::new(journal)]);
    let seen: Vec<_> = stream.by_ref().take(2).collect();
    assert_eq!(seen.len(), 2);
    drop(stream);
    let state = run.state();
    assert!(state.done() >= 2, "finished units are stored ({} done)", state.done());
    assert!(state.done() < 40, "units not yet started were cancelled ({} done)", state.done());
}
