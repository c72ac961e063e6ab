//! Integrity by construction: the checksum every journal line ends with, and how the records of
//! one unit are resolved when they disagree.
//!
//! A line of journal schema 2 is `{...the record...,"crc32":"<8 hex digits>"}`: the CRC-32 of
//! every byte before `,"crc32":`. The checksum wraps whatever the record holds, so a field added
//! to the record is covered without a change here. A flipped bit, a truncated line or an edited
//! value is detected and the line rejected (its unit runs again), not read as a result. It
//! detects damage, not a forger who recomputes the checksum.

/// Where a record was read: a journal (an index into `journal::Loaded::files` or
/// `journal::Scanned::files`) and a line number (from 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineAt {
    /// The journal, as an index into the reader's `files`.
    pub file: u32,
    /// The line number in it, from 1.
    pub line: u64,
}

/// What precedes the checksum's hex digits.
const KEY: &[u8] = b",\"crc32\":\"";

/// Bytes of `,"crc32":"xxxxxxxx"}` at the end of a sealed line.
const SUFFIX_LEN: usize = KEY.len() + 8 + 2;

/// Seals the record `out[start..]` (a JSON object, ending with `}`): appends its checksum as its
/// last field.
pub(crate) fn seal(out: &mut Vec<u8>, start: usize) {
    debug_assert_eq!(out.last(), Some(&b'}'), "a record is a JSON object");
    out.pop();
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(KEY);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend((0..8).rev().map(|nibble| HEX[(crc >> (nibble * 4)) as usize & 0xf]));
    out.extend_from_slice(b"\"}");
}

/// What a line's checksum says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// The line does not end with a checksum (a line of schema 1, or damaged where the checksum
    /// was).
    Absent,
    /// The line ends with a checksum, and its content has it.
    Valid,
    /// The line ends with a checksum its content does not have: why, for the warning.
    Mismatch(String),
}

/// Checks the checksum a line ends with, if it ends with one.
pub(crate) fn verify(line: &[u8]) -> Check {
    let n = line.len();
    if n < SUFFIX_LEN + 1 || !line.ends_with(b"\"}") {
        return Check::Absent;
    }
    let key_at = n - SUFFIX_LEN;
    if &line[key_at..key_at + KEY.len()] != KEY {
        return Check::Absent;
    }
    let hex = &line[key_at + KEY.len()..n - 2];
    let stored = std::str::from_utf8(hex).ok().filter(|h| h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    let Some(stored) = stored.and_then(|h| u32::from_str_radix(h, 16).ok()) else {
        return Check::Mismatch(format!(
            "its checksum '{}' is not 8 lowercase hex digits",
            String::from_utf8_lossy(hex)
        ));
    };
    let computed = crc32fast::hash(&line[..key_at]);
    if stored == computed {
        Check::Valid
    } else {
        Check::Mismatch(format!(
            "its content does not match its checksum (crc32 {computed:08x}, the line says {stored:08x})"
        ))
    }
}

/// One record of a unit, as the resolver needs it: whether it succeeded, a digest of its metrics
/// ([`super::journal::metrics_digest`]) and where it was read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fact {
    pub ok: bool,
    pub digest: u64,
    pub at: LineAt,
}

/// What the records of one unit come to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The record (an index into the unit's facts) that is its result: a success, or else its
    /// latest failure.
    Result(usize),
    /// Successful records that disagree, with none written after the disagreement to settle
    /// it: the unit is not done, and runs again on resume.
    InDoubt,
}

/// Resolves the records of one unit, in the order they were read (journals by writer, lines in
/// order), each already checked against the manifest. Returns the verdict and, for each record
/// that disagrees with the standing success, `(its index, the standing one's index)`.
///
/// The first success stands; a later one with the same metrics is a duplicate (two resumes at
/// once). A later one with other metrics puts the unit in doubt: which is right cannot be told,
/// so neither counts. A success read from a later journal than every disagreeing record (a
/// session that ran the unit again, as a resume does for a unit in doubt) settles it.
pub(crate) fn resolve(facts: &[Fact]) -> (Option<Verdict>, Vec<(usize, usize)>) {
    let mut standing: Option<usize> = None;
    let mut doubt_file: Option<u32> = None;
    let mut latest_failure = None;
    let mut conflicts = Vec::new();
    for (index, fact) in facts.iter().enumerate() {
        if !fact.ok {
            latest_failure = Some(index);
            continue;
        }
        match (standing, doubt_file) {
            (None, _) => standing = Some(index),
            (Some(_), Some(file)) if fact.at.file > file => {
                standing = Some(index);
                doubt_file = None;
            }
            (Some(first), _) if facts[first].digest == fact.digest => {}
            (Some(first), _) => {
                conflicts.push((index, first));
                doubt_file = Some(doubt_file.map_or(fact.at.file, |file| file.max(fact.at.file)));
            }
        }
    }
    let verdict = match (standing, doubt_file) {
        (Some(_), Some(_)) => Some(Verdict::InDoubt),
        (Some(index), None) => Some(Verdict::Result(index)),
        (None, _) => latest_failure.map(Verdict::Result),
    };
    (verdict, conflicts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(record: &str) -> Vec<u8> {
        let mut out = b"xx".to_vec();
        out.extend_from_slice(record.as_bytes());
        seal(&mut out, 2);
        out.split_off(2)
    }

    #[test]
    fn a_sealed_line_verifies_and_any_changed_byte_is_detected() {
        let line = sealed(r#"{"schema":2,"type":"unit","replicate":3}"#);
        assert!(line.ends_with(b"}"));
        assert_eq!(verify(&line), Check::Valid);
        assert!(serde_json::from_slice::<serde_json::Value>(&line).is_ok(), "still one JSON object");
        for at in 0..line.len() {
            for bit in 0..8 {
                let mut damaged = line.clone();
                damaged[at] ^= 1 << bit;
                assert_ne!(verify(&damaged), Check::Valid, "bit {bit} of byte {at}");
            }
        }
        assert_eq!(verify(br#"{"schema":1,"type":"unit"}"#), Check::Absent);
        assert_eq!(verify(b""), Check::Absent);
        let mut bad_hex = line.clone();
        let n = bad_hex.len();
        bad_hex[n - 3] = b'g';
        assert!(matches!(verify(&bad_hex), Check::Mismatch(reason) if reason.contains("hex")));
    }

    fn fact(ok: bool, digest: u64, file: u32, line: u64) -> Fact {
        Fact { ok, digest, at: LineAt { file, line } }
    }

    #[test]
    fn disagreeing_successes_put_a_unit_in_doubt_until_a_later_journal_settles_it() {
        // Duplicates agree: the first stands.
        assert_eq!(resolve(&[fact(true, 1, 0, 1), fact(true, 1, 1, 1)]), (Some(Verdict::Result(0)), vec![]));
        // A failure before or after a success: the success stands.
        assert_eq!(
            resolve(&[fact(false, 0, 0, 1), fact(true, 1, 0, 2), fact(false, 0, 1, 1)]).0,
            Some(Verdict::Result(1))
        );
        // Only failures: the latest.
        assert_eq!(resolve(&[fact(false, 0, 0, 1), fact(false, 0, 1, 1)]).0, Some(Verdict::Result(1)));
        // Disagreement in one journal: in doubt.
        let conflict = [fact(true, 1, 0, 1), fact(true, 2, 0, 2)];
        assert_eq!(resolve(&conflict), (Some(Verdict::InDoubt), vec![(1, 0)]));
        // Another record in the same journal does not settle it; one in a later journal does.
        let mut more = conflict.to_vec();
        more.push(fact(true, 1, 0, 3));
        assert_eq!(resolve(&more).0, Some(Verdict::InDoubt));
        more.push(fact(true, 1, 1, 1));
        assert_eq!(resolve(&more), (Some(Verdict::Result(3)), vec![(1, 0)]));
        // Disagreement across journals: a record in the later one does not settle it.
        let across = [fact(true, 1, 0, 1), fact(true, 2, 1, 1), fact(true, 1, 1, 2)];
        assert_eq!(resolve(&across).0, Some(Verdict::InDoubt));
        assert_eq!(resolve(&[]), (None, vec![]));
    }
}
