//! `cache stats`, `cache clear` and `cache gc`: what is in a store's cache, read from the
//! entries' own headers (so nothing else has to be kept consistent with them), and removing
//! entries. Hit rates come from the journals: each unit record counts its hits and misses.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::entry::{self, Header};
use super::module_in_crate;
use crate::registry::StepInfo;
use crate::store::Store;

/// One file of the cache, read.
pub(crate) struct Found {
    pub path: PathBuf,
    pub size: u64,
    /// The header, or why the entry is damaged.
    pub header: Result<Header, String>,
}

/// Every entry file under the cache directory `dir` (not the temporary files), in path order.
pub(crate) fn scan(dir: &Path) -> Vec<Found> {
    let mut found = Vec::new();
    let Ok(shards) = fs::read_dir(dir) else { return found };
    let mut shards: Vec<PathBuf> = shards
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.len() == 2 && name.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .filter(|path| path.is_dir())
        .collect();
    shards.sort();
    for shard in shards {
        let Ok(files) = fs::read_dir(&shard) else { continue };
        let mut files: Vec<PathBuf> = files.filter_map(Result::ok).map(|entry| entry.path()).collect();
        files.sort();
        for path in files {
            let (header, size) = match entry::read_header(&path) {
                Ok((header, size)) => {
                    let named = path.file_name().is_some_and(|name| name.to_string_lossy() == header.key);
                    if named {
                        (Ok(header), size)
                    } else {
                        (Err(format!("it holds the entry of key {}", header.key)), size)
                    }
                }
                Err(entry::Damage::Corrupt(why)) => (Err(why), fs::metadata(&path).map(|m| m.len()).unwrap_or(0)),
                Err(entry::Damage::Io(error)) => (Err(error.to_string()), 0),
                Err(entry::Damage::Missing) => continue,
            };
            found.push(Found { path, size, header });
        }
    }
    found
}

/// The cache of one step, as `cache stats` prints it.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct StepStats {
    pub step: String,
    pub entries: u64,
    pub bytes: u64,
    /// Hits and misses over every unit record of every run in the store.
    pub hits: u64,
    pub misses: u64,
}

impl StepStats {
    /// Hits over calls, when there were calls.
    pub(crate) fn hit_rate(&self) -> Option<f64> {
        let calls = self.hits + self.misses;
        (calls > 0).then(|| self.hits as f64 / calls as f64)
    }
}

/// What `cache stats` reports.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Stats {
    pub dir: String,
    pub entries: u64,
    pub bytes: u64,
    pub damaged: u64,
    pub steps: Vec<StepStats>,
}

/// Entries and bytes per step from the cache of `store`, hits and misses from its journals.
pub(crate) fn stats(store: &Store) -> Stats {
    let dir = super::dir_of(store.root());
    let mut steps: BTreeMap<String, StepStats> = BTreeMap::new();
    let mut stats = Stats { dir: dir.display().to_string(), ..Stats::default() };
    for found in scan(&dir) {
        match found.header {
            Ok(header) => {
                let step = steps.entry(header.step.clone()).or_default();
                step.entries += 1;
                step.bytes += found.size;
                stats.entries += 1;
                stats.bytes += found.size;
            }
            Err(_) => stats.damaged += 1,
        }
    }
    let (runs, _) = store.runs();
    for run in runs {
        for unit in crate::store::journal::read_all(run.path()).units {
            for (name, count) in unit.cache {
                let step = steps.entry(name).or_default();
                step.hits += u64::from(count.hits);
                step.misses += u64::from(count.misses);
            }
        }
    }
    stats.steps = steps
        .into_iter()
        .map(|(name, mut step)| {
            step.step = name;
            step
        })
        .collect();
    stats
}

/// Removes every entry, or those of the step called `step`; returns the entries and bytes
/// removed. Damaged entries go too when everything is cleared.
pub(crate) fn clear(dir: &Path, step: Option<&str>) -> (u64, u64) {
    let (mut entries, mut bytes) = (0, 0);
    for found in scan(dir) {
        let matches = match (&found.header, step) {
            (_, None) => true,
            (Ok(header), Some(step)) => header.step == step,
            (Err(_), Some(_)) => false,
        };
        if matches && fs::remove_file(&found.path).is_ok() {
            entries += 1;
            bytes += found.size;
        }
    }
    (entries, bytes)
}

/// What `cache gc` removed and kept.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Collected {
    /// Entries of a step of this binary's crates whose code or version is no longer current.
    pub unreachable: u64,
    /// Damaged entries.
    pub damaged: u64,
    /// Temporary files of writers that died before renaming (older than an hour).
    pub leftovers: u64,
    /// Bytes removed in all.
    pub bytes: u64,
    /// Entries kept: current ones.
    pub kept: u64,
    /// Entries kept because they belong to crates this binary does not have (a store shared by
    /// several experiment crates): only their own binary can tell whether they are current.
    pub foreign: u64,
}

/// Removes the entries no step of `steps` (this binary's) can reach: an entry is reachable when
/// a step of the same module (within its crate) and name has its fingerprint and version.
/// Entries of crates none of `steps` is from are kept.
pub(crate) fn gc(dir: &Path, steps: &[&'static StepInfo]) -> Collected {
    let crate_of = |module: &str| module.split("::").next().unwrap_or("").to_owned();
    let crates: Vec<String> = steps.iter().map(|s| crate_of(s.location.module_path)).collect();
    let mut collected = Collected::default();
    for found in scan(dir) {
        let remove = match &found.header {
            Err(_) => {
                collected.damaged += 1;
                true
            }
            Ok(header) => {
                let current = steps.iter().any(|step| {
                    step.name == header.step
                        && module_in_crate(step.location.module_path) == module_in_crate(&header.module)
                        && format!("{:016x}", step.fingerprint) == header.fingerprint
                        && step.cache.is_some_and(|spec| spec.version == header.version && spec.shared == header.shared)
                });
                if current {
                    collected.kept += 1;
                    false
                } else if !crates.contains(&crate_of(&header.module)) {
                    collected.foreign += 1;
                    false
                } else {
                    collected.unreachable += 1;
                    true
                }
            }
        };
        if remove && fs::remove_file(&found.path).is_ok() {
            collected.bytes += found.size;
        }
    }
    // A temporary file is renamed within moments of its creation; one an hour old is a leftover.
    let an_hour_ago = SystemTime::now().checked_sub(Duration::from_secs(3600));
    if let (Ok(files), Some(limit)) = (fs::read_dir(dir.join("tmp")), an_hour_ago) {
        for file in files.filter_map(Result::ok) {
            let old = file.metadata().and_then(|m| m.modified()).is_ok_and(|modified| modified < limit);
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            if old && fs::remove_file(file.path()).is_ok() {
                collected.leftovers += 1;
                collected.bytes += size;
            }
        }
    }
    collected
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::digest::{hex, sha256};
    use crate::cache::CacheSpec;
    use crate::registry::Location;

    static SPEC: CacheSpec = CacheSpec { shared: false, version: 1 };
    static ASK: StepInfo = StepInfo {
        name: "ask",
        location: Location { module_path: "arena::game", file: "game.rs", line: 1 },
        fingerprint: 0xabc,
        limit: None,
        cache: Some(&SPEC),
    };

    fn put(dir: &Path, seed: &[u8], module: &str, fingerprint: u64, version: u32) -> PathBuf {
        let key = sha256(seed);
        let payload = b"1";
        let header = Header {
            key: hex(&key),
            step: "ask".into(),
            module: module.into(),
            fingerprint: format!("{fingerprint:016x}"),
            version,
            shared: false,
            created_ms: 0,
            len: 1,
            sha256: hex(&sha256(payload)),
        };
        entry::write(dir, &key, &entry::encode(&header, payload)).unwrap();
        entry::path_of(dir, &key)
    }

    #[test]
    fn gc_removes_what_no_current_step_reaches_and_keeps_other_crates_entries() {
        let dir = tempfile::tempdir().unwrap();
        let current = put(dir.path(), b"a", "arena::game", 0xabc, 1);
        // The same step in a copy of the crate under another name is reached too.
        let copy = put(dir.path(), b"b", "arena_v2::game", 0xabc, 1);
        let old_code = put(dir.path(), b"c", "arena::game", 0xdef, 1);
        let old_version = put(dir.path(), b"d", "arena::game", 0xabc, 0);
        let other_crate = put(dir.path(), b"e", "lab::game", 0xdef, 0);
        let damaged = put(dir.path(), b"f", "arena::game", 0xabc, 1);
        fs::write(&damaged, b"crystallize-cache 1\n{").unwrap();

        let collected = gc(dir.path(), &[&ASK]);
        assert_eq!((collected.unreachable, collected.damaged, collected.kept, collected.foreign), (2, 1, 2, 1));
        for (path, kept) in [
            (current, true),
            (copy, true),
            (old_code, false),
            (old_version, false),
            (other_crate, true),
            (damaged, false),
        ] {
            assert_eq!(path.exists(), kept, "{}", path.display());
        }

        let stats_dir = dir.path();
        assert_eq!(scan(stats_dir).len(), 3);
        assert_eq!(clear(stats_dir, Some("nope")), (0, 0));
        assert_eq!(clear(stats_dir, Some("ask")).0, 3);
        assert!(scan(stats_dir).is_empty());
    }
}
