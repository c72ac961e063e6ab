//! The append-only journal of finished units: one JSON line per unit, one file per writing
//! process. A unit is done if and only if its line is completely written.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::Deserialize;

use super::manifest::SCHEMA;
use crate::events::{Interest, Observer};
use crate::runner::{Cancel, UnitResult};

/// One line of a journal, as read.
#[derive(Debug, Deserialize)]
struct Record {
    schema: u32,
    #[serde(rename = "type")]
    kind: String,
    #[serde(flatten)]
    unit: UnitResult,
}

/// One line of a journal, as serde writes it: what [`encode`] must write, byte for byte.
#[cfg(test)]
#[derive(serde::Serialize)]
struct RecordRef<'a> {
    schema: u32,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    unit: &'a UnitResult,
}

/// Writes `unit`'s journal line, without its newline: exactly what serde writes for a
/// `{"schema":1,"type":"unit", ...the unit's fields}` record (a test pins the two together, so
/// a field added to [`UnitResult`] fails it until it is written here), but with the keys as
/// literals: the output thread writes a line per unit, and escaping ten constant keys through a
/// map serializer was most of its work.
fn encode(out: &mut Vec<u8>, unit: &UnitResult) -> serde_json::Result<()> {
    use serde_json::to_writer as value;
    out.extend_from_slice(b"{\"schema\":");
    value(&mut *out, &SCHEMA)?;
    out.extend_from_slice(b",\"type\":\"unit\",\"experiment\":");
    value(&mut *out, &unit.experiment)?;
    out.extend_from_slice(b",\"condition\":");
    value(&mut *out, &unit.condition)?;
    out.extend_from_slice(b",\"replicate\":");
    value(&mut *out, &unit.replicate)?;
    out.extend_from_slice(b",\"seed\":");
    value(&mut *out, &unit.seed)?;
    out.extend_from_slice(b",\"status\":");
    value(&mut *out, &unit.status)?;
    if let Some(error) = &unit.error {
        out.extend_from_slice(b",\"error\":");
        value(&mut *out, error)?;
    }
    out.extend_from_slice(b",\"metrics\":");
    value(&mut *out, &unit.metrics)?;
    if !unit.records.is_empty() {
        out.extend_from_slice(b",\"records\":");
        value(&mut *out, &unit.records)?;
    }
    out.extend_from_slice(b",\"duration_ms\":");
    value(&mut *out, &unit.duration_ms)?;
    out.push(b'}');
    Ok(())
}

/// How often the journal is forced to disk: `fsync` is what survives a power loss, and doing it
/// per unit would cap throughput at the disk's sync rate.
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// Most bytes of finished lines held in memory before they are written, even when the output
/// thread has not caught up with the workers.
const PENDING_LIMIT: usize = 256 * 1024;

/// Appends finished units to `journal-<writer>.jsonl`. Runs on the output thread: the only writer
/// of its file.
///
/// Lines are collected in memory and written, whole lines only, each time the output thread has
/// caught up with the workers ([`Observer::flush`]: after at most a batch of messages), when
/// 256 KiB are pending, and at the end of the run. A unit whose line is not yet written when the
/// process is killed is not done, and runs again on resume (see `docs/STORE.md`, Durability).
pub struct JournalWriter {
    path: PathBuf,
    file: File,
    /// Complete lines not yet written.
    pending: Vec<u8>,
    last_sync: Instant,
    error: Option<io::Error>,
    cancel: Cancel,
}

impl JournalWriter {
    /// Creates (or appends to) the journal at `path`. A write error later cancels the run through
    /// `cancel`: computing units that cannot be stored would waste the compute.
    pub fn create(path: PathBuf, cancel: Cancel) -> io::Result<JournalWriter> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(JournalWriter {
            path,
            file,
            pending: Vec::with_capacity(PENDING_LIMIT + 4096),
            last_sync: Instant::now(),
            error: None,
            cancel,
        })
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes what is pending and forces it to disk; the first write error, if any, with the
    /// journal's path.
    pub fn finish(mut self) -> Result<(), String> {
        let written = self.write_pending().and_then(|()| self.file.sync_data());
        if let (None, Err(error)) = (&self.error, written) {
            self.error = Some(error);
        }
        match self.error.take() {
            Some(error) => Err(format!("could not write the journal {}: {error}", self.path.display())),
            None => Ok(()),
        }
    }

    fn append(&mut self, unit: &UnitResult) -> io::Result<()> {
        let start = self.pending.len();
        if let Err(error) = encode(&mut self.pending, unit) {
            self.pending.truncate(start);
            return Err(io::Error::other(error));
        }
        self.pending.push(b'\n');
        if self.pending.len() >= PENDING_LIMIT {
            self.write_pending()?;
        }
        Ok(())
    }

    /// Writes the pending lines with one `write` call (an O_APPEND file: a crash leaves at most a
    /// torn last line), and syncs if the last sync is a second old.
    fn write_pending(&mut self) -> io::Result<()> {
        if self.error.is_some() || self.pending.is_empty() {
            return Ok(());
        }
        self.file.write_all(&self.pending)?;
        self.pending.clear();
        if self.last_sync.elapsed() >= SYNC_EVERY {
            self.file.sync_data()?;
            self.last_sync = Instant::now();
        }
        Ok(())
    }

    fn fail(&mut self, error: io::Error) {
        self.error = Some(error);
        self.pending.clear();
        self.cancel.cancel();
    }
}

impl Observer for JournalWriter {
    fn unit_finished(&mut self, result: &UnitResult) {
        if self.error.is_some() {
            return;
        }
        if let Err(error) = self.append(result) {
            self.fail(error);
        }
    }

    fn flush(&mut self) {
        if let Err(error) = self.write_pending() {
            self.fail(error);
        }
    }

    fn run_finished(&mut self, _results: &[UnitResult]) {
        self.flush();
    }

    fn interest(&self) -> Interest {
        Interest::RESULTS
    }
}

impl Drop for JournalWriter {
    /// A writer dropped without [`JournalWriter::finish`] still writes its pending lines.
    fn drop(&mut self) {
        let _ = self.write_pending();
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

/// What one line of a journal holds.
enum Parsed {
    Blank,
    Unit(UnitResult),
    Foreign { schema: u32, kind: String },
    Invalid(serde_json::Error),
}

/// Parses one line. Lines this version wrote start with `prefix` (`{"schema":1,"type":"unit",`)
/// and parse straight into a [`UnitResult`] (whose fields follow); any other line (written by
/// another tool, or damaged) goes through the general [`Record`].
fn parse_line(line: &[u8], prefix: &str) -> Parsed {
    if line.starts_with(prefix.as_bytes()) {
        if let Ok(unit) = serde_json::from_slice::<UnitResult>(line) {
            return Parsed::Unit(unit);
        }
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return Parsed::Blank;
    }
    match serde_json::from_slice::<Record>(line) {
        Ok(record) if record.schema == SCHEMA && record.kind == "unit" => Parsed::Unit(record.unit),
        Ok(record) => Parsed::Foreign { schema: record.schema, kind: record.kind },
        Err(error) => Parsed::Invalid(error),
    }
}

fn read_one(path: &Path, loaded: &mut Loaded) {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) => {
            loaded.warnings.push(format!("cannot read {}: {error}; its units will run again", path.display()));
            return;
        }
    };
    let mut lines: Vec<&[u8]> = Vec::with_capacity(bytes.len() / 128);
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', &bytes) {
        lines.push(&bytes[start..end]);
        start = end + 1;
    }
    // What follows the last newline, if anything, is a torn line.
    let torn = Some(&bytes[start..]).filter(|last| !last.is_empty());
    // Lines are independent: parse them on every core (a journal of a million units is ~170 MB),
    // then take them in order.
    let prefix = format!("{{\"schema\":{SCHEMA},\"type\":\"unit\",");
    let parsed: Vec<Parsed> = lines.par_iter().with_min_len(4096).map(|line| parse_line(line, &prefix)).collect();
    for (index, parsed) in parsed.into_iter().enumerate() {
        let at = || format!("{}:{}", path.display(), index + 1);
        match parsed {
            Parsed::Blank => {}
            Parsed::Unit(unit) => loaded.units.push(unit),
            Parsed::Foreign { schema, kind } => loaded.warnings.push(format!(
                "{}: record of schema {schema} type '{kind}' is not understood by this version (schema {SCHEMA}); ignored",
                at()
            )),
            Parsed::Invalid(error) => {
                loaded.warnings.push(format!("{}: not a valid unit record ({error}); ignored, its unit will run again", at()))
            }
        }
    }
    if let Some(torn) = torn {
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

    fn unit(condition: &str, replicate: u64) -> UnitResult {
        UnitResult {
            experiment: "e".into(),
            condition: condition.into(),
            replicate,
            seed: 7,
            status: UnitStatus::Ok,
            error: None,
            metrics: [("win", 1.0)].into(),
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
    fn lines_are_what_serde_writes_for_the_record() {
        let mut full = unit("a \"quoted\"\n\u{e9}", 3);
        full.status = UnitStatus::Error;
        full.error = Some(crate::runner::UnitError { message: "boom".into(), location: Some("src/x.rs:1:2".into()) });
        full.metrics.insert("nan".into(), f64::NAN);
        full.metrics.insert("big".into(), 1e300);
        full.records = vec![crate::events::MetricRecord {
            name: "win".into(),
            value: 1.0,
            tags: vec![("team".into(), "aligned".into())],
        }];
        let without_error = UnitResult {
            error: Some(crate::runner::UnitError { message: "m".into(), location: None }),
            ..unit("b", 0)
        };
        for u in [unit("a", 0), full, without_error] {
            let mut ours = Vec::new();
            encode(&mut ours, &u).unwrap();
            let theirs = serde_json::to_vec(&RecordRef { schema: SCHEMA, kind: "unit", unit: &u }).unwrap();
            assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(theirs).unwrap());
        }
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
    fn lines_are_written_whole_when_the_output_thread_flushes_or_the_writer_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal-1.jsonl");
        let mut journal = JournalWriter::create(path.clone(), Cancel::default()).unwrap();
        journal.unit_finished(&unit("a", 0));
        journal.unit_finished(&unit("a", 1));
        assert_eq!(std::fs::read(&path).unwrap(), b"", "pending until the output thread catches up");
        journal.flush();
        assert_eq!(read_all(dir.path()).units.len(), 2);
        journal.unit_finished(&unit("a", 2));
        drop(journal);
        let loaded = read_all(dir.path());
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(loaded.units.len(), 3, "a writer dropped without finish still writes its lines");
    }

    #[test]
    fn lines_of_other_writers_with_reordered_keys_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let line = r#"{"type":"unit","experiment":"e","schema":1,"condition":"a","replicate":4,"seed":7,"status":"ok","metrics":{"win":1.0},"duration_ms":0.5}"#;
        std::fs::write(dir.path().join("journal-x.jsonl"), format!("{line}\n")).unwrap();
        let loaded = read_all(dir.path());
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(loaded.units, [unit("a", 4)]);
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
