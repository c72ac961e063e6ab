//! A mutation fuzzer over a stored run: a real run of the example is damaged in many seeded ways
//! (bit flips, truncation, garbage, duplicated and out-of-plan lines, wrong types, huge numbers,
//! a wrong schema, a missing or damaged manifest or session record), each on a copy of the run,
//! and `runs --json`, `report RUN --json` and `run --resume` run on each copy. None may panic or
//! hang; no unit may be counted done with other metrics than the run recorded; a unit that is
//! missing is said (a warning, or a status other than complete); and a resume that succeeds
//! leaves the run complete with exactly the metrics of the undamaged run.
//!
//! `MUTATION_CASES` (default 64) sets how many mutations, `MUTATION_SEED` the first seed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crystallize_tests::{Output, Store};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_social_deception");

/// A generous bound per command: each takes milliseconds; a hang is what this catches.
const TIMEOUT: Duration = Duration::from_secs(60);

/// splitmix64: a seeded stream of numbers, so that every mutation can be replayed by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Per unit (condition, replicate): its metrics, as `report --json` gives them.
type Units = BTreeMap<(String, u64), Value>;

fn units_of(report: &Value) -> Units {
    report["units"]
        .as_array()
        .map(|units| {
            units
                .iter()
                .filter(|u| u["status"] == "ok")
                .map(|u| {
                    let key = (u["condition"].as_str().unwrap_or("?").to_owned(), u["replicate"].as_u64().unwrap_or(0));
                    (key, u["metrics"].clone())
                })
                .collect()
        })
        .unwrap_or_default()
}

#[track_caller]
fn no_panic_no_hang(out: &Output, what: &str) {
    out.check(out.code() != Some(101) && !out.stderr.contains("panicked"), format!("no panic ({what})"));
    out.check(out.code().is_some(), format!("ended by itself ({what})"));
}

/// Copies the store at `from` into `to` (files and directories; the store has nothing else).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn file_starting(dir: &Path, prefix: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .expect("run dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix)))
        .unwrap_or_else(|| panic!("no {prefix}* in {}", dir.display()))
}

/// `record` with a valid checksum: what a tool writing records of its own would write, so that
/// the checks behind the checksum (plan, seed, types, disagreement) are reached too.
fn resealed(mut record: Value) -> String {
    if let Value::Object(object) = &mut record {
        object.remove("crc32");
    }
    String::from_utf8(crystallize::store::journal::seal_record(record.to_string().as_bytes())).expect("UTF-8")
}

fn lines_of(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).expect("journal");
    bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect()
}

fn write_lines(path: &Path, lines: &[Vec<u8>]) {
    let mut bytes = Vec::new();
    for line in lines {
        bytes.extend_from_slice(line);
        bytes.push(b'\n');
    }
    std::fs::write(path, bytes).expect("write journal");
}

/// A record of the journal, as JSON.
fn record(line: &[u8]) -> Value {
    serde_json::from_slice(line).expect("an undamaged record")
}

/// Applies mutation number `kind` (with numbers from `rng`) to the run in `dir`; what it did.
fn mutate(dir: &Path, kind: usize, rng: &mut Rng) -> String {
    let journal = file_starting(dir, "journal-");
    let manifest = dir.join("manifest.json");
    let mut lines = lines_of(&journal);
    let pick = rng.below(lines.len());
    let huge = [
        Value::from(u64::MAX),
        serde_json::from_str("18446744073709551616").expect("a number"),
        serde_json::from_str("1e999").unwrap_or(Value::Null),
        Value::from(-1),
        Value::from(1e308),
    ];
    let wrong = [
        Value::from("seven"),
        Value::Null,
        serde_json::json!([1, 2]),
        serde_json::json!({"nested": {"deep": []}}),
        Value::from(true),
        Value::from(0.5),
    ];
    let fields = ["condition", "replicate", "seed", "status", "metrics", "duration_ms", "experiment", "schema", "type"];
    match kind {
        0 => {
            let mut bytes = std::fs::read(&journal).expect("journal");
            let flips = 1 + rng.below(3);
            for _ in 0..flips {
                let at = rng.below(bytes.len());
                bytes[at] ^= 1 << rng.below(8);
            }
            std::fs::write(&journal, bytes).expect("write");
            format!("{flips} bit flip(s) in the journal")
        }
        1 => {
            let bytes = std::fs::read(&journal).expect("journal");
            let at = rng.below(bytes.len());
            std::fs::write(&journal, &bytes[..at]).expect("write");
            format!("journal truncated at byte {at}")
        }
        2 => {
            let garbage: Vec<u8> =
                (0..1 + rng.below(200)).map(|_| (rng.next() % 255) as u8 + 1).filter(|b| *b != b'\n').collect();
            lines.insert(pick, garbage);
            write_lines(&journal, &lines);
            format!("a garbage line at line {}", pick + 1)
        }
        3 => {
            let copy = lines[pick].clone();
            let at = rng.below(lines.len() + 1);
            lines.insert(at, copy);
            write_lines(&journal, &lines);
            format!("line {} duplicated at line {}", pick + 1, at + 1)
        }
        4 => {
            let mut value = record(&lines[pick]);
            let what = match rng.below(3) {
                0 => {
                    value["replicate"] = Value::from(999 + rng.below(1000));
                    "a replicate outside the plan"
                }
                1 => {
                    value["condition"] = Value::from("ghost");
                    "an unknown condition"
                }
                _ => {
                    value["seed"] = Value::from(rng.next());
                    "another seed"
                }
            };
            lines.push(resealed(value).into_bytes());
            write_lines(&journal, &lines);
            format!("a sealed record with {what} appended")
        }
        5 | 6 => {
            let mut value = record(&lines[pick]);
            let field = fields[rng.below(fields.len())];
            let new =
                if kind == 5 { wrong[rng.below(wrong.len())].clone() } else { huge[rng.below(huge.len())].clone() };
            if field == "metrics" && kind == 6 {
                value["metrics"]["win"] = new.clone();
            } else {
                value[field] = new.clone();
            }
            // Edited in place, the line keeps its old checksum (damage); resealed, it is appended
            // beside the original (a record some tool wrote). Replacing a record with a resealed
            // forgery is not damage a checksum can see: the journal does not claim to stop that.
            let sealed = rng.below(2) == 0;
            if sealed {
                lines.push(resealed(value).into_bytes());
            } else {
                lines[pick] = value.to_string().into_bytes();
            }
            write_lines(&journal, &lines);
            format!(
                "line {}: {field} = {new} ({})",
                pick + 1,
                if sealed { "resealed, appended" } else { "checksum kept" }
            )
        }
        7 => {
            let mut value = record(&lines[pick]);
            let rounds = value["metrics"]["rounds"].as_f64().unwrap_or(0.0);
            value["metrics"]["rounds"] = Value::from(rounds + 1.0);
            lines.push(resealed(value).into_bytes());
            write_lines(&journal, &lines);
            format!("a sealed record of line {}'s unit with other metrics appended", pick + 1)
        }
        8 => {
            let mut value = record(&lines[pick]);
            value["schema"] = Value::from(1);
            if let Value::Object(object) = &mut value {
                object.remove("crc32");
            }
            let rounds = value["metrics"]["rounds"].as_f64().unwrap_or(0.0);
            value["metrics"]["rounds"] = Value::from(rounds + 7.0);
            lines[pick] = value.to_string().into_bytes();
            write_lines(&journal, &lines);
            format!("line {} rewritten as an unsealed schema 1 record with other metrics", pick + 1)
        }
        9 => {
            let text = std::fs::read_to_string(&manifest).expect("manifest");
            let schema = [0u64, 2, 999, u64::MAX][rng.below(4)];
            std::fs::write(&manifest, text.replacen("\"schema\": 1", &format!("\"schema\": {schema}"), 1))
                .expect("write");
            format!("manifest schema {schema}")
        }
        10 => {
            let mut value = record(&lines[pick]);
            value["schema"] = Value::from(3);
            lines[pick] = resealed(value).into_bytes();
            write_lines(&journal, &lines);
            format!("line {} of journal schema 3", pick + 1)
        }
        11 => {
            std::fs::remove_file(&manifest).expect("remove");
            "the manifest removed".into()
        }
        12 => {
            let mut bytes = std::fs::read(&manifest).expect("manifest");
            let what = if rng.below(2) == 0 {
                let at = rng.below(bytes.len());
                bytes.truncate(at);
                format!("manifest truncated at byte {at}")
            } else {
                let at = rng.below(bytes.len());
                bytes[at] ^= 1 << rng.below(8);
                format!("a bit flip in the manifest at byte {at}")
            };
            std::fs::write(&manifest, bytes).expect("write");
            what
        }
        13 => {
            let session = file_starting(dir, "session-");
            let text = std::fs::read_to_string(&session).expect("session");
            let replicates = [0u64, 100_000_001, u64::MAX, 2][rng.below(4)];
            std::fs::write(&session, text.replacen("\"replicates\": 3", &format!("\"replicates\": {replicates}"), 1))
                .expect("write");
            format!("session replicates {replicates}")
        }
        14 => {
            let manifest_text = std::fs::read_to_string(&manifest).expect("manifest");
            let replicates = [0u64, 1, 100_000_001, u64::MAX][rng.below(4)];
            std::fs::write(
                &manifest,
                manifest_text.replacen("\"replicates\": 3", &format!("\"replicates\": {replicates}"), 1),
            )
            .expect("write");
            format!("manifest replicates {replicates}")
        }
        _ => {
            let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
            lines.swap(a, b);
            std::fs::write(&journal, b"").expect("empty");
            write_lines(&journal, &lines);
            format!("lines {} and {} swapped", a + 1, b + 1)
        }
    }
}

const KINDS: usize = 16;

#[test]
fn no_mutation_of_a_stored_run_panics_hangs_or_counts_a_damaged_unit_as_done() {
    let cases: u64 = std::env::var("MUTATION_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    let first_seed: u64 = std::env::var("MUTATION_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(13);
    let base = Store::new(BIN);
    base.run(&["run", "--replicates", "3", "--seed", "5"]).assert_code(0);
    let id = base.only_run()["id"].as_str().expect("id").to_owned();
    let original = units_of(&base.run(&["report", &id, "--json"]).json());
    assert_eq!(original.len(), 9, "{original:?}");

    for case in 0..cases {
        let seed = first_seed + case;
        let mut rng = Rng(seed);
        let kind = (case as usize) % KINDS;
        let store = Store::new(BIN);
        copy_tree(&base.path().join("runs"), &store.path().join("runs"));
        let what = mutate(&store.run_dir(&id), kind, &mut rng);
        let context = format!("mutation seed {seed} (kind {kind}): {what}");

        let runs = store.command(&["runs", "--json"]).timeout(TIMEOUT).run();
        no_panic_no_hang(&runs, &context);
        runs.assert_code(0);
        let listed = runs.json();
        let listed = listed.as_array().and_then(|l| l.first()).cloned().unwrap_or(Value::Null);
        if listed["status"] == "complete" {
            runs.check(listed["units_done"] == 9, format!("complete means every unit ({context})"));
        }

        let report = store.command(&["report", &id, "--json"]).timeout(TIMEOUT).run();
        no_panic_no_hang(&report, &context);
        if report.code() == Some(0) || report.code() == Some(1) {
            let summary = report.json();
            let units = units_of(&summary);
            for (key, metrics) in &units {
                report.check(
                    original.get(key) == Some(metrics),
                    format!(
                        "{key:?} counted done with {metrics} but the run recorded {:?} ({context})",
                        original.get(key)
                    ),
                );
            }
            if units.len() < original.len() {
                report.check(
                    report.stderr.contains("warning:") || summary["status"] != "complete",
                    format!("{} unit(s) missing without a word ({context})", original.len() - units.len()),
                );
            }
            if summary["status"] == "complete" {
                report.check(units.len() == original.len(), format!("complete with units missing ({context})"));
            }
        } else {
            report.check(report.code() == Some(2), format!("exit code 0, 1 or 2 ({context})"));
            report.check(report.stderr.contains("error"), format!("a refusal says why ({context})"));
        }

        let resumed = store.command(&["run", "--resume", &id]).timeout(TIMEOUT).run();
        no_panic_no_hang(&resumed, &context);
        if resumed.code() == Some(0) {
            let after = store.command(&["report", &id, "--json"]).timeout(TIMEOUT).run();
            no_panic_no_hang(&after, &context);
            let summary = after.json();
            let units = units_of(&summary);
            // The resumed run holds exactly the undamaged run's units (a unit's seed depends
            // only on its replicate, so a unit run again records the same metrics), and more
            // only if the mutation planned more replicates.
            for (key, metrics) in &original {
                after.check(units.get(key) == Some(metrics), format!("{key:?} after the resume ({context})"));
            }
            after.check(
                summary["status"] == "complete" || units.len() > original.len(),
                format!("complete after a resume ({context}): {}", summary["status"]),
            );
        } else {
            resumed.check(
                resumed.code() == Some(2) && resumed.stderr.contains("error"),
                format!("a resume that cannot go on says why with exit code 2 ({context})"),
            );
        }
    }
}

/// Mutation number `kind` of the stop record that ends a sequential run's journal: what it did.
fn mutate_stop(journal: &Path, kind: usize, rng: &mut Rng) -> String {
    let mut lines = lines_of(journal);
    let at = lines.iter().position(|l| l.starts_with(br#"{"schema":2,"type":"stop","#)).expect("a stop record");
    let mut stop = record(&lines[at]);
    let what = match kind % 8 {
        0 => {
            let byte = rng.below(lines[at].len());
            lines[at][byte] ^= 1 << rng.below(8);
            format!("flipped a bit of byte {byte} of the stop record")
        }
        1 => {
            let keep = rng.below(lines[at].len());
            lines[at].truncate(keep);
            format!("cut the stop record to {keep} bytes")
        }
        2 => {
            stop["hypotheses"][0]["decided_at"] = Value::from(rng.next());
            lines[at] = resealed(stop).into_bytes();
            "resealed the stop record with a huge decision point".to_owned()
        }
        3 => {
            stop["hypotheses"][0]["status"] = Value::from("supported_maybe");
            lines[at] = resealed(stop).into_bytes();
            "resealed the stop record with an unknown status".to_owned()
        }
        4 => {
            stop["hypotheses"] = Value::Array(Vec::new());
            lines[at] = resealed(stop).into_bytes();
            "resealed the stop record without its hypotheses".to_owned()
        }
        5 => {
            stop["at"] = Value::from(-1);
            lines[at] = resealed(stop).into_bytes();
            "resealed the stop record with a negative stop point".to_owned()
        }
        6 => {
            let copy = lines[at].clone();
            lines.insert(rng.below(lines.len()), copy);
            "duplicated the stop record somewhere in the journal".to_owned()
        }
        _ => {
            stop["reason"] = Value::from("maximum");
            lines[at] = resealed(stop).into_bytes();
            "resealed the stop record as stopped at the maximum".to_owned()
        }
    };
    write_lines(journal, &lines);
    what
}

#[test]
fn no_mutation_of_a_stop_record_panics_hangs_or_passes_for_a_decision() {
    let base = Store::new(BIN);
    let hypothesis = "dolphin.hallucinations > baseline.hallucinations";
    let args = ["run", "--treatment", "dolphin", "--until-decided", "--max-replicates", "200", "--hypothesis"];
    base.run(&[&args[..], &[hypothesis]].concat()).assert_code(0);
    let id = base.only_run()["id"].as_str().expect("id").to_owned();
    let original = base.run(&["report", &id, "--json"]).json();
    let decided_at = original["sequential"]["results"][0]["decided_at"].clone();
    assert!(decided_at.is_u64(), "the run is decided: {original}");
    for case in 0..32u64 {
        let mut rng = Rng(1000 + case);
        let store = Store::new(BIN);
        copy_tree(&base.path().join("runs"), &store.path().join("runs"));
        let journal = file_starting(&store.run_dir(&id), "journal-");
        let what = mutate_stop(&journal, case as usize, &mut rng);
        let context = format!("stop mutation {case}: {what}");
        let runs = store.command(&["runs", "--json"]).timeout(TIMEOUT).run();
        no_panic_no_hang(&runs, &context);
        runs.assert_code(0);
        let report = store.command(&["report", &id, "--json"]).timeout(TIMEOUT).run();
        no_panic_no_hang(&report, &context);
        report.check(matches!(report.code(), Some(0 | 1)), format!("exit code 0 or 1 ({context})"));
        let summary = report.json();
        // The decision comes from the units, which no mutation touched.
        report.check_eq(&summary["sequential"]["results"][0]["decided_at"], &decided_at, &context);
        // A record that says something else than the units is never passed over in silence.
        let stop = &summary["sequential"]["stop"];
        let disagrees = summary["sequential"]["disagreements"].as_array().is_some_and(|d| !d.is_empty());
        if stop.is_object() && stop != &original["sequential"]["stop"] && stop["reason"] == "decided" {
            report.check(disagrees && report.code() == Some(1), format!("a changed decision is reported ({context})"));
        }
        if stop.is_null() {
            report.check(report.stderr.contains("warning:"), format!("a lost stop record is said ({context})"));
        }
        let watch = store.command(&["watch", &id, "--timeout", "5"]).timeout(TIMEOUT).run();
        no_panic_no_hang(&watch, &context);
        let resumed = store.command(&["run", "--resume", &id]).timeout(TIMEOUT).run();
        no_panic_no_hang(&resumed, &context);
        resumed.check(matches!(resumed.code(), Some(0..=2)), format!("resume exit code ({context})"));
    }
}
