//! The `stop` records of sequential sessions: where a run with `--until-decided` stopped and
//! why, one line at the end of the journal of each session that ran units under the rule
//! (docs/STORE.md). The record's fields are the caller's (`sequential::Stop`); this module
//! only finds and checks the lines, so that the store does not depend on the statistics.

use std::path::PathBuf;

use serde::de::DeserializeOwned;

use super::integrity::{self, Check, LineAt};

/// The type of a stop record in the journal.
pub const KIND: &str = "stop";

/// The start of every stop line this version writes (unit readers pass over these lines).
pub const PREFIX: &[u8] = super::journal::STOP_PREFIX;

/// The last of a run's stop records, from the sealed lines of other types its journals hold
/// (`journal::Loaded::others`, read with the units: no second pass over the journals), with
/// where it was read; a stop line that does not parse is a warning naming its file and line.
pub fn last<T: DeserializeOwned>(
    others: &[(Vec<u8>, LineAt)],
    files: &[PathBuf],
) -> (Option<(T, String)>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut last = None;
    for (line, at) in others {
        let at = super::journal::describe(files, *at);
        match parse(line) {
            None => {}
            Some(Ok(stop)) => last = Some((stop, at)),
            Some(Err(why)) => warnings.push(format!("{at}: {why}; ignored")),
        }
    }
    (last, warnings)
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
