//! The typed forms, in one program that must compile without warnings: a `#[derive(Params)]`
//! struct taken as `params: &GameParams`, a `#[derive(Metrics)]` return type, `expect(...)` in
//! both attributes, and the struct the `params(...)` sugar generates. Running it checks what a
//! user would: each unit gets its condition's params, each declared metric is recorded, and the
//! registry lists the declared metrics and the expected hypotheses.

#![deny(warnings)]

use crystallize::config::ParamValue;
use crystallize::prelude::*;
use crystallize::__private::internals::Registry;
use crystallize::testing::TestRun;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Config {
    pub players: u32,
}

/// A datasource reads the condition's params as the struct too.
#[datasource]
fn table(ctx: &Ctx) -> Config {
    let params: GameParams = ctx.typed_params().unwrap_or_else(|error| panic!("{error}"));
    Config { players: if params.model == "dolphin" { 7 } else { 6 } }
}

#[derive(Clone, Debug, Params)]
pub struct GameParams {
    #[param(default = 0.7)]
    pub temperature: f64,
    #[param(default = "llama3:8b")]
    pub model: String,
    pub crash_on_replicate: Option<u64>,
    #[param(default = 2)]
    pub bonus: Option<u32>,
}

#[derive(Metrics)]
pub struct GameMetrics {
    pub win: bool,
    pub rounds: u32,
    pub temperature: f64,
}

/// A step that takes the params as an ordinary argument.
#[step]
fn play(config: &Config, params: &GameParams) -> GameMetrics {
    GameMetrics {
        win: params.model == "dolphin",
        rounds: config.players + params.bonus.unwrap_or(0),
        temperature: params.temperature,
    }
}

#[experiment(datasource = table, replicates = 2, expect(hot.win > baseline.win))]
fn game(config: Config, params: &GameParams, ctx: &mut Ctx) -> GameMetrics {
    if params.crash_on_replicate == Some(ctx.replicate()) {
        panic!("crash on replicate {}", ctx.replicate());
    }
    play(&config, params)
}

#[treatment(game, set(temperature = 1.5, model = "dolphin", crash_on_replicate = 7), expect(win > baseline.win))]
fn hot() {}

#[treatment(game, set(bonus = 5), expect(rounds >= baseline.rounds + 1))]
fn generous() {}

/// The sugar: `params(...)` generates `CoinParams`, which the function may take.
#[experiment(params(bias = 0.5, flips: u32 = 3))]
fn coin(params: &CoinParams) -> Result<CoinMetrics, String> {
    Ok(CoinMetrics { heads: params.flips * u32::from(params.bias > 0.4) })
}

#[derive(Metrics)]
pub struct CoinMetrics {
    pub heads: u32,
}

fn main() {
    let registry = Registry::collect().unwrap_or_else(|error| panic!("inconsistent registry: {error}"));
    let game_entry = registry.experiment(Some("game")).unwrap_or_else(|error| panic!("{error}")).entry;
    assert_eq!(game_entry.metrics, Some(&["win", "rounds", "temperature"][..]));
    assert_eq!(
        game_entry.hypotheses,
        ["hot.win > baseline.win", "generous.rounds >= baseline.rounds + 1"],
        "the experiment's expect(...), then its treatments' in source order, each once"
    );
    let declared: Vec<(&str, &str, ParamValue)> =
        game_entry.params.iter().map(|p| (p.name, p.rust_type, p.default.clone())).collect();
    assert_eq!(
        declared,
        [
            ("temperature", "f64", ParamValue::Float(0.7)),
            ("model", "String", ParamValue::Str("llama3:8b".into())),
            ("crash_on_replicate", "Option<u64>", ParamValue::None),
            ("bonus", "Option<u32>", ParamValue::Int(2)),
        ]
    );
    let coin_entry = registry.experiment(Some("coin")).unwrap_or_else(|error| panic!("{error}")).entry;
    assert_eq!(coin_entry.metrics, Some(&["heads"][..]));
    assert_eq!(coin_entry.params.iter().map(|p| p.name).collect::<Vec<_>>(), ["bias", "flips"]);

    // `Default` is every declared default, for calling steps from tests.
    let defaults = GameParams::default();
    assert_eq!((defaults.temperature, defaults.model.as_str()), (0.7, "llama3:8b"));
    assert_eq!((defaults.crash_on_replicate, defaults.bonus), (None, Some(2)));
    assert_eq!(CoinParams::default(), CoinParams { bias: 0.5, flips: 3 });

    // Each unit gets its condition's params, and returns the metrics that get recorded.
    let results = TestRun::new("game").run().unwrap_or_else(|error| panic!("{error}"));
    results.assert_ok();
    let mean = |condition: &str, metric: &str| {
        let values = results.values(condition, metric);
        assert_eq!(values.len(), 2, "{condition}.{metric}: {values:?}");
        values.iter().sum::<f64>() / values.len() as f64
    };
    assert_eq!((mean("baseline", "win"), mean("hot", "win")), (0.0, 1.0));
    assert_eq!((mean("baseline", "temperature"), mean("hot", "temperature")), (0.7, 1.5));
    assert_eq!((mean("baseline", "rounds"), mean("hot", "rounds"), mean("generous", "rounds")), (8.0, 9.0, 11.0));

    // `--set` reaches an optional param: replicate 1 crashes, in every condition.
    let crashing = TestRun::new("game").set("crash_on_replicate=1").run().unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(crashing.values("baseline", "win").len(), 1);

    let coin_results = TestRun::new("coin").run().unwrap_or_else(|error| panic!("{error}"));
    coin_results.assert_ok();
    assert_eq!(coin_results.values("baseline", "heads"), vec![3.0; 10]);
}
