//! The events log of a run: `events-<writer>.jsonl` beside the journal of the same writer, one
//! JSON line per unit start, event (`Ctx::emit`) and unit end, appended by the output thread as
//! they happen. `watch` follows it; a finished run's log replays what happened, in order.
//!
//! The log is not a record of results (the journal is): it is written through a buffer that is
//! flushed whenever the output thread has caught up with the workers, so a live reader sees
//! events within moments while a burst of events costs one write, not one per event. A crash may
//! lose the last moments of the log, and a torn last line is ignored by readers.
//!
//! This module also has [`Tail`], which reads what was appended to a run's JSON Lines files since
//! it last looked: the way `watch` follows a run without re-reading it.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::journal::JournalWriter;
use super::manifest::SCHEMA;
use crate::events::{Event, Interest, Observer, UnitKey};
use crate::runner::{UnitResult, UnitStatus};

/// File names of events logs start with this.
pub const PREFIX: &str = "events-";

/// One line of an events log, as read back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Logged {
    /// A unit started.
    UnitStarted {
        /// Its condition.
        condition: String,
        /// Its replicate index.
        replicate: u64,
        /// Its seed.
        seed: u64,
        /// When, in milliseconds since the Unix epoch.
        unix_ms: u64,
    },
    /// An event emitted inside a unit.
    Event {
        /// The unit's condition.
        condition: String,
        /// The unit's replicate index.
        replicate: u64,
        /// The event's name.
        name: String,
        /// Its payload.
        payload: serde_json::Value,
        /// Time since the unit started.
        elapsed_ms: f64,
        /// When, in milliseconds since the Unix epoch.
        unix_ms: u64,
    },
    /// A unit finished; its result is in the journal.
    UnitFinished {
        /// Its condition.
        condition: String,
        /// Its replicate index.
        replicate: u64,
        /// Whether it succeeded.
        status: UnitStatus,
        /// Wall time of the unit.
        duration_ms: f64,
        /// The error message, when it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// When, in milliseconds since the Unix epoch.
        unix_ms: u64,
    },
}

impl Logged {
    /// The unit this line is about: (condition, replicate).
    pub fn unit(&self) -> (&str, u64) {
        match self {
            Logged::UnitStarted { condition, replicate, .. }
            | Logged::Event { condition, replicate, .. }
            | Logged::UnitFinished { condition, replicate, .. } => (condition, *replicate),
        }
    }

    /// When it was written, in milliseconds since the Unix epoch.
    pub fn unix_ms(&self) -> u64 {
        match self {
            Logged::UnitStarted { unix_ms, .. }
            | Logged::Event { unix_ms, .. }
            | Logged::UnitFinished { unix_ms, .. } => *unix_ms,
        }
    }
}

/// How a line is written: borrowed, so logging an event copies nothing.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line<'a> {
    UnitStarted {
        condition: &'a str,
        replicate: u64,
        seed: u64,
        unix_ms: u64,
    },
    Event {
        condition: &'a str,
        replicate: u64,
        name: &'a str,
        payload: &'a serde_json::Value,
        elapsed_ms: f64,
        unix_ms: u64,
    },
    UnitFinished {
        condition: &'a str,
        replicate: u64,
        status: UnitStatus,
        duration_ms: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<&'a str>,
        unix_ms: u64,
    },
}

/// A line as written: the schema first, then the line.
#[derive(Serialize)]
struct Written<'a> {
    schema: u32,
    #[serde(flatten)]
    line: Line<'a>,
}

/// A line as read, with its schema.
#[derive(Deserialize)]
struct Record {
    schema: u32,
    #[serde(flatten)]
    line: Logged,
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The events log of `writer` in the run directory `dir`.
pub fn path(dir: &Path, writer: &str) -> PathBuf {
    dir.join(format!("{PREFIX}{writer}.jsonl"))
}

/// Appends a run's events to `events-<writer>.jsonl`: an [`Observer`] on the output thread, the
/// only writer of its file. A write error stops the log with one warning; the run goes on.
pub struct EventLog {
    path: PathBuf,
    out: BufWriter<File>,
    error: Option<io::Error>,
}

impl EventLog {
    /// Creates (or appends to) the events log at `path`.
    pub fn create(path: PathBuf) -> io::Result<EventLog> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(EventLog { path, out: BufWriter::with_capacity(64 * 1024, file), error: None })
    }

    /// The events log of the same writer as `journal`, beside it.
    pub fn beside(journal: &JournalWriter) -> io::Result<EventLog> {
        let journal = journal.path();
        let name = journal.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let writer = name.strip_prefix("journal-").and_then(|n| n.strip_suffix(".jsonl")).unwrap_or(name);
        let dir = journal.parent().unwrap_or_else(|| Path::new("."));
        EventLog::create(path(dir, writer))
    }

    /// Where it writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes; the first write error, if any, with the log's path.
    pub fn finish(mut self) -> Result<(), String> {
        self.flush_now();
        match self.error.take() {
            Some(error) => Err(format!("could not write the events log {}: {error}", self.path.display())),
            None => Ok(()),
        }
    }

    fn write(&mut self, line: Line<'_>) {
        if self.error.is_some() {
            return;
        }
        let written = serde_json::to_writer(&mut self.out, &Written { schema: SCHEMA, line })
            .map_err(io::Error::other)
            .and_then(|()| self.out.write_all(b"\n"));
        if let Err(error) = written {
            self.fail(error);
        }
    }

    fn flush_now(&mut self) {
        if self.error.is_none() {
            if let Err(error) = self.out.flush() {
                self.fail(error);
            }
        }
    }

    fn fail(&mut self, error: io::Error) {
        crate::console::line(format!(
            "warning: cannot write the events log {}: {error}; the run goes on and its results are stored, \
             but its events are not",
            self.path.display()
        ));
        self.error = Some(error);
    }
}

impl Observer for EventLog {
    fn unit_started(&mut self, unit: &UnitKey) {
        self.write(Line::UnitStarted {
            condition: &unit.condition,
            replicate: unit.replicate,
            seed: unit.seed,
            unix_ms: unix_ms(),
        });
    }

    fn event(&mut self, unit: &UnitKey, event: &Event) {
        self.write(Line::Event {
            condition: &unit.condition,
            replicate: unit.replicate,
            name: &event.name,
            payload: &event.payload,
            elapsed_ms: event.elapsed.as_secs_f64() * 1e3,
            unix_ms: unix_ms(),
        });
    }

    fn unit_finished(&mut self, result: &UnitResult) {
        self.write(Line::UnitFinished {
            condition: &result.condition,
            replicate: result.replicate,
            status: result.status,
            duration_ms: result.duration_ms,
            error: result.error.as_ref().map(|e| e.message.as_str()),
            unix_ms: unix_ms(),
        });
    }

    fn flush(&mut self) {
        self.flush_now();
    }

    fn run_finished(&mut self, _results: &[UnitResult]) {
        self.flush_now();
    }

    fn interest(&self) -> Interest {
        Interest { unit_started: true, events: true, ..Interest::RESULTS }
    }
}

/// Parses one line of an events log; `Ok(None)` for a line of another schema.
pub fn parse_line(line: &[u8]) -> Result<Option<Logged>, String> {
    match serde_json::from_slice::<Record>(line) {
        Ok(record) if record.schema == SCHEMA => Ok(Some(record.line)),
        Ok(_) => Ok(None),
        Err(error) => Err(error.to_string()),
    }
}

/// What reading a run's events logs found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every line, log by log (oldest writer first), in the order it was written.
    pub lines: Vec<Logged>,
    /// Lines that could not be read, with file and line number.
    pub warnings: Vec<String>,
}

/// Reads every events log of the run directory `dir`. Never fails: damage becomes warnings.
pub fn read_all(dir: &Path) -> Loaded {
    let mut tail = Tail::new(dir, PREFIX);
    let mut loaded = Loaded::default();
    for line in tail.poll() {
        match parse_line(&line.bytes) {
            Ok(Some(logged)) => loaded.lines.push(logged),
            Ok(None) => loaded.warnings.push(format!("{}: a line of another schema; ignored", line.position())),
            Err(error) => loaded.warnings.push(format!("{}: not a valid events line ({error})", line.position())),
        }
    }
    loaded.warnings.extend(tail.torn());
    loaded
}

/// A complete line that [`Tail::poll`] found.
#[derive(Clone, Debug)]
pub struct TailLine {
    /// The file it is in.
    pub path: PathBuf,
    /// Its 1-based line number in that file.
    pub number: usize,
    /// The line, without its newline.
    pub bytes: Vec<u8>,
}

impl TailLine {
    /// `path:line`, for messages.
    pub fn position(&self) -> String {
        format!("{}:{}", self.path.display(), self.number)
    }
}

#[derive(Default)]
struct Followed {
    offset: u64,
    partial: Vec<u8>,
    lines: usize,
}

/// Follows the append-only JSON Lines files of a directory whose names start with a prefix
/// (`journal-`, `events-`): each [`poll`](Tail::poll) reads only the bytes appended since the
/// last one, and returns the complete lines among them. A partial last line waits for its end.
pub struct Tail {
    dir: PathBuf,
    prefix: String,
    files: BTreeMap<PathBuf, Followed>,
    /// Whether the last poll read every file to its end (see [`Tail::caught_up`]).
    caught_up: bool,
}

/// The most bytes one poll reads of one file: following a run of a million units from its
/// start must not hold its whole journal and events log at once.
const POLL_LIMIT: u64 = 4 << 20;

impl Tail {
    /// Follows `dir/<prefix>*.jsonl`, from the start of each file.
    pub fn new(dir: &Path, prefix: &str) -> Tail {
        Tail { dir: dir.to_path_buf(), prefix: prefix.to_owned(), files: BTreeMap::new(), caught_up: true }
    }

    /// The complete lines appended since the last call, file by file in name order (files of
    /// writers that started earlier first). Files that appeared since are read from the start.
    /// At most 4 MiB of each file are read per call: [`Tail::caught_up`] says whether more is
    /// waiting.
    pub fn poll(&mut self) -> Vec<TailLine> {
        self.caught_up = true;
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                // Only regular files: opening a FIFO would wait for a writer forever.
                let regular = || std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file());
                if name.starts_with(&self.prefix) && name.ends_with(".jsonl") && regular() {
                    self.files.entry(entry.path()).or_default();
                }
            }
        }
        let mut found = Vec::new();
        for (path, followed) in &mut self.files {
            let Ok(mut file) = File::open(path) else { continue };
            let Ok(length) = file.metadata().map(|m| m.len()) else { continue };
            if length <= followed.offset {
                continue;
            }
            let want = (length - followed.offset).min(POLL_LIMIT);
            self.caught_up &= want == length - followed.offset;
            let mut appended = Vec::with_capacity(want as usize);
            if file.seek(SeekFrom::Start(followed.offset)).is_err()
                || Read::take(&mut file, want).read_to_end(&mut appended).is_err()
            {
                continue;
            }
            followed.offset += appended.len() as u64;
            followed.partial.extend_from_slice(&appended);
            let complete = match followed.partial.iter().rposition(|b| *b == b'\n') {
                Some(end) => {
                    let rest = followed.partial.split_off(end + 1);
                    std::mem::replace(&mut followed.partial, rest)
                }
                None => continue,
            };
            for line in complete.split(|b| *b == b'\n') {
                followed.lines += 1;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                found.push(TailLine { path: path.clone(), number: followed.lines, bytes: line.to_vec() });
            }
            // `split` yields an empty piece after the final newline: it is not a line.
            followed.lines -= 1;
        }
        found
    }

    /// Whether the last [`Tail::poll`] read every file to the end it had then (false: a poll
    /// right away reads more).
    pub fn caught_up(&self) -> bool {
        self.caught_up
    }

    /// A warning for each file whose last line has no newline yet (a writer mid-write, or one
    /// that was killed mid-write).
    pub fn torn(&self) -> Vec<String> {
        self.files
            .iter()
            .filter(|(_, f)| !f.partial.is_empty())
            .map(|(path, f)| {
                format!("{}:{}: ignoring a torn last line ({} bytes)", path.display(), f.lines + 1, f.partial.len())
            })
            .collect()
    }

    /// Bytes read so far, over all files.
    pub fn bytes_read(&self) -> u64 {
        self.files.values().map(|f| f.offset).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn key(condition: &str, replicate: u64) -> UnitKey {
        UnitKey { experiment: "e", condition: Arc::from(condition), replicate, seed: 9 }
    }

    #[test]
    fn a_log_round_trips_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::create(path(dir.path(), "w1")).unwrap();
        let unit = key("baseline", 2);
        log.unit_started(&unit);
        let event = Event { name: "round".into(), payload: serde_json::json!({"round": 1}), elapsed: Duration::ZERO };
        log.event(&unit, &event);
        log.finish().unwrap();
        let loaded = read_all(dir.path());
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(loaded.lines.len(), 2);
        assert!(
            matches!(&loaded.lines[0], Logged::UnitStarted { condition, replicate: 2, seed: 9, .. } if condition == "baseline")
        );
        match &loaded.lines[1] {
            Logged::Event { name, payload, .. } => {
                assert_eq!(name, "round");
                assert_eq!(payload["round"], 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_tail_reads_only_what_was_appended_and_waits_for_line_ends() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("journal-a.jsonl");
        std::fs::write(&file, "one\ntw").unwrap();
        std::fs::write(dir.path().join("other.jsonl"), "ignored\n").unwrap();
        let mut tail = Tail::new(dir.path(), "journal-");
        let first: Vec<Vec<u8>> = tail.poll().into_iter().map(|l| l.bytes).collect();
        assert_eq!(first, [b"one".to_vec()]);
        assert_eq!(tail.torn().len(), 1);
        let mut handle = OpenOptions::new().append(true).open(&file).unwrap();
        handle.write_all(b"o\nthree\n").unwrap();
        std::fs::write(dir.path().join("journal-b.jsonl"), "four\n").unwrap();
        let next: Vec<(usize, Vec<u8>)> = tail.poll().into_iter().map(|l| (l.number, l.bytes)).collect();
        assert_eq!(next, [(2, b"two".to_vec()), (3, b"three".to_vec()), (1, b"four".to_vec())]);
        assert!(tail.poll().is_empty());
        assert!(tail.torn().is_empty());
        assert_eq!(tail.bytes_read(), 19);
    }

    #[test]
    fn a_tail_reads_a_big_file_a_bounded_part_at_a_time_with_every_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let lines = 3 * POLL_LIMIT as usize / 100;
        let text: String = (0..lines).map(|i| format!("{i:099}\n")).collect();
        std::fs::write(dir.path().join("journal-a.jsonl"), &text).unwrap();
        let mut tail = Tail::new(dir.path(), "journal-");
        let mut seen = Vec::new();
        let mut polls = 0;
        loop {
            let found = tail.poll();
            polls += 1;
            assert!(found.len() as u64 <= POLL_LIMIT / 100 + 1, "a poll reads at most its limit");
            seen.extend(found.into_iter().map(|l| (l.number, String::from_utf8(l.bytes).unwrap())));
            if tail.caught_up() {
                break;
            }
        }
        assert!(polls >= 3, "{polls} polls");
        assert_eq!(seen.len(), lines);
        for (index, (number, line)) in seen.iter().enumerate() {
            assert_eq!((*number, line.clone()), (index + 1, format!("{index:099}")));
        }
        assert!(tail.torn().is_empty());
    }
}
