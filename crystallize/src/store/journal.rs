//! The append-only journal of finished units: one JSON line per unit, one file per writing
//! process. A unit is done if and only if its line is completely written.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::manifest::SCHEMA;
use crate::events::Observer;
use crate::runner::{Cancel, UnitResult};

/// One line of a journal.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    schema: u32,
    #[serde(rename = "type")]
    kind: String,
    #[serde(flatten)]
    unit: UnitResult,
}

/// How often the journal is forced to disk. Every line is written to the OS at once (so a killed
/// process loses nothing that finished); `fsync` on top of that is what survives a power loss,
/// and doing it per unit would cap throughput at the disk's sync rate.
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// Appends finished units to `journal-<writer>.jsonl`. Runs on the output thread: the only writer
/// of its file.
pub struct JournalWriter {
    path: PathBuf,
    file: File,
    line: Vec<u8>,
    last_sync: Instant,
    error: Option<io::Error>,
    cancel: Cancel,
}

impl JournalWriter {
    /// Creates (or appends to) the journal at `path`. A write error later cancels the run through
    /// `cancel`: computing units that cannot be stored would waste the compute.
    pub fn create(path: PathBuf, cancel: Cancel) -> io::Result<JournalWriter> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(JournalWriter { path, file, line: Vec::with_capacity(512), last_sync: Instant::now(), error: None, cancel })
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The first write error, if any, with the journal's path.
    pub fn finish(mut self) -> Result<(), String> {
        if self.error.is_none() {
            if let Err(error) = self.file.sync_data() {
                self.error = Some(error);
            }
        }
        match self.error {
            Some(error) => Err(format!("could not write the journal {}: {error}", self.path.display())),
            None => Ok(()),
        }
    }

    fn append(&mut self, unit: &UnitResult) -> io::Result<()> {
        self.line.clear();
        let record = Record { schema: SCHEMA, kind: "unit".into(), unit: unit.clone() };
        serde_json::to_writer(&mut self.line, &record).map_err(io::Error::other)?;
        self.line.push(b'\n');
        // One write call per line on an O_APPEND file: a crash leaves at most a torn last line.
        self.file.write_all(&self.line)?;
        if self.last_sync.elapsed() >= SYNC_EVERY {
            self.file.sync_data()?;
            self.last_sync = Instant::now();
        }
        Ok(())
    }
}

impl Observer for JournalWriter {
    fn unit_finished(&mut self, result: &UnitResult) {
        if self.error.is_some() {
            return;
        }
        if let Err(error) = self.append(result) {
            self.error = Some(error);
            self.cancel.cancel();
        }
    }
}

/// What reading the journals of a run found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every well-formed record, journal by journal (oldest writer first), line by line.
    pub units: Vec<UnitResult>,
    /// What was skipped and why: torn last lines, unparsable lines, unreadable files.
    pub warnings: Vec<String>,
}

/// Reads every `journal-*.jsonl` in `dir`. Never fails: damage becomes warnings, and the units of
/// damaged lines count as not done, so they run again on resume.
pub fn read_all(dir: &Path) -> Loaded {
    let mut loaded = Loaded::default();
    let mut journals: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("journal-") && n.ends_with(".jsonl"))
            })
            .collect(),
        Err(error) => {
            loaded.warnings.push(format!("cannot read {}: {error}", dir.display()));
            return loaded;
        }
    };
    // Writer ids start with their start time, so name order is the order the sessions began.
    journals.sort();
    for path in journals {
        read_one(&path, &mut loaded);
    }
    loaded
}

fn read_one(path: &Path, loaded: &mut Loaded) {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) => {
            loaded.warnings.push(format!("cannot read {}: {error}; its units will run again", path.display()));
            return;
        }
    };
    let complete = bytes.ends_with(b"\n");
    let mut lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    // `split` yields an empty piece after a final newline; without one, the last piece is torn.
    let torn = lines.pop().filter(|last| !last.is_empty());
    for (index, line) in lines.iter().enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Record>(line) {
            Ok(record) if record.schema == SCHEMA && record.kind == "unit" => loaded.units.push(record.unit),
            Ok(record) => loaded.warnings.push(format!(
                "{}:{}: record of schema {} type '{}' is not understood by this version (schema {SCHEMA}); ignored",
                path.display(),
                index + 1,
                record.schema,
                record.kind
            )),
            Err(error) => loaded.warnings.push(format!(
                "{}:{}: not a valid unit record ({error}); ignored, its unit will run again",
                path.display(),
                index + 1
            )),
        }
    }
    if let (false, Some(torn)) = (complete, torn) {
        loaded.warnings.push(format!(
            "{}:{}: ignoring a torn last line ({} bytes): its writer stopped mid-write; the unit will run again",
            path.display(),
            lines.len() + 1,
            torn.len()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::UnitStatus;
    use std::collections::BTreeMap;

    fn unit(condition: &str, replicate: u64) -> UnitResult {
        UnitResult {
            experiment: "e".into(),
            condition: condition.into(),
            replicate,
            seed: 7,
            status: UnitStatus::Ok,
            error: None,
            metrics: BTreeMap::from([("win".to_owned(), 1.0)]),
            records: Vec::new(),
            duration_ms: 0.5,
        }
    }

    fn write_units(dir: &Path, writer: &str, units: &[UnitResult]) -> PathBuf {
        let path = dir.join(format!("journal-{writer}.jsonl"));
        let mut journal = JournalWriter::create(path.clone(), Cancel::default()).unwrap();
        for u in units {
            journal.unit_finished(u);
        }
        journal.finish().unwrap();
        path
    }

    #[test]
    fn round_trips_every_unit_in_writer_order() {
        let dir = tempfile::tempdir().unwrap();
        write_units(dir.path(), "2", &[unit("b", 0)]);
        write_units(dir.path(), "1", &[unit("a", 0), unit("a", 1)]);
        let loaded = read_all(dir.path());
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let keys: Vec<(String, u64)> = loaded.units.iter().map(|u| (u.condition.clone(), u.replicate)).collect();
        assert_eq!(keys, [("a".into(), 0), ("a".into(), 1), ("b".into(), 0)]);
        assert_eq!(loaded.units[0], unit("a", 0));
    }

    #[test]
    fn a_torn_last_line_is_ignored_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_units(dir.path(), "1", &[unit("a", 0), unit("a", 1)]);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 20);
        std::fs::write(&path, bytes).unwrap();
        let loaded = read_all(dir.path());
        assert_eq!(loaded.units.len(), 1);
        assert_eq!(loaded.warnings.len(), 1);
        assert!(loaded.warnings[0].contains("torn last line"), "{}", loaded.warnings[0]);
        assert!(loaded.warnings[0].contains(":2:"), "names the line: {}", loaded.warnings[0]);
    }

    #[test]
    fn a_corrupted_line_in_the_middle_is_reported_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_units(dir.path(), "1", &[unit("a", 0), unit("a", 1), unit("a", 2)]);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        lines[1] = "{\"schema\":1,\"type\":\"unit\",\"garbage".into();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let loaded = read_all(dir.path());
        let replicates: Vec<u64> = loaded.units.iter().map(|u| u.replicate).collect();
        assert_eq!(replicates, [0, 2]);
        assert_eq!(loaded.warnings.len(), 1);
        assert!(loaded.warnings[0].contains("journal-1.jsonl:2"), "{}", loaded.warnings[0]);
    }

    #[test]
    fn binary_garbage_and_unknown_schemas_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("journal-x.jsonl"), b"\xff\xfe\x00\n{\"schema\":99,\"type\":\"unit\"}\n\x01")
            .unwrap();
        let loaded = read_all(dir.path());
        assert!(loaded.units.is_empty());
        assert_eq!(loaded.warnings.len(), 3, "{:?}", loaded.warnings);
    }
}
