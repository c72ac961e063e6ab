//! The manifest of a run (written once, before the first unit) and the session records of every
//! process that later resumed it. Together they say what the run is, how it was started and
//! resumed, and what its configuration and code were — which is what the drift guard compares.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::plan::Plan;
use crate::registry::StepEntry;

/// The version of every record this module and the journal write.
pub const SCHEMA: u32 = 1;

/// What a run was asked for, so that `--resume` can plan the same units again.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// `--treatment` names; empty means every treatment.
    pub treatments: Vec<String>,
    /// `--set KEY=VALUE` overrides, as given.
    pub sets: Vec<String>,
}

/// Versions of the code that ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Versions {
    /// The experiments crate's name.
    pub crate_name: String,
    /// The experiments crate's version.
    pub crate_version: String,
    /// crystallize's version.
    pub crystallize: String,
}

/// The git state of the working directory when the run started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GitState {
    /// `HEAD`'s commit.
    pub commit: String,
    /// Whether tracked files had uncommitted changes.
    pub dirty: bool,
}

/// `manifest.json` of a run directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Record version.
    pub schema: u32,
    /// The run id (also the directory's name).
    pub run: String,
    /// The experiment.
    pub experiment: String,
    /// When the run was created (RFC 3339, UTC).
    pub created: String,
    /// The command line that created it.
    pub command: Vec<String>,
    /// Replicates per condition when created (a resume may add more; see [`Session`]).
    pub replicates: u64,
    /// The first replicate index: the run's replicates are `first_replicate..first_replicate +
    /// replicates`. 0 for every run but a confirmation (`confirm`), which runs indices no earlier
    /// run of the experiment used; absent from the file when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub first_replicate: u64,
    /// What was asked for.
    pub request: Request,
    /// The resolved configuration and code fingerprints: what the drift guard compares.
    pub config: ResolvedConfig,
    /// Versions of the code.
    pub versions: Versions,
    /// Git state, when run inside a git work tree.
    pub git: Option<GitState>,
    /// The host that created the run.
    pub host: String,
    /// The hypotheses its report evaluates (the experiment's declared ones that concern the
    /// run's conditions, or a confirmation's pre-registered one), as written; so that `report`
    /// decides them offline. Absent in runs made before hypotheses were recorded.
    #[serde(default)]
    pub hypotheses: Vec<String>,
    /// For a confirmation (`confirm`): the digest of its `preregistration.json`, so that the
    /// record cannot change without the run noticing. Absent for every other run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preregistration: Option<String>,
    /// How many shards the run was created to be split into (`run --run-id ID --shard I/N`,
    /// `submit slurm --shards N`), for `status`; absent for a run created in one piece.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<u64>,
    /// For a run with `--until-decided`: its stopping rule (hypotheses, maximum and minimum
    /// replicates, minimum effect, alpha, test, tuning). Absent for every other run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopping: Option<crate::sequential::StoppingRule>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// `session-<writer>.json`: one per process that ran units of the run, written once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Record version.
    pub schema: u32,
    /// The writer id; its journal is `journal-<writer>.jsonl`.
    pub writer: String,
    /// When the session started.
    pub started: String,
    /// Its command line.
    pub command: Vec<String>,
    /// Replicates per condition this session planned.
    pub replicates: u64,
    /// Whether it resumed despite a changed configuration (`--force`).
    pub forced: bool,
    /// What had changed, when forced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,
    /// The host.
    pub host: String,
    /// The shard it ran, `I/N`; absent when it ran every unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
}

/// The resolved configuration of a run, as its manifest stores it (`config`): the run's seed
/// and seed policy, every condition's datasource, treatment, params and replicate 0's input, and
/// the fingerprints of the code, by [`Part`] key. What the drift guard and confirmations compare.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ResolvedConfig {
    /// The run's seed (absent only in hand-made manifests: then seeds are not checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// How unit seeds relate to conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_policy: Option<crate::seed::SeedPolicy>,
    /// Each condition's resolved configuration, in plan order: `datasource`, `treatment`,
    /// `mutates_input`, `params` and, when the input is JSON, `input`.
    #[serde(default)]
    pub conditions: serde_json::Map<String, Value>,
    /// The code's fingerprints, keyed `<kind> <name>` (see [`Part`]).
    #[serde(default)]
    pub fingerprints: BTreeMap<String, String>,
}

impl ResolvedConfig {
    /// The configuration as JSON, as the drift guard and `diff` compare it.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The kind of code part a fingerprint belongs to. A fingerprint's key in the manifest is
/// `<kind> <name>` (`step game::play`), part of the stored format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The experiment function.
    Experiment,
    /// A datasource (the experiment's, or one a treatment swaps in).
    Datasource,
    /// A treatment.
    Treatment,
    /// A step, named with its module path (two steps may share a name).
    Step,
}

impl Part {
    const ALL: [Part; 4] = [Part::Experiment, Part::Datasource, Part::Treatment, Part::Step];

    /// The kind's word in a key.
    pub fn word(self) -> &'static str {
        match self {
            Part::Experiment => "experiment",
            Part::Datasource => "datasource",
            Part::Treatment => "treatment",
            Part::Step => "step",
        }
    }

    /// The manifest key of the part `name` of this kind.
    pub fn key(self, name: &str) -> String {
        format!("{} {name}", self.word())
    }

    /// The kind and name of a manifest key; `None` for a key of no known kind.
    pub fn of_key(key: &str) -> Option<(Part, &str)> {
        let (word, name) = key.split_once(' ')?;
        Part::ALL.into_iter().find(|part| part.word() == word).map(|part| (part, name))
    }
}

/// The resolved configuration of `plan` and the fingerprints of the code it runs, as JSON with
/// stable keys: `seed`, `seed_policy`, `conditions.<name>.{datasource,treatment,mutates_input,params,input}`,
/// `fingerprints.<kind> <name>`.
pub fn resolved_config(plan: &Plan) -> ResolvedConfig {
    let experiment = &*plan.experiment;
    let mut fingerprints = BTreeMap::new();
    fingerprints.insert(Part::Experiment.key(experiment.name), hex(experiment.fingerprint));
    if let Some(datasource) = experiment.datasource {
        fingerprints.insert(Part::Datasource.key(datasource.name), hex(datasource.fingerprint));
    }
    let mut conditions = serde_json::Map::new();
    for condition in &plan.conditions {
        let datasource =
            condition.treatment.and_then(|t| t.datasource.as_ref()).map(|d| d.info).or(experiment.datasource);
        if let Some(treatment) = condition.treatment {
            fingerprints.insert(Part::Treatment.key(treatment.name), hex(treatment.fingerprint));
            if let Some(swapped) = &treatment.datasource {
                fingerprints.insert(Part::Datasource.key(swapped.info.name), hex(swapped.info.fingerprint));
            }
        }
        let params: serde_json::Map<String, Value> =
            condition.params.0.iter().map(|p| (p.name.to_owned(), json!(p.value))).collect();
        let mut resolved = json!({
            "datasource": datasource.map(|d| d.name),
            "treatment": condition.treatment.map(|t| t.name),
            "mutates_input": condition.treatment.is_some_and(|t| t.mutate.is_some()),
            "params": params,
        });
        // Replicate 0's input (after `--set` and the config file), when it is JSON: what `diff`
        // of two runs compares, and what the drift guard sees change.
        if let Some(input) = crate::resolve::manifest_input(experiment, condition, plan.seed, plan.policy) {
            resolved["input"] = input;
        }
        conditions.insert(condition.name.to_string(), resolved);
    }
    for step in inventory::iter::<StepEntry> {
        // Keyed by module path too: two steps may share a name (methods of different types).
        let name = format!("{}::{}", step.0.location.module_path, step.0.name);
        fingerprints.insert(Part::Step.key(&name), hex(step.0.fingerprint));
    }
    ResolvedConfig { seed: Some(plan.seed), seed_policy: Some(plan.policy), conditions, fingerprints }
}

fn hex(fingerprint: u64) -> String {
    format!("{fingerprint:016x}")
}

/// What changed between a stored configuration and the current one, one readable line per
/// change; empty when nothing did. Code changes are named by part ("code of step game::play changed").
pub fn drift(stored: &ResolvedConfig, current: &ResolvedConfig) -> Vec<String> {
    drift_of_values(&stored.to_value(), &current.to_value())
}

/// [`drift`] of two configurations given as JSON (a confirmation compares parts of them).
pub fn drift_of_values(stored: &Value, current: &Value) -> Vec<String> {
    crate::diff::changes(stored, current)
        .into_iter()
        .map(|change| {
            if let Some(part) = change.path.strip_prefix("fingerprints.") {
                return match (&change.left, &change.right) {
                    (Some(_), Some(_)) => format!("code of {part} changed"),
                    (Some(_), None) => format!("{part} is no longer part of the run"),
                    _ => format!("{part} is new"),
                };
            }
            let show = |v: &Option<Value>| v.as_ref().map(Value::to_string).unwrap_or_else(|| "(absent)".into());
            format!("{}: {} -> {}", change.path, show(&change.left), show(&change.right))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_config_reads_and_writes_back_byte_for_byte() {
        let text = r#"{"seed":42,"seed_policy":"shared","conditions":{"baseline":{"datasource":"t","treatment":null,"mutates_input":false,"params":{"x":0.7}},"b":{"datasource":null,"treatment":"b","mutates_input":true,"params":{"x":1.2},"input":{"k":[1,2]}}},"fingerprints":{"experiment e":"00000000000000aa","step m::f":"00000000000000bb"}}"#;
        let config: ResolvedConfig = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&config).unwrap(), text);
        assert_eq!(config.seed, Some(42));
        assert_eq!(config.conditions.keys().collect::<Vec<_>>(), ["baseline", "b"], "plan order kept");
    }

    #[test]
    fn fingerprint_keys_name_their_kind_and_part() {
        assert_eq!(Part::Step.key("game::play"), "step game::play");
        assert_eq!(Part::of_key("step game::play"), Some((Part::Step, "game::play")));
        assert_eq!(Part::of_key("treatment dolphin"), Some((Part::Treatment, "dolphin")));
        assert_eq!(Part::of_key("gadget x"), None);
        assert_eq!(Part::of_key("experiment"), None);
    }

    #[test]
    fn drift_names_changed_values_and_code() {
        let stored =
            json!({"seed": 1, "conditions": {"b": {"params": {"t": 0.7}}}, "fingerprints": {"step play": "aa"}});
        let current =
            json!({"seed": 1, "conditions": {"b": {"params": {"t": 0.9}}}, "fingerprints": {"step play": "bb"}});
        assert_eq!(
            drift_of_values(&stored, &current),
            vec!["conditions.b.params.t: 0.7 -> 0.9", "code of step play changed"]
        );
        assert!(drift_of_values(&stored, &stored).is_empty());
    }
}
