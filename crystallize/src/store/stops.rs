//! The `stop` records of sequential sessions: where a run with `--until-decided` stopped and
//! why, one line at the end of the journal of each session that ran units under the rule
//! (docs/STORE.md). The record's fields are the caller's (`sequential::Stop`); this module
//! only finds and checks the lines, so that the store does not depend on the statistics.

use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::de::DeserializeOwned;

use super::integrity::{self, Check};

/// The type of a stop record in the journal.
pub const KIND: &str = "stop";

/// The start of every stop line this version writes (unit readers pass over these lines).
pub const PREFIX: &[u8] = super::journal::STOP_PREFIX;

/// The stop records of a run, as [`read`] found them.
#[derive(Debug)]
pub struct Recorded<T> {
    /// Each record, in the order its session began, with where it was read (`file:line`).
    pub stops: Vec<(T, String)>,
    /// Stop lines that fail their checksum or do not parse, and journals that cannot be read.
    pub warnings: Vec<String>,
}

impl<T> Default for Recorded<T> {
    fn default() -> Self {
        Recorded { stops: Vec::new(), warnings: Vec::new() }
    }
}

/// The stop records of the run in `dir`; a stop line that fails its checksum or does not parse
/// is a warning naming its file and line, and is not returned.
pub fn read<T: DeserializeOwned>(dir: &Path) -> Recorded<T> {
    let mut warnings = Vec::new();
    let mut stops = Vec::new();
    for path in super::journal::journals(dir, &mut warnings) {
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(error) => {
                warnings.push(format!("cannot read {}: {error}", path.display()));
                continue;
            }
        };
        // Line by line with one buffer: a journal can be far larger than memory should hold,
        // and stop lines are few, at the end of each session.
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => number += 1,
                Err(error) => {
                    warnings.push(format!("cannot read {} after line {number}: {error}", path.display()));
                    break;
                }
            }
            let at = || format!("{}:{number}", path.display());
            match parse(&line) {
                None => {}
                Some(Ok(stop)) => stops.push((stop, at())),
                Some(Err(why)) => warnings.push(format!("{}: {why}; ignored", at())),
            }
        }
    }
    Recorded { stops, warnings }
}

/// The stop record on journal line `line`: `None` when it is not one, `Err` (why) when it is
/// damaged (its checksum fails or is missing, or it does not parse).
pub fn parse<T: DeserializeOwned>(line: &[u8]) -> Option<Result<T, String>> {
    if !line.starts_with(PREFIX) {
        return None;
    }
    let text = line.trim_ascii_end();
    if !matches!(integrity::verify(text), Check::Valid) {
        return Some(Err("damaged stop record (its checksum fails or is missing)".to_owned()));
    }
    Some(serde_json::from_slice::<T>(text).map_err(|error| format!("not a valid stop record ({error})")))
}
