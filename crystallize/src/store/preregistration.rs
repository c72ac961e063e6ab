//! `preregistration.json`: what a confirmation (`confirm`) promised before its first unit ran —
//! the hypothesis, the test, alpha, the replicates and their indices, the code fingerprints, the
//! exploratory run it came from — written once, with a digest so that any later edit shows.
//!
//! The digest is a 64-bit FNV-1a hash of the record's canonical JSON (every key sorted, no
//! whitespace) without the `digest` field; the run's manifest keeps it too. It detects edits and
//! damage, not a forger who rewrites the record, the digest and the manifest together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{io_error, write_once, RunDir};
use crate::error::Error;
use crate::seed::SeedPolicy;
use crate::stats::Correction;

/// The file name of a confirmation's pre-registration, in its run directory.
pub const FILE: &str = "preregistration.json";

/// The replicate indices used by earlier runs, as seen when the hypothesis was registered.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EarlierUse {
    /// The runs of the experiment that existed then, each with the replicate indices it had
    /// planned or recorded (`first..end`, end excluded).
    pub runs: Vec<UsedRange>,
    /// The highest replicate index any of them used; `None` when there were none.
    pub highest: Option<u64>,
}

/// The replicate indices a run used: `first..end` (end excluded).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsedRange {
    /// The run id.
    pub run: String,
    /// The first index.
    pub first: u64,
    /// One past the last index.
    pub end: u64,
}

/// Whether the replicates registered are enough, as judged when registering.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Adequacy {
    /// Replicates per condition needed (pairs, when paired).
    pub required: u64,
    /// The fewest with which the test can give p ≤ alpha at all; `None` when it has no floor.
    pub min_possible: Option<u64>,
    /// Replicates needed for the power registered against the effect seen in the exploratory
    /// run; `None` without one.
    pub for_power: Option<u64>,
    /// How `required` was found, in words.
    pub reason: String,
}

/// The exploratory run a hypothesis came from, as it was when the confirmation registered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Exploration {
    /// Its run id.
    pub run: String,
    /// The parts of its configuration that matter for the hypothesis: the seed policy, the
    /// hypothesis's conditions, and the fingerprints of the code they run.
    pub config: Value,
    /// The effect it showed (`mean(left) − mean(right)`).
    pub effect: f64,
    /// What differed between it and the confirmation when registering, one line per change
    /// (`code of step social_deception::game::play changed`); empty when nothing did.
    pub changed: Vec<String>,
}

/// `preregistration.json` of a confirmation run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preregistration {
    /// Record version.
    pub schema: u32,
    /// The confirmation run's id.
    pub run: String,
    /// The experiment.
    pub experiment: String,
    /// When it was registered (RFC 3339, UTC): the run's creation, before any unit.
    pub registered: String,
    /// The hypothesis, in canonical spelling.
    pub hypothesis: String,
    /// The test that decides it (a [`crate::hypothesis::TestKind`] name).
    pub test: String,
    /// The significance level.
    pub alpha: f64,
    /// The correction (one hypothesis: none has an effect).
    pub correction: Correction,
    /// The power the replicates were planned for.
    pub power: f64,
    /// Replicates per condition.
    pub replicates: u64,
    /// The first replicate index: the confirmation runs `first_replicate..first_replicate +
    /// replicates`.
    pub first_replicate: u64,
    /// The run seed.
    pub seed: u64,
    /// The seed policy.
    pub seed_policy: SeedPolicy,
    /// The conditions run.
    pub conditions: Vec<String>,
    /// The fingerprint of every part of the code, as the run's manifest records them.
    pub fingerprints: BTreeMap<String, String>,
    /// The replicate indices earlier runs had used.
    pub earlier: EarlierUse,
    /// Whether the replicates are enough.
    pub adequacy: Adequacy,
    /// The exploratory run (`--from`), if any.
    pub from: Option<Exploration>,
    /// The checks that failed when registering and were overridden with `--force` (they stay
    /// failed in every report of the run).
    pub forced: Vec<String>,
    /// The command line.
    pub command: Vec<String>,
    /// How failed units are retried and when a unit times out, frozen with the confirmation
    /// (absent in confirmations registered before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<RunPolicy>,
    /// The digest of the record without this field (see the module documentation).
    #[serde(default)]
    pub digest: String,
}

/// The retry and timeout policy of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunPolicy {
    /// Attempts after a retryable failure.
    pub retries: u32,
    /// Whether panics are retried.
    pub retry_panics: bool,
    /// A unit's deadline in milliseconds, if any.
    pub timeout_ms: Option<u64>,
}

impl Preregistration {
    /// Fills in [`Preregistration::digest`] and returns it.
    pub fn seal(&mut self) -> String {
        self.digest = String::new();
        let mut value = serde_json::to_value(&*self).expect("a pre-registration serializes");
        self.digest = digest_of(&mut value);
        self.digest.clone()
    }
}

/// The digest of a record given as JSON: the FNV-1a hash of its canonical form without its
/// `digest` field (which is removed from `value`).
pub fn digest_of(value: &mut Value) -> String {
    if let Value::Object(map) = value {
        map.remove("digest");
    }
    let mut text = String::new();
    canonical(value, &mut text);
    format!("{:016x}", crate::seed::fnv1a(text.as_bytes()))
}

fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (index, key) in keys.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// What reading a run's pre-registration found.
#[derive(Clone, Debug, PartialEq)]
pub enum Read {
    /// There is no `preregistration.json`.
    Missing,
    /// The file is there but is not a valid record.
    Invalid(String),
    /// The record, and whether its content still has the digest it was sealed with.
    Found {
        /// The record.
        record: Box<Preregistration>,
        /// The digest of its content now; equal to `record.digest` unless it was edited.
        actual_digest: String,
    },
}

impl RunDir {
    /// The path of the run's pre-registration record.
    pub fn preregistration_path(&self) -> PathBuf {
        self.path().join(FILE)
    }

    /// Writes the run's pre-registration, once: an existing record is never replaced.
    pub fn write_preregistration(&self, record: &Preregistration) -> Result<(), Error> {
        let path = self.preregistration_path();
        if path.exists() {
            return Err(Error::Store(format!("{} exists already; a pre-registration is written once", path.display())));
        }
        write_once(&path, record)
    }

    /// Reads the run's pre-registration and recomputes its digest.
    pub fn read_preregistration(&self) -> Read {
        read(&self.preregistration_path())
    }
}

fn read(path: &Path) -> Read {
    match std::fs::metadata(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Read::Missing,
        Err(error) => return Read::Invalid(io_error(path, "read", error).to_string()),
        // Only a regular file: reading a FIFO would wait for a writer forever.
        Ok(meta) if !meta.is_file() => return Read::Invalid(format!("{} is not a regular file", path.display())),
        Ok(_) => {}
    }
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) => return Read::Invalid(io_error(path, "read", error).to_string()),
    };
    let mut value: Value = match serde_json::from_slice(&bytes) {
        Ok(value) => value,
        Err(error) => return Read::Invalid(format!("{} is not JSON: {error}", path.display())),
    };
    let record: Preregistration = match serde_json::from_value(value.clone()) {
        Ok(record) => record,
        Err(error) => return Read::Invalid(format!("{} is not a valid pre-registration: {error}", path.display())),
    };
    // The registered indices are added up by every check of the confirmation: bound them first.
    let max = crate::plan::MAX_REPLICATES;
    if record.replicates > max || record.first_replicate.checked_add(record.replicates).is_none() {
        return Read::Invalid(format!(
            "{} is not a valid pre-registration: replicates {} from {} (at most {max}, within 64-bit indices)",
            path.display(),
            record.replicates,
            record.first_replicate
        ));
    }
    let actual_digest = digest_of(&mut value);
    Read::Found { record: Box::new(record), actual_digest }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Preregistration {
        Preregistration {
            schema: 1,
            run: "exp-20260101-000000-abcd".into(),
            experiment: "exp".into(),
            registered: "2026-01-01T00:00:00.000Z".into(),
            hypothesis: "treated.win > baseline.win".into(),
            test: "paired-permutation".into(),
            alpha: 0.05,
            correction: Correction::Holm,
            power: 0.8,
            replicates: 20,
            first_replicate: 10,
            seed: 42,
            seed_policy: SeedPolicy::Shared,
            conditions: vec!["baseline".into(), "treated".into()],
            fingerprints: [("step play".to_owned(), "aa".to_owned())].into(),
            earlier: EarlierUse { runs: vec![UsedRange { run: "exp-1".into(), first: 0, end: 10 }], highest: Some(9) },
            adequacy: Adequacy { required: 5, min_possible: Some(5), for_power: None, reason: "floor".into() },
            from: None,
            forced: vec![],
            command: vec!["bin".into(), "confirm".into()],
            policy: None,
            digest: String::new(),
        }
    }

    #[test]
    fn the_digest_ignores_key_order_and_sees_every_edit() {
        let mut record = sample();
        let digest = record.seal();
        assert_eq!(digest.len(), 16);
        let mut value = serde_json::to_value(&record).unwrap();
        assert_eq!(digest_of(&mut value.clone()), digest);
        // Reordering keys changes nothing; changing a value changes the digest.
        let mut reordered = json!({});
        for (key, item) in value.as_object().unwrap().iter().rev() {
            reordered[key] = item.clone();
        }
        assert_eq!(digest_of(&mut reordered), digest);
        value["alpha"] = json!(0.1);
        assert_ne!(digest_of(&mut value), digest);
    }

    #[test]
    fn a_record_is_written_once_and_read_back_with_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = serde_json::from_value(json!({
            "schema": 1, "run": "exp-20260101-000000-abcd", "experiment": "exp",
            "created": "2026-01-01T00:00:00.000Z", "command": [], "replicates": 20,
            "request": {"treatments": [], "sets": []}, "config": {},
            "versions": {"crate_name": "x", "crate_version": "0", "crystallize": "0"}, "git": null, "host": "h"
        }))
        .unwrap();
        let run = RunDir { path: dir.path().to_path_buf(), manifest };
        assert_eq!(run.read_preregistration(), Read::Missing);
        let mut record = sample();
        let digest = record.seal();
        run.write_preregistration(&record).unwrap();
        assert!(run.write_preregistration(&record).unwrap_err().to_string().contains("written once"));
        let Read::Found { record: read, actual_digest } = run.read_preregistration() else { panic!() };
        assert_eq!((*read, actual_digest), (record, digest.clone()));
        // An edit is seen.
        let text = std::fs::read_to_string(run.preregistration_path()).unwrap();
        std::fs::write(run.preregistration_path(), text.replace("0.05", "0.1")).unwrap();
        let Read::Found { actual_digest, .. } = run.read_preregistration() else { panic!() };
        assert_ne!(actual_digest, digest);
        std::fs::write(run.preregistration_path(), "{").unwrap();
        assert!(matches!(run.read_preregistration(), Read::Invalid(_)));
    }

    #[test]
    fn a_record_whose_indices_do_not_fit_is_invalid_not_a_panic_later() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        for (first, replicates) in [(u64::MAX - 1, 23), (0, u64::MAX), (30, crate::plan::MAX_REPLICATES + 1)] {
            let record = Preregistration { first_replicate: first, replicates, ..sample() };
            std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
            match read(&path) {
                Read::Invalid(why) => assert!(why.contains(&format!("replicates {replicates} from {first}")), "{why}"),
                other => panic!("{first} + {replicates} read as {other:?}"),
            }
        }
    }
}
