//! The on-ramp runs on the same machinery as the attribute path: same seeds, same metrics.

use crystallize::__private::internals::{execute, Plan, Registry, RunOptions};
use crystallize::prelude::*;

#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    bias: f64,
    rounds: u32,
}

fn play_once(table: Table, ctx: &mut Ctx) {
    let mut rng = ctx.rng();
    let wins = (0..table.rounds).filter(|_| rng.random_bool(table.bias)).count();
    ctx.record("wins", wins as f64);
    ctx.record("draw", rng.random::<f64>());
}

fn fair() -> Table {
    Table { bias: 0.5, rounds: 20 }
}

fn loaded() -> Table {
    Table { bias: 0.7, rounds: 20 }
}

#[datasource]
fn fair_table() -> Table {
    fair()
}

#[datasource]
fn loaded_table() -> Table {
    loaded()
}

#[experiment(datasource = fair_table, replicates = 8, seed = 99)]
fn dice(table: Table, ctx: &mut Ctx) {
    play_once(table, ctx);
}

#[treatment(dice, datasource = loaded_table)]
fn loaded_dice() {}

#[test]
fn quick_gives_the_metrics_of_the_equivalent_attribute_experiment() {
    let registry = Registry::collect().expect("registry");
    let plan = Plan::new(registry.experiment(Some("dice")).expect("dice"), &[], 8, 99, &[]).expect("plan");
    let attributes = execute(&plan, &RunOptions::default(), &mut []);

    let quick = crystallize::Quick::new(play_once)
        .config("baseline", fair())
        .config("loaded_dice", loaded())
        .replicates(8)
        .seed(99)
        .jobs(1)
        .run()
        .expect("quick");

    let key = |u: &crystallize::results::UnitResult| (u.condition.clone(), u.replicate, u.seed, u.metrics.clone());
    let from_attributes: Vec<_> = attributes.units.iter().map(key).collect();
    let from_quick: Vec<_> = quick.results.units.iter().map(key).collect();
    assert_eq!(from_attributes.len(), 16);
    assert_eq!(from_quick, from_attributes);
    assert_eq!(quick.results.info.experiment, "play_once");
}

#[test]
fn quick_reports_and_stores_like_a_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let results = crystallize::Quick::new(play_once)
        .config("fair", fair())
        .config("loaded", loaded())
        .replicates(5)
        .store(dir.path())
        .run()
        .expect("quick");
    let table = results.table();
    assert!(table.lines().any(|l| l.starts_with("loaded") && l.contains("wins")), "{table}");
    assert_eq!(results.values("fair", "wins").len(), 5);
    let id = results.run_id.clone().expect("stored");
    let run = crystallize::store::Store::locate(Some(dir.path())).run(&id).expect("run in store");
    assert_eq!(run.state().done(), 10);
    assert_eq!(results.to_json()["run"], id.as_str());
}

#[test]
fn quick_rejects_bad_setups_before_running() {
    let none: [(&str, Table); 0] = [];
    let error = crystallize::quick(play_once, none, 3).unwrap_err().to_string();
    assert!(error.contains("at least one named config"), "{error}");
    let error = crystallize::quick(play_once, [("a", fair()), ("a", loaded())], 3).unwrap_err().to_string();
    assert!(error.contains("'a' is given twice"), "{error}");
    let error = crystallize::quick(play_once, [("a.b", fair())], 3).unwrap_err().to_string();
    assert!(error.contains("without '/', '.'"), "{error}");
}

#[test]
fn a_failing_config_fails_only_its_units() {
    let results = crystallize::quick(
        |table: Table, ctx: &mut Ctx| -> Result<(), String> {
            if table.bias > 0.6 && ctx.replicate() == 1 {
                return Err("too loaded".into());
            }
            ctx.record("ok", 1.0);
            Ok(())
        },
        [("fair", fair()), ("loaded", loaded())],
        3,
    )
    .expect("quick");
    assert_eq!(results.failed(), 1);
    assert_eq!(results.values("fair", "ok").len(), 3);
    assert_eq!(results.values("loaded", "ok").len(), 2);
}

#[test]
fn quick_results_can_be_asked_a_hypothesis() {
    let results = crystallize::Quick::new(play_once)
        .config("fair", fair())
        .config("loaded", loaded())
        .replicates(30)
        .seed(1)
        .run()
        .expect("quick");
    let verdict = results.hypothesis("loaded.wins > fair.wins").expect("evaluates");
    assert_eq!(verdict.verdict, crystallize::hypothesis::Verdict::Supported, "{verdict:?}");
    assert!(verdict.effect > 2.0, "{verdict:?}");
    let error = results.hypothesis("loaded.wins >> fair.wins").unwrap_err();
    assert!(error.contains('^'), "a caret marks the error: {error}");
    let error = results.hypothesis("loaded.losses > fair.wins").unwrap_err();
    assert!(error.contains("wins"), "names the metrics that exist: {error}");
}
