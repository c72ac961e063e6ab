//! The append-only journal of finished units: one JSON line per unit, one file per writing
//! process. A unit is done if and only if its line is completely written.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::borrow::Cow;
use std::marker::PhantomData;

use rayon::prelude::*;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::integrity::{self, Check};
use crate::events::{Interest, Observer};
use crate::runner::{Cancel, UnitResult, UnitStatus};
use crate::seed::{fnv1a, mix};

/// The schema of the journal lines this version writes: 2, each line sealed with its checksum
/// (docs/STORE.md: a CRC-32 of everything before it). Lines of schema 1 (no checksum) are still
/// read.
pub const JOURNAL_SCHEMA: u32 = 2;

/// The schema of the journal lines written before lines carried a checksum.
const LEGACY_SCHEMA: u32 = 1;

/// One line of a journal, as read: the unit's fields as `T` (a [`UnitResult`], or the
/// [`UnitShape`] of a scan).
#[derive(Debug, Deserialize)]
struct Record<T> {
    schema: u32,
    #[serde(rename = "type")]
    kind: String,
    #[serde(flatten)]
    unit: T,
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

/// Writes `unit`'s journal record, without its checksum and newline: exactly what serde writes for
/// a `{"schema":2,"type":"unit", ...the unit's fields}` record (a test pins the two together, so
/// a field added to [`UnitResult`] fails it until it is written here), but with the keys as
/// literals: the output thread writes a line per unit, and escaping ten constant keys through a
/// map serializer was most of its work.
fn encode(out: &mut Vec<u8>, unit: &UnitResult) -> serde_json::Result<()> {
    use serde_json::to_writer as value;
    out.extend_from_slice(b"{\"schema\":");
    value(&mut *out, &JOURNAL_SCHEMA)?;
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
    if !unit.attempts.is_empty() {
        out.extend_from_slice(b",\"attempts\":");
        value(&mut *out, &unit.attempts)?;
    }
    if !unit.cache.is_empty() {
        out.extend_from_slice(b",\"cache\":");
        value(&mut *out, &unit.cache)?;
    }
    out.push(b'}');
    Ok(())
}

/// `record` (one JSON object, without a checksum or a newline) as a line of journal schema 2:
/// sealed with its checksum as its last field (docs/STORE.md). For tools that write
/// journal lines; `record` should say `"schema":2`.
pub fn seal_record(record: &[u8]) -> Vec<u8> {
    let mut line = record.trim_ascii_end().to_vec();
    if line.last() == Some(&b'}') {
        integrity::seal(&mut line, 0);
    }
    line
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
    /// Armed while units are being journaled: see [`super::exit_guard`]. Dropped with the writer.
    exit_guard: Option<super::exit_guard::ExitGuard>,
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
            exit_guard: None,
        })
    }

    /// Keeps `guard` armed until this writer is finished or dropped.
    pub fn with_exit_guard(mut self, guard: super::exit_guard::ExitGuard) -> JournalWriter {
        self.exit_guard = Some(guard);
        self
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
        // Lines that could not be written are not written again on drop: part of them may be in
        // the file already, and a second attempt would follow it with duplicates.
        self.pending.clear();
        match self.error.take() {
            Some(error) => Err(format!("could not write the journal {}: {error}", self.path.display())),
            None => Ok(()),
        }
    }

    /// Appends a record of another type than `unit` (the stop of a sequential session,
    /// [`super::stops`]): `{"schema":2,"type":KIND, ...record's fields}`, sealed like every line,
    /// and written at once. Readers of units pass over it. `Err` when the record cannot be
    /// encoded; a write error is kept for [`JournalWriter::finish`] to say.
    pub fn append_record(&mut self, kind: &str, record: &impl serde::Serialize) -> Result<(), String> {
        let fields = serde_json::to_vec(record).map_err(|e| format!("cannot encode a '{kind}' record: {e}"))?;
        let Some(fields) = fields.strip_prefix(b"{").filter(|rest| rest.len() > 1) else {
            return Err(format!("a '{kind}' record is a JSON object with fields"));
        };
        let start = self.pending.len();
        self.pending.extend_from_slice(b"{\"schema\":");
        self.pending.extend_from_slice(JOURNAL_SCHEMA.to_string().as_bytes());
        self.pending.extend_from_slice(b",\"type\":");
        serde_json::to_writer(&mut self.pending, kind).map_err(|e| e.to_string())?;
        self.pending.push(b',');
        self.pending.extend_from_slice(fields);
        integrity::seal(&mut self.pending, start);
        self.pending.push(b'\n');
        // A write error is the journal's: kept, and said by `finish`, like a unit's.
        if let Err(error) = self.write_pending() {
            self.error.get_or_insert(error);
            self.pending.clear();
        }
        Ok(())
    }

    fn append(&mut self, unit: &UnitResult) -> io::Result<()> {
        let start = self.pending.len();
        if let Err(error) = encode(&mut self.pending, unit) {
            self.pending.truncate(start);
            return Err(io::Error::other(error));
        }
        integrity::seal(&mut self.pending, start);
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

/// Where a record was read (kept with the rules that resolve records by it).
pub use super::integrity::LineAt;

/// `path:line` of `at`, for warnings.
pub fn describe(files: &[PathBuf], at: LineAt) -> String {
    let path = files.get(at.file as usize).map(|p| p.display().to_string()).unwrap_or_else(|| "?".into());
    format!("{path}:{}", at.line)
}

/// What reading the journals of a run found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every well-formed record, journal by journal (oldest writer first), line by line.
    pub units: Vec<UnitResult>,
    /// Where each of [`Loaded::units`] was read, in the same order: what a reader that rejects a
    /// record names in its warning.
    pub at: Vec<LineAt>,
    /// The journals read, in order; [`LineAt::file`] indexes them.
    pub files: Vec<PathBuf>,
    /// What was skipped and why: torn last lines, unparsable lines, unreadable files.
    pub warnings: Vec<String>,
    /// How many of the skipped lines are damage (a line that does not parse, fails its checksum
    /// or lacks one in a checksummed journal, or could not be read), not the torn last line an
    /// interrupted writer leaves or a record of a newer version.
    pub damaged: usize,
    /// The sealed lines of the other record types this version writes (stop records,
    /// [`super::stops`]), whole, in read order, with where each was read.
    pub others: Vec<(Vec<u8>, LineAt)>,
}

/// Reads every `journal-*.jsonl` in `dir`. Never fails: damage becomes warnings, and the units of
/// damaged lines count as not done, so they run again on resume. Whether a record belongs to
/// the run (its condition, replicate and seed) is for the caller to check: see
/// [`crate::store::RunDir::state`].
pub fn read_all(dir: &Path) -> Loaded {
    let (mut units, mut at) = (Vec::new(), Vec::new());
    let mut loaded = read_each(dir, |unit, line_at| {
        units.push(unit);
        at.push(line_at);
    });
    (loaded.units, loaded.at) = (units, at);
    loaded
}

/// [`read_all`], giving each record to `take` as it is read (journals by writer, lines in order)
/// instead of holding them all: the returned [`Loaded`] has the files, warnings and damage, and
/// no units.
pub fn read_each(dir: &Path, mut take: impl FnMut(UnitResult, LineAt)) -> Loaded {
    let mut loaded = Loaded::default();
    loaded.files = journals(dir, &mut loaded.warnings);
    for (file, path) in loaded.files.iter().enumerate() {
        let mut others = Vec::new();
        read_one(
            path,
            &mut loaded.warnings,
            &mut loaded.damaged,
            &mut others,
            |line| parse_line::<UnitResult>(line),
            |unit, line| take(unit, LineAt { file: file as u32, line }),
        );
        loaded.others.extend(others.into_iter().map(|(bytes, line)| (bytes, LineAt { file: file as u32, line })));
    }
    loaded
}

/// One record as a scan sees it: which unit, its seed, whether it succeeded, a digest of its
/// metrics, and where it was read.
#[derive(Clone, Debug, PartialEq)]
pub struct ScannedUnit {
    /// The condition: its index in the conditions the scan was given, or its name when it is
    /// not one of them.
    pub condition: Result<usize, String>,
    /// The replicate index.
    pub replicate: u64,
    /// The seed the record says the unit ran with.
    pub seed: u64,
    /// Whether the unit succeeded.
    pub ok: bool,
    /// [`metrics_digest`] of its metrics: two records of a unit with different metrics have
    /// different digests (but for a 2^-64 chance).
    pub digest: u64,
    /// Where it was read.
    pub at: LineAt,
}

/// What scanning the journals of a run found.
#[derive(Debug, Default)]
pub struct Scanned {
    /// Every well-formed record, in the order of [`Loaded::units`].
    pub units: Vec<ScannedUnit>,
    /// The journals read, in order; [`LineAt::file`] indexes them.
    pub files: Vec<PathBuf>,
    /// The same warnings as [`read_all`]'s.
    pub warnings: Vec<String>,
    /// The same count as [`Loaded::damaged`].
    pub damaged: usize,
    /// The same lines as [`Loaded::others`].
    pub others: Vec<(Vec<u8>, LineAt)>,
}

/// Reads every `journal-*.jsonl` in `dir` as [`read_all`] does, accepting and rejecting exactly
/// the same lines with the same warnings, but keeps only which unit each record is, its seed,
/// whether it succeeded and a digest of its metrics: what resuming a run needs. Nothing of a
/// line is copied (its condition becomes an index into `conditions`), which makes it several
/// times faster than [`read_all`] on a big run.
pub fn scan_all(dir: &Path, conditions: &[String]) -> Scanned {
    let mut scanned = Scanned::default();
    let parse = |line: &[u8]| match parse_line::<UnitShape>(line) {
        Parsed::Unit(unit, sealed) => Parsed::Unit(
            (
                conditions.iter().position(|c| **c == *unit.condition).ok_or_else(|| unit.condition.into_owned()),
                unit.replicate,
                unit.seed,
                unit.status == UnitStatus::Ok,
                unit.metrics.0,
            ),
            sealed,
        ),
        Parsed::Blank => Parsed::Blank,
        Parsed::Other(line) => Parsed::Other(line),
        Parsed::Foreign { schema, kind } => Parsed::Foreign { schema, kind },
        Parsed::Invalid(error) => Parsed::Invalid(error),
        Parsed::Corrupt(reason) => Parsed::Corrupt(reason),
        Parsed::CorruptOther(reason) => Parsed::CorruptOther(reason),
    };
    scanned.files = journals(dir, &mut scanned.warnings);
    for (file, path) in scanned.files.iter().enumerate() {
        let units = &mut scanned.units;
        let mut others = Vec::new();
        read_one(
            path,
            &mut scanned.warnings,
            &mut scanned.damaged,
            &mut others,
            parse,
            |(condition, replicate, seed, ok, digest), line| {
                units.push(ScannedUnit {
                    condition,
                    replicate,
                    seed,
                    ok,
                    digest,
                    at: LineAt { file: file as u32, line },
                })
            },
        );
        scanned.others.extend(others.into_iter().map(|(bytes, line)| (bytes, LineAt { file: file as u32, line })));
    }
    scanned
}

/// A digest of a unit's metrics, the same whatever the order of their keys in the line: each
/// metric's name and the bits of its value are hashed, and the hashes added.
pub fn metrics_digest<'a>(metrics: impl IntoIterator<Item = (&'a str, f64)>) -> u64 {
    metrics.into_iter().fold(0u64, |sum, (name, value)| sum.wrapping_add(metric_hash(name, value)))
}

fn metric_hash(name: &str, value: f64) -> u64 {
    mix(fnv1a(name.as_bytes()) ^ mix(value.to_bits()))
}

/// The `journal-*.jsonl` files of `dir`, in the order their writers began.
pub(super) fn journals(dir: &Path, warnings: &mut Vec<String>) -> Vec<PathBuf> {
    let mut journals: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("journal-") && n.ends_with(".jsonl"))
            })
            // Only regular files (symlinks to them too): reading a FIFO would wait for a writer
            // forever, and a device or a directory is no journal.
            .filter(|p| match std::fs::metadata(p) {
                Ok(meta) if meta.is_file() => true,
                Ok(_) => {
                    warnings.push(format!("{} is not a regular file; ignored", p.display()));
                    false
                }
                Err(error) => {
                    warnings.push(format!("cannot read {}: {error}; its units will run again", p.display()));
                    false
                }
            })
            .collect(),
        Err(error) => {
            warnings.push(format!("cannot read {}: {error}", dir.display()));
            return Vec::new();
        }
    };
    // Writer ids start with their start time, so name order is the order the sessions began.
    journals.sort();
    journals
}

/// What one line of a journal holds.
enum Parsed<T> {
    Blank,
    /// A sealed line of another record type this version writes (a sequential session's stop):
    /// kept whole for its reader, not a unit.
    Other(Vec<u8>),
    /// A unit record, and whether its line carried a valid checksum.
    Unit(T, bool),
    Foreign {
        schema: u32,
        kind: String,
    },
    Invalid(serde_json::Error),
    /// A line whose checksum fails, or a line of schema 2 without one: why.
    Corrupt(String),
    /// A line that starts as another record type's (a stop record) and fails its checksum:
    /// why. Damage, but no unit's.
    CorruptOther(String),
}

/// The start of every line this version writes.
const PREFIX: &[u8] = b"{\"schema\":2,\"type\":\"unit\",";
/// The start of the lines of the records that are not units, which this version writes too and
/// unit readers pass over (sealed, as every line).
pub(super) const OTHER_PREFIXES: &[&[u8]] = &[STOP_PREFIX];
/// The start of every stop line this version writes ([`super::stops`]).
pub(super) const STOP_PREFIX: &[u8] = b"{\"schema\":2,\"type\":\"stop\",";
/// The start of the lines of schema 1.
const LEGACY_PREFIX: &[u8] = b"{\"schema\":1,\"type\":\"unit\",";
// [`PREFIX`] spells the schema out.
const _: () = assert!(JOURNAL_SCHEMA == 2 && LEGACY_SCHEMA == 1, "update PREFIX with the schema");

/// Parses one line into `T` (a [`UnitResult`] or a [`UnitShape`]: both accept the same lines).
/// A line that ends with a checksum is verified first, whatever it claims to be; a line of
/// schema 2 must have one. Lines this version wrote start with [`PREFIX`] and parse straight
/// into `T` (whose fields follow; the checksum is a field `T` ignores); any other line (of
/// schema 1, written by another tool, or damaged) goes through the general [`Record`].
fn parse_line<'a, T: Deserialize<'a>>(line: &'a [u8]) -> Parsed<T> {
    let sealed = match integrity::verify(line) {
        Check::Valid => true,
        Check::Absent => false,
        Check::Mismatch(reason) if OTHER_PREFIXES.iter().any(|p| line.starts_with(p)) => {
            return Parsed::CorruptOther(reason)
        }
        Check::Mismatch(reason) => return Parsed::Corrupt(reason),
    };
    if (sealed && line.starts_with(PREFIX)) || (!sealed && line.starts_with(LEGACY_PREFIX)) {
        if let Ok(unit) = serde_json::from_slice::<T>(line) {
            return Parsed::Unit(unit, sealed);
        }
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return Parsed::Blank;
    }
    if sealed && OTHER_PREFIXES.iter().any(|p| line.starts_with(p)) {
        return Parsed::Other(line.to_vec());
    }
    match serde_json::from_slice::<Record<T>>(line) {
        Ok(record) if record.kind == "unit" && record.schema == JOURNAL_SCHEMA && !sealed => {
            Parsed::Corrupt(format!("a record of schema {JOURNAL_SCHEMA} without its checksum"))
        }
        Ok(record) if record.kind == "unit" && (record.schema == JOURNAL_SCHEMA || record.schema == LEGACY_SCHEMA) => {
            Parsed::Unit(record.unit, sealed)
        }
        Ok(record) => Parsed::Foreign { schema: record.schema, kind: record.kind },
        Err(error) => Parsed::Invalid(error),
    }
}

/// Reads one journal line as a unit record, as [`read_all`] does: `Ok(None)` for a blank line
/// or a record of another type or a newer schema, `Err` (why) for a line that does not parse or
/// fails its checksum. For readers that follow a journal line by line (`watch`).
pub fn parse_record(line: &[u8]) -> Result<Option<UnitResult>, String> {
    match parse_line::<UnitResult>(line) {
        Parsed::Unit(unit, _) => Ok(Some(unit)),
        Parsed::Blank | Parsed::Other(_) | Parsed::Foreign { .. } => Ok(None),
        Parsed::Invalid(error) => Err(format!("not a valid unit record ({error})")),
        Parsed::Corrupt(reason) => Err(format!("a damaged unit record: {reason}")),
        Parsed::CorruptOther(reason) => Err(format!("a damaged stop record: {reason}")),
    }
}

/// How much of a journal is read at a time. A block is parsed on every core while the next one
/// is read; reading the whole file at once (~170 MB for a million units) made the kernel zero
/// and map fresh pages for all of it, which took about as long as parsing it.
const BLOCK: usize = 4 << 20;

/// Reads the journal at `path`: each record `parse` accepts goes to `take`, in line order; damage
/// becomes warnings, with file and line.
fn read_one<T: Send>(
    path: &Path,
    warnings: &mut Vec<String>,
    damaged: &mut usize,
    others: &mut Vec<(Vec<u8>, u64)>,
    parse: impl Fn(&[u8]) -> Parsed<T> + Sync,
    mut take: impl FnMut(T, u64),
) {
    let cannot_read = |error: io::Error| format!("cannot read {}: {error}; its units will run again", path.display());
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(error) => {
            *damaged += 1;
            return warnings.push(cannot_read(error));
        }
    };
    let (mut current, mut next) = (Vec::new(), Vec::new());
    let mut eof = false;
    if let Err(error) = fill(&mut file, &mut current, &mut eof) {
        *damaged += 1;
        return warnings.push(cannot_read(error));
    }
    // A journal with a checksummed line is one this version wrote, every line of it sealed: a
    // line without a checksum in it was not written by its writer. Decided block by block (a
    // block's lines are all parsed before any is taken), so that a line rewritten without its
    // checksum is rejected even before the first sealed line.
    let mut sealed_journal = false;
    // Lines before `current`.
    let mut line = 0;
    loop {
        // The complete lines of the block; what follows its last newline starts the next one.
        let end = memchr::memrchr(b'\n', &current).map_or(0, |i| i + 1);
        if eof && end == 0 {
            break;
        }
        next.clear();
        next.extend_from_slice(&current[end..]);
        let complete = &current[..end];
        let (read, parsed) = rayon::join(
            || if eof { Ok(()) } else { fill(&mut file, &mut next, &mut eof) },
            || {
                let mut lines: Vec<&[u8]> = Vec::with_capacity(complete.len() / 128);
                let mut start = 0;
                for end in memchr::memchr_iter(b'\n', complete) {
                    lines.push(&complete[start..end]);
                    start = end + 1;
                }
                // Lines are independent: parse them on every core, then take them in order.
                lines.par_iter().with_min_len(4096).map(|line| parse(line)).collect::<Vec<Parsed<T>>>()
            },
        );
        let count = parsed.len();
        sealed_journal = sealed_journal || parsed.iter().any(|p| matches!(p, Parsed::Unit(_, true)));
        for (index, parsed) in parsed.into_iter().enumerate() {
            let at = || format!("{}:{}", path.display(), line + index + 1);
            match parsed {
                Parsed::Blank => {}
                Parsed::Other(bytes) => others.push((bytes, (line + index + 1) as u64)),
                Parsed::Unit(unit, true) => take(unit, (line + index + 1) as u64),
                Parsed::Unit(_, false) if sealed_journal => {
                    *damaged += 1;
                    warnings.push(format!(
                        "{}: a record without a checksum in a journal whose lines have one (it was not written \
                         by the journal's writer); ignored, its unit will run again",
                        at()
                    ))
                }
                Parsed::Unit(unit, false) => take(unit, (line + index + 1) as u64),
                Parsed::Foreign { schema, kind } => warnings.push(format!(
                    "{}: record of schema {schema} type '{kind}' is not understood by this version (schema \
                     {JOURNAL_SCHEMA}); ignored",
                    at()
                )),
                Parsed::Invalid(error) => {
                    *damaged += 1;
                    warnings
                        .push(format!("{}: not a valid unit record ({error}); ignored, its unit will run again", at()))
                }
                Parsed::Corrupt(reason) => {
                    *damaged += 1;
                    warnings.push(format!("{}: damaged line: {reason}; ignored, its unit will run again", at()))
                }
                Parsed::CorruptOther(reason) => {
                    *damaged += 1;
                    warnings.push(format!("{}: damaged stop record: {reason}; ignored", at()))
                }
            }
        }
        line += count;
        if let Err(error) = read {
            *damaged += 1;
            return warnings.push(format!(
                "cannot read {} after line {line}: {error}; its units from there on will run again",
                path.display()
            ));
        }
        std::mem::swap(&mut current, &mut next);
    }
    // What follows the last newline, if anything, is a torn line.
    if !current.is_empty() {
        warnings.push(format!(
            "{}:{}: ignoring a torn last line ({} bytes): its writer stopped mid-write; the unit will run again",
            path.display(),
            line + 1,
            current.len()
        ));
    }
}

/// Appends the next block of `file` to `buffer` (at least as much as `buffer` already holds, so
/// that a line longer than a block is read in time linear in its length); sets `eof` at the end.
fn fill(file: &mut File, buffer: &mut Vec<u8>, eof: &mut bool) -> io::Result<()> {
    let want = BLOCK.max(buffer.len());
    buffer.reserve(want);
    let read = Read::take(&mut *file, want as u64).read_to_end(buffer)?;
    *eof = read < want;
    Ok(())
}

/// A [`UnitResult`] as a scan reads it: the same fields with the same types, required and
/// optional alike, so that it accepts exactly the lines a [`UnitResult`] accepts (a test pins
/// the two together), but holding only what a scan keeps; the rest is checked, not copied.
#[derive(Deserialize)]
#[serde(expecting = "struct UnitResult")] // What errors say: the same as `read_all`'s.
#[allow(dead_code)] // Fields that are only checked.
struct UnitShape<'a> {
    experiment: AnyStr,
    #[serde(borrow)]
    condition: Cow<'a, str>,
    replicate: u64,
    seed: u64,
    status: UnitStatus,
    #[serde(default)]
    error: Option<ErrorShape>,
    metrics: MetricsShape,
    #[serde(default)]
    records: Seq<RecordShape>,
    duration_ms: f64,
}

/// A [`crate::runner::UnitError`], checked.
#[derive(Deserialize)]
#[serde(expecting = "struct UnitError")]
#[allow(dead_code)] // Fields that are only checked.
struct ErrorShape {
    message: AnyStr,
    #[serde(default)]
    location: Option<AnyStr>,
}

/// A [`crate::events::MetricRecord`], checked.
#[derive(Deserialize)]
#[serde(expecting = "struct MetricRecord")]
#[allow(dead_code)] // Fields that are only checked.
struct RecordShape {
    name: AnyStr,
    value: f64,
    #[serde(default)]
    tags: Seq<(AnyStr, AnyStr)>,
}

/// A metric's name, checked as [`AnyStr`] is and kept as its FNV-1a hash (not copied).
struct NameHash(u64);

impl<'de> Deserialize<'de> for NameHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<NameHash, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = NameHash;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<NameHash, E> {
                Ok(NameHash(fnv1a(name.as_bytes())))
            }
            fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<NameHash, E> {
                match std::str::from_utf8(bytes) {
                    Ok(name) => self.visit_str(name),
                    Err(_) => Err(E::invalid_value(de::Unexpected::Bytes(bytes), &self)),
                }
            }
        }
        deserializer.deserialize_str(Visit)
    }
}

/// A string, checked and dropped.
struct AnyStr;

impl<'de> Deserialize<'de> for AnyStr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<AnyStr, D::Error> {
        // `String` accepts what this visitor accepts: strings, and bytes that are UTF-8.
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = AnyStr;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<AnyStr, E> {
                Ok(AnyStr)
            }
            fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<AnyStr, E> {
                match std::str::from_utf8(bytes) {
                    Ok(_) => Ok(AnyStr),
                    Err(_) => Err(E::invalid_value(de::Unexpected::Bytes(bytes), &self)),
                }
            }
        }
        deserializer.deserialize_string(Visit)
    }
}

/// A sequence of `T` (a `Vec<T>`), checked and dropped.
struct Seq<T>(PhantomData<T>);

impl<T> Default for Seq<T> {
    fn default() -> Seq<T> {
        Seq(PhantomData)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Seq<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Seq<T>, D::Error> {
        struct Visit<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Visit<T> {
            type Value = Seq<T>;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Seq<T>, A::Error> {
                while access.next_element::<T>()?.is_some() {}
                Ok(Seq(PhantomData))
            }
        }
        deserializer.deserialize_seq(Visit(PhantomData))
    }
}

/// A [`crate::metrics::Metrics`] (an object of names and numbers), checked and kept as its
/// [`metrics_digest`].
struct MetricsShape(u64);

impl<'de> Deserialize<'de> for MetricsShape {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<MetricsShape, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = MetricsShape;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("an object of metric names and numbers")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<MetricsShape, A::Error> {
                let mut digest = 0u64;
                while let Some((NameHash(name), value)) = access.next_entry::<NameHash, f64>()? {
                    digest = digest.wrapping_add(mix(name ^ mix(value.to_bits())));
                }
                Ok(MetricsShape(digest))
            }
        }
        deserializer.deserialize_map(Visit)
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
            attempts: Vec::new(),
            cache: Default::default(),
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
        full.error = Some(crate::runner::UnitError {
            message: "boom".into(),
            location: Some("src/x.rs:1:2".into()),
            kind: Default::default(),
        });
        full.metrics.insert("nan".into(), f64::NAN);
        full.metrics.insert("big".into(), 1e300);
        full.records = vec![crate::events::MetricRecord {
            name: "win".into(),
            value: 1.0,
            tags: vec![("team".into(), "aligned".into())],
        }];
        let without_error = UnitResult {
            error: Some(crate::runner::UnitError { message: "m".into(), location: None, kind: Default::default() }),
            ..unit("b", 0)
        };
        let failed_once = crate::results::UnitError {
            message: "timed out".into(),
            location: None,
            kind: crate::results::FailureKind::Timeout,
        };
        let retried = UnitResult {
            attempts: vec![crate::results::Attempt { attempt: 1, error: failed_once, duration_ms: 2.5 }],
            ..unit("b", 1)
        };
        let cached = UnitResult {
            cache: [("ask".to_owned(), crate::results::CacheCount { hits: 2, misses: 1 })].into(),
            ..unit("b", 2)
        };
        for u in [unit("a", 0), full, without_error, retried, cached] {
            let mut ours = Vec::new();
            encode(&mut ours, &u).unwrap();
            let theirs = serde_json::to_vec(&RecordRef { schema: JOURNAL_SCHEMA, kind: "unit", unit: &u }).unwrap();
            assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(theirs).unwrap());
        }
    }

    #[test]
    fn every_line_is_sealed_and_a_changed_value_is_rejected_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_units(dir.path(), "1", &[unit("a", 0), unit("a", 1), unit("a", 2)]);
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            assert!(line.starts_with("{\"schema\":2,\"type\":\"unit\","), "{line}");
            assert_eq!(integrity::verify(line.as_bytes()), Check::Valid, "{line}");
        }
        // An edited metric (still valid JSON, still a plausible record) fails the checksum.
        let edited = text.replacen("\"win\":1.0", "\"win\":0.0", 2).replacen("\"win\":0.0", "\"win\":1.0", 1);
        std::fs::write(&path, edited).unwrap();
        let loaded = read_all(dir.path());
        let replicates: Vec<u64> = loaded.units.iter().map(|u| u.replicate).collect();
        assert_eq!(replicates, [0, 2]);
        assert_eq!(loaded.damaged, 1);
        assert!(loaded.warnings[0].contains("journal-1.jsonl:2: damaged line: its content does not match its checksum"));
        let scanned = scan_all(dir.path(), &["a".to_owned()]);
        assert_eq!((scanned.warnings.clone(), scanned.damaged), (loaded.warnings.clone(), 1));
    }

    #[test]
    fn lines_of_schema_1_still_read_but_not_after_sealed_lines_of_the_same_journal() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = r#"{"schema":1,"type":"unit","experiment":"e","condition":"a","replicate":4,"seed":7,"status":"ok","metrics":{"win":1.0},"duration_ms":0.5}"#;
        std::fs::write(dir.path().join("journal-0.jsonl"), format!("{legacy}\n")).unwrap();
        let path = write_units(dir.path(), "1", &[unit("a", 0)]);
        // A schema 2 line without its checksum, and a schema 1 line after sealed ones.
        let unsealed = legacy.replace("\"schema\":1", "\"schema\":2").replace(":4,", ":5,");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(&format!("{unsealed}\n{}\n", legacy.replace(":4,", ":6,")));
        std::fs::write(&path, text).unwrap();
        let loaded = read_all(dir.path());
        let replicates: Vec<u64> = loaded.units.iter().map(|u| u.replicate).collect();
        assert_eq!(replicates, [4, 0], "{:?}", loaded.warnings);
        assert_eq!(loaded.damaged, 2);
        assert!(
            loaded.warnings[0].contains("journal-1.jsonl:2: damaged line: a record of schema 2 without its checksum")
        );
        assert!(loaded.warnings[1].contains("journal-1.jsonl:3: a record without a checksum in a journal whose lines"));
        let scanned = scan_all(dir.path(), &["a".to_owned()]);
        assert_eq!((scanned.warnings, scanned.damaged), (loaded.warnings, 2));
        // A line rewritten without its checksum before the journal's sealed lines: rejected too.
        let path = write_units(dir.path(), "15", &[unit("a", 8), unit("a", 9)]);
        let text = std::fs::read_to_string(&path).unwrap();
        let second = text.lines().nth(1).unwrap().to_owned();
        std::fs::write(&path, format!("{}\n{second}\n", legacy.replace(":4,", ":8,"))).unwrap();
        let loaded = read_all(dir.path());
        assert_eq!(loaded.damaged, 3, "{:?}", loaded.warnings);
        assert!(
            loaded.warnings[2].contains("journal-15.jsonl:1: a record without a checksum"),
            "{:?}",
            loaded.warnings
        );
        std::fs::remove_file(&path).unwrap();
        // A torn last line is not damage: an interrupted writer leaves one.
        let path = write_units(dir.path(), "2", &[unit("a", 1)]);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        assert_eq!(read_all(dir.path()).damaged, 2);
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
    fn float_metrics_read_back_bit_for_bit() {
        use rand::{Rng, SeedableRng};
        // Values whose shortest decimal form needs all 17 digits: without serde_json's
        // `float_roundtrip`, some of them parsed back 1 ULP off.
        let mut values = vec![0.1 + 0.2, 1.0 / 3.0, 2.0 / 3.0, std::f64::consts::PI, 1e-300 / 7.0, f64::MAX, 5e-324];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
        values.extend((0..2000).map(|_| rng.random::<f64>() * 10f64.powi(rng.random_range(-20..20))));
        let units: Vec<UnitResult> = values
            .iter()
            .enumerate()
            .map(|(r, value)| {
                let mut u = unit("a", r as u64);
                u.metrics.insert("x".into(), *value);
                u.duration_ms = *value;
                u
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        write_units(dir.path(), "1", &units);
        let loaded = read_all(dir.path());
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(loaded.units.len(), values.len());
        for (read, value) in loaded.units.iter().zip(&values) {
            let got = read.metrics.get("x").copied().unwrap();
            assert_eq!(got.to_bits(), value.to_bits(), "{value:e} came back as {got:e}");
            assert_eq!(read.duration_ms.to_bits(), value.to_bits());
        }
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

    /// What a scan keeps of what [`read_all`] read: every record's unit, seed, success, metrics
    /// digest and place, in order.
    fn keys_of(loaded: &Loaded, conditions: &[String]) -> Vec<ScannedUnit> {
        loaded
            .units
            .iter()
            .zip(&loaded.at)
            .map(|(u, at)| ScannedUnit {
                condition: conditions.iter().position(|c| *c == u.condition).ok_or_else(|| u.condition.clone()),
                replicate: u.replicate,
                seed: u.seed,
                ok: u.is_ok(),
                digest: metrics_digest(u.metrics.iter().map(|(name, value)| (name.as_str(), *value))),
                at: *at,
            })
            .collect()
    }

    #[test]
    fn a_scan_accepts_and_rejects_exactly_the_lines_read_all_does_with_the_same_warnings() {
        let lines = [
            r#"{"schema":1,"type":"unit","experiment":"e","condition":"a","replicate":0,"seed":7,"status":"ok","metrics":{"win":1.0},"duration_ms":0.5}"#,
            r#"{"schema":1,"type":"unit","experiment":"e","condition":"a","replicate":1,"seed":7,"status":"error","error":{"message":"boom","location":"x.rs:1:2"},"metrics":{},"duration_ms":0.5}"#,
            r#"{"schema":1,"type":"unit","experiment":"e","condition":"b\u0020c","replicate":2,"seed":7,"status":"ok","metrics":{"w":1},"records":[{"name":"w","value":1.0,"tags":[["t","u"]]}],"duration_ms":1}"#,
            r#"{"type":"unit","schema":1,"condition":"a","experiment":"e","replicate":3,"seed":7,"status":"ok","metrics":{},"duration_ms":0.5,"extra":[1,{"x":null}]}"#,
            r#"{"schema":1,"type":"unit","experiment":"e","condition":"zzz","replicate":4,"seed":7,"status":"ok","metrics":{},"duration_ms":0.5}"#,
            "",
            "   ",
            // Each of these is rejected, for a different field.
            r#"{"schema":1,"type":"unit","experiment":"e","condition":"a","replicate":5,"seed":7,"status":"ok","metrics":{"win":null},"duration_ms":0.5}"#,
            r#"{"schema":1,"type":"unit","experiment":"e","condition":"a","replicate":6,"seed":7,"status":"ok","metrics":[],"duration_ms":0.5}"#,
            r#"{"schema":1,"type":"unit","experiment":"e","condition":"a","replicate":7,"seed":-1,"status":"ok","metrics":{},"duration_ms":0.5}"#,
            r#"{"schema":1,"type":"unit","experiment":"e","condition":"a","replicate":8,"seed":7,"status":"fine","metrics":{},"duration_ms":0.5}"#,
            r#"{"schema":1,"type":"unit","experiment":5,"condition":"a","replicate":9,"seed":7,"status":"ok","metrics":{},"duration_ms":0.5}"#,
            r#"{"schema":1,"type":"unit","experiment":"e","condition":"a","replicate":10,"seed":7,"status":"ok","error":{"location":"x"},"metrics":{},"duration_ms":0.5}"#,
            r#"{"schema":1,"type":"unit","experiment":"e","condition":"a","replicate":11,"seed":7,"status":"ok","error":"boom","metrics":{},"duration_ms":0.5}"#,
            r#"{"schema":1,"type":"unit","experiment":"e","condition":"a","replicate":12,"seed":7,"status":"ok","metrics":{},"records":[{"name":"w"}],"duration_ms":0.5}"#,
            r#"{"schema":1,"type":"unit","experiment":"e","condition":"a","replicate":13,"seed":7,"status":"ok","metrics":{},"records":[{"name":"w","value":1,"tags":[["t"]]}],"duration_ms":0.5}"#,
            r#"{"schema":1,"type":"unit","experiment":"e","condition":"a","replicate":14,"seed":7,"status":"ok","metrics":{},"records":[{"name":"w","value":1,"tags":[["t","u","v"]]}],"duration_ms":0.5}"#,
            r#"{"schema":1,"type":"unit","experiment":"e","condition":"a","replicate":15,"seed":7,"status":"ok","metrics":{},"duration_ms":"slow"}"#,
            r#"{"schema":1,"type":"unit","experiment":"e","condition":"a","replicate":16,"seed":7,"status":"ok","metrics":{}}"#,
            r#"{"schema":1,"type":"unit","experiment":"e","condition":"a","condition":"a","replicate":17,"seed":7,"status":"ok","metrics":{},"duration_ms":0.5}"#,
            r#"{"schema":1,"type":"unit","experiment":"e","condition":"a","replicate":18,"seed":7,"status":"ok","metrics":{},"duration_ms":0.5} trailing"#,
            r#"{"schema":1,"type":"unit","experiment":"e","condition":"a","replicate":19,"seed":7,"status":"ok","metrics":{"w":1e999},"duration_ms":0.5}"#,
            r#"{"schema":1,"type":"unit","experiment":"e","condition":"a","replicate":20,"seed":7,"status":"ok","metrics":{},"records":{},"duration_ms":0.5}"#,
            r#"{"type":"unit","schema":1,"condition":"a","experiment":"e","replicate":21,"seed":7,"status":"ok","metrics":{"w":null},"duration_ms":0.5}"#,
            r#"{"schema":2,"type":"unit","experiment":"e","condition":"a","replicate":22,"seed":7,"status":"ok","metrics":{},"duration_ms":0.5}"#,
            r#"{"schema":1,"type":"note"}"#,
            "{\"schema\":1,\"type\":\"unit\",\"garbage",
            "\u{1}not json",
        ];
        let dir = tempfile::tempdir().unwrap();
        let mut text = lines.join("\n") + "\n";
        text.push_str(r#"{"schema":1,"type":"unit","experiment":"e","#);
        std::fs::write(dir.path().join("journal-1.jsonl"), text).unwrap();
        let conditions: Vec<String> = ["a".into(), "b c".into()].into();
        let loaded = read_all(dir.path());
        let scanned = scan_all(dir.path(), &conditions);
        assert_eq!(loaded.units.len(), 5, "{:?}", loaded.warnings);
        assert_eq!(scanned.warnings, loaded.warnings);
        assert_eq!(scanned.warnings.len(), lines.len() - 7 + 1, "{:#?}", scanned.warnings);
        assert_eq!(scanned.units, keys_of(&loaded, &conditions));
        assert_eq!(scanned.files, loaded.files);
        let keys: Vec<(Result<usize, String>, u64, bool, u64)> =
            scanned.units.iter().map(|u| (u.condition.clone(), u.replicate, u.ok, u.at.line)).collect();
        let zzz = Err("zzz".to_owned());
        assert_eq!(
            keys,
            [(Ok(0), 0, true, 1), (Ok(0), 1, false, 2), (Ok(1), 2, true, 3), (Ok(0), 3, true, 4), (zzz, 4, true, 5)]
        );
        // The digest does not depend on the order of the metrics' keys, only on names and values.
        let digest = |pairs: &[(&'static str, f64)]| metrics_digest(pairs.iter().copied());
        assert_eq!(digest(&[("a", 1.0), ("b", 2.0)]), digest(&[("b", 2.0), ("a", 1.0)]));
        assert_ne!(digest(&[("a", 1.0), ("b", 2.0)]), digest(&[("a", 2.0), ("b", 1.0)]));
        assert_ne!(digest(&[("a", 0.1 + 0.2)]), digest(&[("a", 0.3)]));
    }

    #[test]
    fn journals_longer_than_a_block_read_whole_with_line_numbers_across_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let long = UnitResult { experiment: "x".repeat(BLOCK + 100), ..unit("a", 1) };
        let mut units = vec![unit("a", 0), long];
        units.extend((2..3 * BLOCK as u64 / 100).map(|r| unit(["a", "b"][r as usize % 2], r)));
        let path = write_units(dir.path(), "1", &units);
        let mut bytes = std::fs::read(&path).unwrap();
        let lines = units.len();
        // Damage a line in the third block, and tear the last one.
        let damaged = memchr::memchr_iter(b'\n', &bytes).position(|end| end > 2 * BLOCK + 10).unwrap() + 1;
        let start = memchr::memchr_iter(b'\n', &bytes).nth(damaged - 1).unwrap() + 1;
        bytes[start + 5] = b'!';
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&path, bytes).unwrap();
        let loaded = read_all(dir.path());
        assert_eq!(loaded.units.len(), lines - 2);
        assert_eq!(loaded.units[1].experiment.len(), BLOCK + 100);
        assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
        assert!(loaded.warnings[0].contains(&format!("journal-1.jsonl:{}:", damaged + 1)), "{}", loaded.warnings[0]);
        assert!(loaded.warnings[1].contains(&format!("journal-1.jsonl:{lines}:")), "{}", loaded.warnings[1]);
        let conditions: Vec<String> = ["a".into(), "b".into()].into();
        let scanned = scan_all(dir.path(), &conditions);
        assert_eq!(scanned.warnings, loaded.warnings);
        assert_eq!(scanned.units, keys_of(&loaded, &conditions));
    }

    mod properties {
        //! Property tests of the journal's reader: what the writer writes reads back as it was
        //! written, a damaged line never reads as a unit, and the scan's reader accepts and
        //! rejects exactly what the full reader does, for thousands of generated lines.
        use super::*;
        use proptest::prelude::*;

        fn cases(n: u32) -> ProptestConfig {
            let n = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(n);
            ProptestConfig { cases: n, failure_persistence: None, ..ProptestConfig::default() }
        }

        fn finite() -> impl Strategy<Value = f64> {
            // JSON has no NaN or infinity: a unit's values are finite (see the report).
            any::<f64>().prop_filter("finite", |v| v.is_finite())
        }

        fn error() -> impl Strategy<Value = crate::runner::UnitError> {
            (".{0,12}", prop::option::of(".{0,8}"), 0..3u8).prop_map(|(message, location, kind)| {
                crate::runner::UnitError {
                    message,
                    location,
                    kind: [
                        crate::results::FailureKind::Error,
                        crate::results::FailureKind::Panic,
                        crate::results::FailureKind::Timeout,
                    ][kind as usize],
                }
            })
        }

        pub(super) fn unit_result() -> impl Strategy<Value = UnitResult> {
            (
                (".{0,8}", ".{0,8}", any::<u64>(), any::<u64>(), any::<bool>(), prop::option::of(error())),
                prop::collection::btree_map(".{0,6}", finite(), 0..4),
                prop::collection::vec(
                    (".{0,4}", finite(), prop::collection::vec((".{0,3}", ".{0,3}"), 0..2))
                        .prop_map(|(name, value, tags)| crate::events::MetricRecord { name, value, tags }),
                    0..3,
                ),
                finite(),
                prop::collection::vec(
                    (1..5u32, error(), finite()).prop_map(|(attempt, error, duration_ms)| crate::results::Attempt {
                        attempt,
                        error,
                        duration_ms,
                    }),
                    0..2,
                ),
            )
                .prop_map(
                    |((experiment, condition, replicate, seed, ok, error), metrics, records, duration_ms, attempts)| {
                        UnitResult {
                            experiment,
                            condition,
                            replicate,
                            seed,
                            status: if ok { UnitStatus::Ok } else { UnitStatus::Error },
                            error,
                            metrics: metrics.into(),
                            records,
                            duration_ms,
                            attempts,
                            cache: Default::default(),
                        }
                    },
                )
        }

        fn sealed_line(unit: &UnitResult) -> Vec<u8> {
            let mut line = Vec::new();
            encode(&mut line, unit).unwrap();
            integrity::seal(&mut line, 0);
            line
        }

        /// Whether the scan's reader and the full reader agree on `line`: both accept it (as the
        /// same unit) or both reject it the same way.
        fn readers_agree(line: &[u8]) -> Result<(), TestCaseError> {
            let full = parse_line::<UnitResult>(line);
            let shape = parse_line::<UnitShape>(line);
            match (&full, &shape) {
                (Parsed::Unit(u, a), Parsed::Unit(s, b)) => {
                    prop_assert_eq!(a, b);
                    prop_assert_eq!((&*u.condition, u.replicate, u.seed), (&*s.condition, s.replicate, s.seed));
                    prop_assert_eq!(u.is_ok(), s.status == UnitStatus::Ok);
                }
                (Parsed::Blank, Parsed::Blank) => {}
                (Parsed::Other(a), Parsed::Other(b)) => prop_assert_eq!(a, b),
                (Parsed::Foreign { schema: a, kind: k }, Parsed::Foreign { schema: b, kind: l }) => {
                    prop_assert_eq!((a, k), (b, l))
                }
                (Parsed::Invalid(a), Parsed::Invalid(b)) => {
                    prop_assert!(!a.to_string().is_empty());
                    prop_assert_eq!(a.to_string(), b.to_string())
                }
                (Parsed::CorruptOther(a), Parsed::CorruptOther(b)) => prop_assert_eq!(a, b),
                (Parsed::Corrupt(a), Parsed::Corrupt(b)) => {
                    prop_assert!(!a.is_empty());
                    prop_assert_eq!(a, b)
                }
                _ => prop_assert!(false, "the readers disagree on {:?}", String::from_utf8_lossy(line)),
            }
            Ok(())
        }

        /// Pieces of journal lines, glued at random: keys, values of every type, and junk.
        fn piece() -> impl Strategy<Value = String> {
            prop_oneof![
                prop::sample::select(vec![
                    "{",
                    "}",
                    "[",
                    "]",
                    ",",
                    ":",
                    "\"schema\":2,",
                    "\"schema\":1,",
                    "\"type\":\"unit\",",
                    "\"condition\":",
                    "\"replicate\":",
                    "\"seed\":",
                    "\"status\":\"ok\"",
                    "\"metrics\":",
                    "\"records\":",
                    "\"error\":",
                    "\"duration_ms\":",
                    "\"experiment\":",
                    "\"crc32\":\"",
                    "null",
                    "true",
                    "-1",
                    "1e999",
                    "18446744073709551616",
                    "0.5",
                    "\"x\"",
                    "{\"w\":1}",
                ])
                .prop_map(str::to_owned),
                any::<u64>().prop_map(|v| v.to_string()),
                "\"[^\"\\\\]{0,4}\"",
                "[0-9a-f]{8}",
            ]
        }

        proptest! {
            #![proptest_config(cases(2000))]

            #[test]
            fn what_the_writer_writes_reads_back_exactly(unit in unit_result()) {
                let line = sealed_line(&unit);
                prop_assert!(!line.contains(&b'\n'));
                match parse_line::<UnitResult>(&line) {
                    Parsed::Unit(read, sealed) => {
                        prop_assert!(sealed);
                        prop_assert_eq!(read.metrics.len(), unit.metrics.len());
                        for ((a, x), (b, y)) in read.metrics.iter().zip(unit.metrics.iter()) {
                            prop_assert_eq!((a, x.to_bits()), (b, y.to_bits()));
                        }
                        prop_assert_eq!(read, unit);
                    }
                    _ => prop_assert!(false, "not read back: {}", String::from_utf8_lossy(&line)),
                }
                readers_agree(&line)?;
            }

            #[test]
            fn a_sealed_line_with_any_byte_changed_or_cut_never_reads_as_a_unit(
                unit in unit_result(),
                at in any::<prop::sample::Index>(),
                byte in any::<u8>(),
                cut in any::<prop::sample::Index>(),
            ) {
                let line = sealed_line(&unit);
                let mut changed = line.clone();
                let at = at.index(line.len());
                prop_assume!(changed[at] != byte);
                changed[at] = byte;
                prop_assert!(!matches!(parse_line::<UnitResult>(&changed), Parsed::Unit(..)),
                    "{}", String::from_utf8_lossy(&changed));
                readers_agree(&changed)?;
                let cut = &line[..cut.index(line.len())];
                prop_assert!(!matches!(parse_line::<UnitResult>(cut), Parsed::Unit(..)));
                readers_agree(cut)?;
            }

            #[test]
            fn any_bytes_are_read_the_same_by_both_readers(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
                readers_agree(&bytes)?;
            }

            #[test]
            fn glued_pieces_are_read_the_same_by_both_readers(pieces in prop::collection::vec(piece(), 0..16)) {
                let line = pieces.concat();
                readers_agree(line.as_bytes())?;
                readers_agree(&seal_record(line.as_bytes()))?;
            }

            #[test]
            fn records_with_fields_changed_to_any_value_are_read_the_same_by_both_readers(
                unit in unit_result(),
                field in prop::sample::select(vec!["condition", "replicate", "seed", "status", "metrics", "error",
                    "records", "duration_ms", "experiment", "schema", "type"]),
                value in prop_oneof![
                    Just(serde_json::Value::Null),
                    any::<i64>().prop_map(serde_json::Value::from),
                    any::<f64>().prop_map(serde_json::Value::from),
                    ".{0,6}".prop_map(serde_json::Value::from),
                    Just(serde_json::json!([1, "a"])),
                    Just(serde_json::json!({"w": "x"})),
                    Just(serde_json::json!(18446744073709551615u64)),
                ],
                reseal in any::<bool>(),
            ) {
                let mut record: serde_json::Value = serde_json::from_slice(&sealed_line(&unit)).unwrap();
                record[field] = value;
                let text = record.to_string();
                let line = if reseal {
                    record.as_object_mut().unwrap().remove("crc32");
                    seal_record(record.to_string().as_bytes())
                } else {
                    text.into_bytes()
                };
                readers_agree(&line)?;
            }
        }
    }
}
