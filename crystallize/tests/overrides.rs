//! Overrides of params and input fields through the library API: what a key means, the order in
//! which overrides apply, the origin of every value, and the errors for inputs that cannot be set.

use crystallize::__private::internals::{
    resolve, InputResolution, Override, OverrideValue, Plan, Registry, ResolvedCondition, Setting,
};
use crystallize::config::{Origin, ParamValue};
use crystallize::prelude::*;
use crystallize::Error;
use serde_json::{json, Value};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Table {
    pub models: Vec<String>,
    pub rounds: u32,
    pub note: Option<String>,
    pub limits: Limits,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Limits {
    pub max: u32,
}

#[datasource]
fn table() -> Table {
    Table { models: vec!["a".into(), "b".into()], rounds: 8, note: None, limits: Limits { max: 3 } }
}

#[experiment(datasource = table, replicates = 2, seed = 1, params(rounds: u64 = 1, temperature = 0.5))]
fn game(table: Table, ctx: &mut Ctx) {
    ctx.record("rounds", table.rounds);
    ctx.record("max", table.limits.max);
    ctx.record("models", table.models.len());
}

#[treatment(game, set(temperature = 0.9))]
fn hot(table: &mut Table) {
    table.rounds = 2;
}

/// An input that is `Debug` but not `Serialize`: its fields cannot be set.
#[derive(Debug)]
pub struct Opaque {
    pub size: u32,
}

#[datasource]
fn opaque() -> Opaque {
    Opaque { size: 3 }
}

#[experiment(datasource = opaque, params(k: u64 = 0))]
fn sealed(input: Opaque, ctx: &mut Ctx) {
    ctx.record("size", input.size);
}

#[experiment]
fn no_input(ctx: &mut Ctx) {
    ctx.record("one", 1u8);
}

fn set(text: &str) -> Override {
    Override::parse(text).expect("KEY=VALUE")
}

fn file(key: &str, value: Value, line: u32, scope: Option<&str>) -> Override {
    Override {
        key: key.into(),
        value: OverrideValue::Json(value),
        origin: Origin::ConfigFile(format!("crystallize.toml:{line}")),
        scope: scope.map(str::to_owned),
    }
}

fn plan(experiment: &str, overrides: &[Override]) -> Result<Plan, Error> {
    let registry = Registry::collect().expect("registry");
    let experiment = registry.experiment(Some(experiment)).expect("experiment");
    Plan::new(experiment, &[], 2, 1, overrides)
}

fn resolved(plan: &Plan, condition: &str) -> ResolvedCondition {
    let condition = plan.conditions.iter().find(|c| &*c.name == condition).expect("condition");
    let default = |value| Setting { value, origin: Origin::Default };
    resolve(&plan.experiment, condition, default(2), default(plan.seed)).expect("resolve")
}

fn field<'a>(resolved: &'a ResolvedCondition, path: &str) -> (&'a Value, &'a Origin) {
    match &resolved.input {
        InputResolution::Json { leaves, .. } => {
            let leaf = leaves.iter().find(|l| l.path == path).unwrap_or_else(|| panic!("no field {path}"));
            (&leaf.value, &leaf.origin)
        }
        other => panic!("input is {other:?}"),
    }
}

#[test]
fn a_key_is_a_param_if_it_names_one_else_an_input_path() {
    let plan = plan("game", &[set("rounds=4"), set("input.rounds=5"), set("limits.max=9")]).expect("plan");
    let baseline = resolved(&plan, "baseline");
    let rounds = baseline.params.iter().find(|p| p.name == "rounds").expect("param");
    assert_eq!((&rounds.value, &rounds.origin), (&ParamValue::Int(4), &Origin::CommandLine));
    assert_eq!(field(&baseline, "rounds"), (&json!(5), &Origin::CommandLine));
    assert_eq!(field(&baseline, "limits.max"), (&json!(9), &Origin::CommandLine));
    assert_eq!(field(&baseline, "models"), (&json!(["a", "b"]), &Origin::Datasource("table".into())));
}

#[test]
fn overrides_apply_in_order_and_say_where_values_came_from() {
    let overrides = [
        // Like new defaults: before the treatment, which still varies what it sets.
        file("temperature", json!(0.6), 2, None),
        file("input.rounds", json!(6), 3, None),
        file("models[1]", json!("z"), 4, None),
        // One treatment: after it.
        file("temperature", json!(1.5), 6, Some("hot")),
        // The command line: last, everywhere.
        set("note=hello"),
    ];
    let plan = plan("game", &overrides).expect("plan");
    let baseline = resolved(&plan, "baseline");
    let hot = resolved(&plan, "hot");
    let temperature = |r: &ResolvedCondition| {
        let p = r.params.iter().find(|p| p.name == "temperature").expect("param");
        (p.value.clone(), p.origin.clone())
    };
    assert_eq!(temperature(&baseline), (ParamValue::Float(0.6), Origin::ConfigFile("crystallize.toml:2".into())));
    assert_eq!(temperature(&hot), (ParamValue::Float(1.5), Origin::ConfigFile("crystallize.toml:6".into())));
    assert_eq!(field(&baseline, "rounds"), (&json!(6), &Origin::ConfigFile("crystallize.toml:3".into())));
    assert_eq!(
        field(&hot, "rounds"),
        (&json!(2), &Origin::Treatment("hot".into())),
        "the mutation runs after [params]"
    );
    assert_eq!(field(&hot, "models"), (&json!(["a", "z"]), &Origin::ConfigFile("crystallize.toml:4".into())));
    assert_eq!(field(&hot, "note"), (&json!("hello"), &Origin::CommandLine), "bare text is a string where one is");

    // The units get the same input.
    let results = crystallize::__private::internals::execute(&plan, &Default::default(), &mut []);
    assert_eq!(results.units.len(), 4, "2 conditions x 2 replicates");
    for unit in &results.units {
        let expected = if unit.condition == "hot" { 2.0 } else { 6.0 };
        assert_eq!(unit.metrics["rounds"], expected, "{unit:?}");
    }
}

#[test]
fn bad_overrides_are_rejected_before_any_unit_runs() {
    let message = |overrides: &[Override]| plan("game", overrides).err().map(|e| e.to_string()).unwrap_or_default();
    let unknown = message(&[set("limits.mx=1")]);
    assert!(unknown.contains("unknown key 'limits.mx'") && unknown.contains("did you mean 'limits.max'"), "{unknown}");
    assert!(unknown.contains("params of 'game': rounds, temperature"), "{unknown}");
    assert!(unknown.contains("input fields (Table): models, rounds, note, limits.max"), "{unknown}");
    let typed = message(&[set("limits.max=-2")]);
    assert!(typed.contains("input field 'limits.max'") && typed.contains("u32"), "{typed}");
    let param = message(&[file("temperature", json!("hot"), 7, None)]);
    assert_eq!(
        param,
        "bad value for param 'temperature' (type f64) in crystallize.toml:7: expected a number, got \"hot\""
    );
    let dropped = message(&[set("+colour=red")]);
    assert!(dropped.contains("no field 'colour'"), "{dropped}");
    assert!(plan("game", &[set("note=null")]).is_ok(), "null is an Option's None");
}

#[test]
fn inputs_that_cannot_round_trip_say_so() {
    let registry = Registry::collect().expect("registry");
    let sealed = registry.experiment(Some("sealed")).expect("experiment");
    let error = Plan::new(sealed, &[], 1, 0, &[set("size=4")]).err().expect("an error").to_string();
    assert!(error.contains("unknown key 'size'"), "{error}");
    assert!(error.contains("cannot be set: the input type is not Serialize"), "{error}");
    assert!(Plan::new(sealed, &[], 1, 0, &[set("k=4")]).is_ok(), "params still work");
    let plan = Plan::new(sealed, &[], 1, 0, &[]).expect("plan");
    let shown = resolved(&plan, "baseline");
    assert!(
        matches!(&shown.input, InputResolution::Opaque(Some(text)) if text.contains("size: 3")),
        "{:?}",
        shown.input
    );

    let none = registry.experiment(Some("no_input")).expect("experiment");
    let error = Plan::new(none, &[], 1, 0, &[set("x=1")]).err().expect("an error").to_string();
    assert!(error.contains("unknown key 'x'") && error.contains("the experiment has no input"), "{error}");
}
