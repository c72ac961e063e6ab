//! One cache entry on disk: `<store>/cache/<first 2 hex digits>/<key's 64 hex digits>`, a file
//! written whole to `<store>/cache/tmp/` and renamed into place (atomic on one file system, so a
//! reader sees a whole old entry, a whole new one, or none; several processes may write the same
//! key, the last rename wins and every version is a valid answer).
//!
//! The file is self-checking, so that nothing a crash, a full disk or a stray edit leaves can be
//! read as a value:
//!
//! ```text
//! crystallize-cache 1\n
//! {"key":"<hex>","step":"ask",...,"len":123,"sha256":"<hex of the payload>"}\n
//! <payload: the value as JSON, len bytes>
//! ```
//!
//! A reader checks the first line, that the header's key is the key it looked up, that exactly
//! `len` bytes follow and that their SHA-256 is the header's. Anything else is a miss (with a
//! warning), never a value. Entries are not `fsync`ed: a torn entry after a power loss fails
//! these checks and is recomputed.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::digest::{hex, sha256, Hash};

/// The first line of every entry.
pub(crate) const MAGIC: &[u8] = b"crystallize-cache 1\n";

/// The largest entry read: bigger files are not entries this version wrote in a sane run, and
/// are refused before anything is allocated for them.
pub(crate) const MAX_ENTRY_BYTES: u64 = 1 << 30;

/// The largest header line.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// What an entry says about itself; also what `cache stats` and `cache gc` read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Header {
    /// The key, hex: the file's name.
    pub key: String,
    /// The step's name.
    pub step: String,
    /// The step's module path (`llm_arena::game`).
    pub module: String,
    /// The step's code fingerprint, 16 hex digits.
    pub fingerprint: String,
    /// The step's `cache(version = N)`.
    pub version: u32,
    /// Whether the step is `cache(shared)` (no seed or position in its keys).
    #[serde(default)]
    pub shared: bool,
    /// When the entry was written, milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// Bytes of payload after the header line.
    pub len: u64,
    /// SHA-256 of the payload, hex.
    pub sha256: String,
}

/// Why an entry cannot be used.
#[derive(Debug)]
pub(crate) enum Damage {
    /// No such entry.
    Missing,
    /// Reading failed.
    Io(io::Error),
    /// The file is not a whole entry of this key.
    Corrupt(String),
}

/// The file of `key` under the cache directory `dir`.
pub(crate) fn path_of(dir: &Path, key: &Hash) -> PathBuf {
    let text = hex(key);
    dir.join(&text[..2]).join(text)
}

/// Reads and checks the entry of `key`; returns its header and payload.
pub(crate) fn read(dir: &Path, key: &Hash) -> Result<(Header, Vec<u8>), Damage> {
    let path = path_of(dir, key);
    let file = match fs::File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Err(Damage::Missing),
        Err(error) => return Err(Damage::Io(error)),
    };
    let size = file.metadata().map_err(Damage::Io)?.len();
    if size > MAX_ENTRY_BYTES {
        return Err(Damage::Corrupt(format!("{size} bytes, more than the {MAX_ENTRY_BYTES} an entry may have")));
    }
    // Bounded just above: the size decides the allocation, and a file that grew meanwhile is cut
    // at that size and fails the length check.
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(size).read_to_end(&mut bytes).map_err(Damage::Io)?;
    let (header, payload) = parse(&bytes)?;
    if header.key != hex(key) {
        return Err(Damage::Corrupt(format!("it holds the entry of key {}", header.key)));
    }
    let payload = payload.to_vec();
    Ok((header, payload))
}

/// Splits an entry's bytes into its checked header and payload.
pub(crate) fn parse(bytes: &[u8]) -> Result<(Header, &[u8]), Damage> {
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| Damage::Corrupt("it does not start with `crystallize-cache 1`".into()))?;
    let window = &rest[..rest.len().min(MAX_HEADER_BYTES)];
    let end = memchr::memchr(b'\n', window).ok_or_else(|| Damage::Corrupt("its header line is not complete".into()))?;
    let header: Header = serde_json::from_slice(&rest[..end])
        .map_err(|error| Damage::Corrupt(format!("its header is not readable ({error})")))?;
    let payload = &rest[end + 1..];
    if payload.len() as u64 != header.len {
        return Err(Damage::Corrupt(format!(
            "it holds {} bytes of value where its header says {} (truncated?)",
            payload.len(),
            header.len
        )));
    }
    if hex(&sha256(payload)) != header.sha256 {
        return Err(Damage::Corrupt("its value does not match its checksum".into()));
    }
    Ok((header, payload))
}

/// Reads only the header of the entry at `path` (for `cache stats` and `gc`), with the file's
/// size; the payload is checked too, so a damaged entry is reported as such.
pub(crate) fn read_header(path: &Path) -> Result<(Header, u64), Damage> {
    let size = fs::metadata(path).map_err(Damage::Io)?.len();
    if size > MAX_ENTRY_BYTES {
        return Err(Damage::Corrupt(format!("{size} bytes, more than an entry may have")));
    }
    let bytes = fs::read(path).map_err(Damage::Io)?;
    let (header, _) = parse(&bytes)?;
    Ok((header, size))
}

/// The bytes of an entry.
pub(crate) fn encode(header: &Header, payload: &[u8]) -> Vec<u8> {
    let header = serde_json::to_vec(header).unwrap_or_default();
    let mut bytes = Vec::with_capacity(MAGIC.len() + header.len() + 1 + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&header);
    bytes.push(b'\n');
    bytes.extend_from_slice(payload);
    bytes
}

/// Names temporary files uniquely within this process.
static TEMPORARY: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` as the entry of `key`: to a temporary file of this process, then renamed over
/// whatever entry the key had.
pub(crate) fn write(dir: &Path, key: &Hash, bytes: &[u8]) -> io::Result<()> {
    let target = path_of(dir, key);
    let tmp_dir = dir.join("tmp");
    let temporary = tmp_dir.join(format!(
        "{}-{}-{}",
        std::process::id(),
        TEMPORARY.fetch_add(1, Ordering::Relaxed),
        &hex(key)[..16]
    ));
    let create = |path: &Path| {
        let mut file = fs::OpenOptions::new().write(true).create_new(true).open(path)?;
        file.write_all(bytes)
    };
    if let Err(error) = create(&temporary) {
        if error.kind() != io::ErrorKind::NotFound {
            let _ = fs::remove_file(&temporary);
            return Err(error);
        }
        fs::create_dir_all(&tmp_dir)?;
        create(&temporary).inspect_err(|_| {
            let _ = fs::remove_file(&temporary);
        })?;
    }
    let rename = || fs::rename(&temporary, &target);
    let renamed = match rename() {
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)?;
            }
            rename()
        }
        other => other,
    };
    if renamed.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    renamed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(key: &Hash, payload: &[u8]) -> Header {
        Header {
            key: hex(key),
            step: "ask".into(),
            module: "arena::game".into(),
            fingerprint: "0123456789abcdef".into(),
            version: 0,
            shared: false,
            created_ms: 1,
            len: payload.len() as u64,
            sha256: hex(&sha256(payload)),
        }
    }

    #[test]
    fn an_entry_reads_back_and_every_damage_is_a_refusal_not_a_value() {
        let dir = tempfile::tempdir().unwrap();
        let key = sha256(b"key");
        let payload = br#"{"reply":"B","calls":1}"#;
        let bytes = encode(&header(&key, payload), payload);
        write(dir.path(), &key, &bytes).unwrap();
        let (read_header, read_payload) = read(dir.path(), &key).unwrap();
        assert_eq!(read_header, header(&key, payload));
        assert_eq!(read_payload, payload);
        assert!(matches!(read(dir.path(), &sha256(b"other")), Err(Damage::Missing)));

        let path = path_of(dir.path(), &key);
        // Every truncation, and a flipped bit anywhere, is refused.
        for cut in 0..bytes.len() {
            fs::write(&path, &bytes[..cut]).unwrap();
            assert!(matches!(read(dir.path(), &key), Err(Damage::Corrupt(_))), "cut at {cut}");
        }
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x04;
            fs::write(&path, &flipped).unwrap();
            if let Ok((h, p)) = read(dir.path(), &key) {
                // A flip inside the header's JSON whitespace-free text may still parse only if
                // it leaves the same meaning; the payload must be the original then.
                assert_eq!((h.key, p.as_slice()), (hex(&key), payload.as_slice()), "flip at {at}");
            }
        }
        // An entry of another key, renamed into this key's place, is refused.
        let other = sha256(b"other");
        fs::write(&path, encode(&header(&other, payload), payload)).unwrap();
        assert!(matches!(read(dir.path(), &key), Err(Damage::Corrupt(_))));
    }
}

#[cfg(test)]
mod concurrency {
    use super::*;

    #[test]
    fn writers_racing_on_one_key_never_show_a_reader_a_torn_entry() {
        let dir = tempfile::tempdir().unwrap();
        let key = sha256(b"shared key");
        // Payloads of different lengths, so a torn mix of two would fail the length or checksum.
        let payloads: Vec<Vec<u8>> =
            (0..4).map(|n| format!("{{\"v\":\"{}\"}}", "x".repeat(1000 * (n + 1))).into_bytes()).collect();
        let entries: Vec<Vec<u8>> = payloads
            .iter()
            .map(|p| {
                let header = Header {
                    key: hex(&key),
                    step: "s".into(),
                    module: "m".into(),
                    fingerprint: "0".repeat(16),
                    version: 0,
                    shared: false,
                    created_ms: 0,
                    len: p.len() as u64,
                    sha256: hex(&sha256(p)),
                };
                encode(&header, p)
            })
            .collect();
        std::thread::scope(|scope| {
            for entry in &entries {
                let dir = dir.path();
                scope.spawn(move || {
                    for _ in 0..200 {
                        write(dir, &key, entry).unwrap();
                    }
                });
            }
            let dir = dir.path();
            let payloads = &payloads;
            scope.spawn(move || {
                for _ in 0..2000 {
                    match read(dir, &key) {
                        Ok((_, payload)) => assert!(payloads.contains(&payload), "a payload nobody wrote"),
                        Err(Damage::Missing) => {}
                        Err(other) => panic!("a reader saw {other:?}"),
                    }
                }
            });
        });
        // Nothing left behind but the entry.
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }
}
