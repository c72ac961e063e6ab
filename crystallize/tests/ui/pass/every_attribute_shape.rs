//! Every shape each attribute accepts, in one program. It must compile without warnings, register
//! every part, and the generated glue must behave: treatments mutate the right input, datasources
//! produce it, `set(...)` values and param defaults reach the registry as written.

#![deny(warnings)]

use std::any::Any;

use crystallize::config::{ParamKind, ParamValue};
use crystallize::prelude::*;
use crystallize::__private::internals::Registry;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Config {
    pub players: u32,
    pub spoilers: bool,
}

/// Not `Serialize` nor `Debug`: the input is shown as opaque.
pub struct Opaque(u32);

#[datasource]
fn table() -> Config {
    Config { players: 6, spoilers: false }
}

#[datasource]
pub fn random_table(ctx: &Ctx) -> Config {
    let mut rng = ctx.rng();
    Config { players: rng.random_range(4..9), spoilers: false }
}

#[datasource]
fn opaque() -> Opaque {
    Opaque(3)
}

#[step]
fn play(config: &Config, ctx: &mut Ctx) -> bool {
    ctx.emit("round", json!({ "players": config.players }));
    ctx.rng().random_bool(0.5)
}

#[step]
fn no_args() {}

/// Counts the units it sees finish.
#[derive(Default)]
pub struct Counter {
    finished: usize,
}

impl crystallize::observe::Observer for Counter {
    fn unit_finished(&mut self, _: &crystallize::results::UnitResult) {
        self.finished += 1;
    }
}

pub struct Scorer {
    bonus: u32,
}

impl Scorer {
    #[step]
    fn score(&self, won: bool) -> u32 {
        u32::from(won) + self.bonus
    }

    #[step]
    pub fn bump(&mut self) {
        self.bonus += 1;
    }
}

/// Input by value, ctx, typed and untyped params, hypotheses, every key.
#[experiment(
    datasource = table,
    replicates = 3,
    seed = 42,
    params(temperature = 0.7, think_ms: u64 = 0, offset: i32 = -1, label = "x", loud = false, ratio: f32 = 0.5),
    hypotheses = ["dolphin.win < baseline.win"],
)]
pub fn game(config: Config, ctx: &mut Ctx) {
    no_args();
    let mut scorer = Scorer { bonus: 0 };
    scorer.bump();
    let won = play(&config, ctx);
    ctx.record("win", won);
    ctx.record("score", scorer.score(won));
}

/// Input by reference.
#[experiment(datasource = random_table)]
fn by_ref(config: &Config, ctx: &mut Ctx) {
    ctx.record("players", config.players);
}

/// Input without ctx, returning a `Result`.
#[experiment(datasource = opaque)]
fn fallible(input: Opaque) -> Result<(), String> {
    if input.0 == 0 {
        return Err("empty".into());
    }
    Ok(())
}

/// No datasource: ctx only; observers attached.
#[experiment(replicates = 2, observers = [Counter::default(), Counter { finished: 0 }])]
fn coin(ctx: &mut Ctx) {
    ctx.record("heads", ctx.rng().random_bool(0.5));
}

/// No datasource, no ctx.
#[experiment]
fn nothing() {}

/// No datasource, `Result` with a non-`String` error.
#[experiment]
fn fallible_io(ctx: &mut Ctx) -> Result<(), std::io::Error> {
    ctx.record("ok", true);
    Ok(())
}

#[treatment(game, datasource = random_table)]
fn random() {}

#[treatment(game)]
fn spoilers(config: &mut Config) {
    config.spoilers = true;
}

#[treatment(game)]
fn reseated(config: &mut Config, ctx: &Ctx) {
    config.players = ctx.rng().random_range(4..9);
}

#[treatment(game, set(temperature = 1.2, think_ms = 50, offset = -3, label = "y", loud = true, ratio = 1.0))]
fn hot() {}

#[treatment(game, datasource = random_table, set(temperature = 1.2))]
fn random_hot_spoilers(config: &mut Config) {
    config.spoilers = true;
}

#[treatment(self::by_ref, datasource = table)]
fn fixed() {}

#[treatment(coin)]
fn nothing_to_mutate(unit: &mut ()) {
    let () = *unit;
}

fn main() {
    let registry = Registry::collect().unwrap_or_else(|error| panic!("inconsistent registry: {error}"));
    let mut conditions: Vec<String> = registry
        .experiments()
        .iter()
        .flat_map(|e| e.condition_names().into_iter().map(move |c| format!("{}/{c}", e.name())))
        .collect();
    conditions.sort();
    assert_eq!(
        conditions,
        [
            "by_ref/baseline",
            "by_ref/fixed",
            "coin/baseline",
            "coin/nothing_to_mutate",
            "fallible/baseline",
            "fallible_io/baseline",
            "game/baseline",
            "game/hot",
            "game/random",
            "game/random_hot_spoilers",
            "game/reseated",
            "game/spoilers",
            "nothing/baseline",
        ]
    );

    let experiment = registry.experiment(Some("game")).unwrap_or_else(|error| panic!("{error}"));
    let entry = experiment.entry;
    assert_eq!((entry.replicates, entry.seed), (3, 42));
    assert_eq!(entry.hypotheses, ["dolphin.win < baseline.win"]);
    assert_eq!(entry.datasource.map(|d| d.name), Some("table"));
    let params: Vec<(&str, ParamKind, &str, ParamValue)> =
        entry.params.iter().map(|p| (p.name, p.kind, p.rust_type, p.default.clone())).collect();
    assert_eq!(
        params,
        [
            ("temperature", ParamKind::Float, "f64", ParamValue::Float(0.7)),
            ("think_ms", ParamKind::UInt, "u64", ParamValue::Int(0)),
            ("offset", ParamKind::Int, "i32", ParamValue::Int(-1)),
            ("label", ParamKind::Str, "String", ParamValue::Str("x".into())),
            ("loud", ParamKind::Bool, "bool", ParamValue::Bool(false)),
            ("ratio", ParamKind::Float, "f32", ParamValue::Float(0.5)),
        ]
    );
    let treatment = |name: &str| experiment.treatment(name).unwrap_or_else(|error| panic!("{error}"));

    let hot = treatment("hot");
    assert!(hot.datasource.is_none() && hot.mutate.is_none());
    assert_eq!(
        hot.sets,
        [
            ("temperature", ParamValue::Float(1.2)),
            ("think_ms", ParamValue::Int(50)),
            ("offset", ParamValue::Int(-3)),
            ("label", ParamValue::Str("y".into())),
            ("loud", ParamValue::Bool(true)),
            ("ratio", ParamValue::Float(1.0)),
        ]
    );

    let ctx = Ctx::standalone(7);
    let random = treatment("random");
    assert!(random.mutate.is_none() && random.sets.is_empty());
    let source = random.datasource.as_ref().unwrap_or_else(|| panic!("`random` swaps the datasource"));
    assert_eq!(source.info.name, "random_table");
    let produced: Box<dyn Any> = (source.produce)(&ctx);
    let players = produced.downcast_ref::<Config>().map(|config| config.players);
    assert!(matches!(players, Some(4..=8)), "{players:?}");

    // A mutating treatment changes the experiment's input, and refuses any other type.
    let mutate = treatment("spoilers").mutate.unwrap_or_else(|| panic!("`spoilers` mutates"));
    let mut input: Box<dyn Any> = Box::new(table());
    assert!(mutate(&mut *input, &ctx));
    assert!(input.downcast_ref::<Config>().is_some_and(|config| config.spoilers));
    let mut other: Box<dyn Any> = Box::new(6_u32);
    assert!(!mutate(&mut *other, &ctx));

    let mutate = treatment("reseated").mutate.unwrap_or_else(|| panic!("`reseated` mutates"));
    let mut input: Box<dyn Any> = Box::new(Config { players: 100, spoilers: false });
    assert!(mutate(&mut *input, &ctx));
    assert!(input.downcast_ref::<Config>().is_some_and(|config| (4..9).contains(&config.players)));

    let both = treatment("random_hot_spoilers");
    assert!(both.datasource.is_some() && both.mutate.is_some());
    assert_eq!(both.sets, [("temperature", ParamValue::Float(1.2))]);

    // Outside a unit, annotated functions are plain calls with their signatures unchanged.
    let mut ctx = Ctx::standalone(1);
    game(table(), &mut ctx);
    by_ref(&random_table(&ctx), &mut ctx);
    coin(&mut ctx);
    nothing();
    assert!(fallible(opaque()).is_ok());
    assert!(fallible_io(&mut ctx).is_ok());
    assert_eq!(Scorer { bonus: 1 }.score(true), 2);
    let recorded: Vec<String> = ctx.recorded().into_iter().map(|record| record.name).collect();
    assert_eq!(recorded, ["win", "score", "players", "heads", "ok"]);
}
