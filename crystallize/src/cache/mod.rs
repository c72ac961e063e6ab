//! The step cache: `#[step(cache)]` stores a step's output in the store (`<store>/cache/`) and
//! serves it when the same call happens again, so that re-scoring 90 LLM games does not play
//! them again.
//!
//! A call's **key** is SHA-256 over: the step's module path within its crate and name, its code
//! fingerprint, its `cache(version = N)`, the digest of its arguments (each one through serde,
//! exactly: see [`digest`]), and, unless the step is `cache(shared)`, the unit's experiment,
//! condition and seed and the call's position among this step's calls in the unit (the first
//! call is 0). Two replicates (different seeds), two conditions, or two calls of one step in one
//! game never share an answer, so a run's calls do not depend on which unit ran first; a step
//! that is a pure function of its arguments says so with `cache(shared)` and is reused across
//! units and conditions.
//!
//! Values are stored as JSON (serde_json with `float_roundtrip`, so a finite float reads back bit
//! for bit), and only when they read back to exactly the same JSON: a value that would not
//! (a `NaN` or an infinity, which JSON writes as `null`) is not cached, with a warning. JSON
//! rather than a binary format because a binary one that is not self-describing misreads types
//! whose serialized form skips fields (`skip_serializing_if`) instead of refusing them; JSON also
//! keeps entries readable with `head`.
//!
//! Files: [`entry`]. Per unit, [`UnitCache`] counts each step's calls (their positions) and its
//! hits and misses, which the journal records (`cache` of a unit record).

pub(crate) mod admin;
pub(crate) mod digest;
pub(crate) mod entry;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::registry::StepInfo;
use digest::{hex, Hash};

/// Whether a run reads and writes the step cache (`--cache`, [`crate::session::Session::cache`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CacheMode {
    /// Neither reads nor writes: every cached step runs, nothing is stored.
    Off,
    /// Serves stored outputs, stores nothing new.
    Read,
    /// Runs every step and stores its output (over what was stored): fresh data that fills the
    /// cache. What `confirm` uses unless `--allow-cached`.
    Write,
    /// Serves stored outputs and stores new ones (the default).
    #[default]
    On,
}

impl CacheMode {
    /// Parses `off`, `read`, `write` or `on`.
    pub fn parse(text: &str) -> Result<CacheMode, String> {
        match text {
            "off" => Ok(CacheMode::Off),
            "read" => Ok(CacheMode::Read),
            "write" => Ok(CacheMode::Write),
            "on" => Ok(CacheMode::On),
            _ => Err(format!("'{text}' is not a cache mode; modes: off, read, write, on")),
        }
    }

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            CacheMode::Off => "off",
            CacheMode::Read => "read",
            CacheMode::Write => "write",
            CacheMode::On => "on",
        }
    }

    fn reads(self) -> bool {
        matches!(self, CacheMode::Read | CacheMode::On)
    }

    fn writes(self) -> bool {
        matches!(self, CacheMode::Write | CacheMode::On)
    }
}

/// What `#[step(cache(...))]` declares.
#[derive(Debug)]
pub struct CacheSpec {
    /// `cache(shared)`: the key leaves out the unit's seed and the call's position.
    pub shared: bool,
    /// `cache(version = N)`: bumped by hand to drop what was stored (0 when not given).
    pub version: u32,
}

/// Hits and misses of one step in one unit, as the journal records them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheCount {
    /// Calls served from the cache.
    pub hits: u32,
    /// Calls that ran the step (in `write` mode and under `--refresh`, every call).
    pub misses: u32,
}

/// The cache of a run: where it is and what the run may do with it. (`pub` only to be the type
/// of a hidden field of `RunOptions`; not reachable by name.)
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    mode: CacheMode,
    /// Steps whose stored outputs are ignored and overwritten (`--refresh STEP`).
    refresh: Vec<String>,
    /// Emit a `cache` event for every call, with the key's parts (`debug`).
    explain: bool,
    /// Warnings already given, so that a damaged cache does not flood the terminal.
    warned: Mutex<HashSet<String>>,
}

/// The cache directory of the store at `root`.
pub(crate) fn dir_of(root: &Path) -> PathBuf {
    root.join("cache")
}

/// Every `#[step(cache)]` of this binary, by name.
pub(crate) fn cached_steps() -> Vec<&'static StepInfo> {
    let mut steps: Vec<&'static StepInfo> = inventory::iter::<crate::registry::StepEntry>
        .into_iter()
        .map(|entry| entry.0)
        .filter(|s| s.cache.is_some())
        .collect();
    steps.sort_by_key(|step| (step.name, step.location.module_path));
    steps
}

/// Checks that `name` is a cached step of this binary (`--refresh`, `cache clear`).
pub(crate) fn check_step(option: &str, name: &str) -> Result<(), Error> {
    let all: Vec<&'static StepInfo> =
        inventory::iter::<crate::registry::StepEntry>.into_iter().map(|entry| entry.0).collect();
    let cached: Vec<&str> = cached_steps().iter().map(|s| s.name).collect();
    if cached.contains(&name) {
        return Ok(());
    }
    let valid = if cached.is_empty() { "none (mark one with #[step(cache)])".to_owned() } else { cached.join(", ") };
    let why = if all.iter().any(|s| s.name == name) {
        format!("step '{name}' is not cached (it has no #[step(cache)]); cached steps: {valid}")
    } else {
        let hint = crate::error::suggest(name, &cached).map(|s| format!("; did you mean '{s}'?")).unwrap_or_default();
        format!("unknown step '{name}'{hint} cached steps: {valid}")
    };
    Err(Error::BadOption { option: option.into(), value: name.into(), why })
}

impl Cache {
    /// The cache of the store at `root` for a run in `mode`; `None` when off. Every `--refresh`
    /// name is checked, and a cache the mode writes to must be writable: both are errors before
    /// any unit runs.
    pub(crate) fn open(
        root: &Path,
        mode: CacheMode,
        refresh: &[String],
        explain: bool,
    ) -> Result<Option<Arc<Cache>>, Error> {
        for name in refresh {
            check_step("--refresh", name)?;
        }
        // Nothing to cache in this binary: the store is not touched.
        if mode == CacheMode::Off || cached_steps().is_empty() {
            return Ok(None);
        }
        let dir = dir_of(root);
        if mode.writes() {
            check_writable(&dir)?;
        }
        Ok(Some(Arc::new(Cache { dir, mode, refresh: refresh.to_vec(), explain, warned: Mutex::default() })))
    }

    /// Prints `message` once per `topic` for this run.
    fn warn_once(&self, topic: String, message: impl FnOnce() -> String) {
        let fresh = self.warned.lock().map(|mut warned| warned.insert(topic)).unwrap_or(false);
        if fresh {
            crate::console::line(format!("warning: {}", message()));
        }
    }
}

/// Creates the cache directory and a file in it, so a cache that cannot be written is an error
/// now rather than a warning per unit.
fn check_writable(dir: &Path) -> Result<(), Error> {
    let probe = dir.join("tmp").join(format!(".probe-{}", std::process::id()));
    let attempt = std::fs::create_dir_all(dir.join("tmp")).and_then(|()| std::fs::write(&probe, b""));
    let _ = std::fs::remove_file(&probe);
    attempt.map_err(|error| {
        Error::Store(format!(
            "the step cache {} is not writable ({error}); give a writable --store, or --cache read (use \
             what is stored) or --cache off",
            dir.display()
        ))
    })
}

/// The cache of one unit's attempt: the position of each step's next call and the hits and
/// misses so far. Fresh for every attempt, so a retried unit asks the same keys again.
pub(crate) struct UnitCache {
    cache: Arc<Cache>,
    state: Mutex<UnitState>,
}

#[derive(Default)]
struct UnitState {
    /// Calls so far, by step (its address: two steps may share a name in two modules).
    positions: Vec<(usize, u64)>,
    counts: BTreeMap<&'static str, CacheCount>,
}

impl UnitCache {
    pub(crate) fn new(cache: Arc<Cache>) -> Arc<UnitCache> {
        Arc::new(UnitCache { cache, state: Mutex::default() })
    }

    /// The position of this call of `step` in the unit.
    fn next_position(&self, step: &'static StepInfo) -> u64 {
        let id = step as *const StepInfo as usize;
        let Ok(mut state) = self.state.lock() else { return 0 };
        match state.positions.iter_mut().find(|(s, _)| *s == id) {
            Some((_, next)) => {
                *next += 1;
                *next - 1
            }
            None => {
                state.positions.push((id, 1));
                0
            }
        }
    }

    fn count(&self, step: &'static StepInfo, hit: bool) {
        if let Ok(mut state) = self.state.lock() {
            let count = state.counts.entry(step.name).or_default();
            if hit {
                count.hits = count.hits.saturating_add(1);
            } else {
                count.misses = count.misses.saturating_add(1);
            }
        }
    }

    /// Each step's hits and misses, for the unit's record.
    pub(crate) fn counts(&self) -> BTreeMap<String, CacheCount> {
        self.state
            .lock()
            .map(|state| state.counts.iter().map(|(name, count)| ((*name).to_owned(), *count)).collect())
            .unwrap_or_default()
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The parts of a key, as `debug` shows them.
#[derive(Clone, Debug, Serialize)]
struct KeyParts {
    step: &'static str,
    module: &'static str,
    fingerprint: String,
    version: u32,
    shared: bool,
    args: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    condition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<u64>,
}

/// The module path of a step without its crate's name: a copy of the crate under another name
/// (an experiment crate cloned to try another scoring) keeps its keys.
fn module_in_crate(module_path: &str) -> &str {
    module_path.split_once("::").map(|(_, rest)| rest).unwrap_or("")
}

/// Builds the key of one call of a cached step, argument by argument (what `#[step(cache)]`
/// generates). Outside a unit, or with the cache off, it does nothing and the call runs.
pub struct KeyBuilder {
    step: &'static StepInfo,
    active: Option<(Arc<UnitCache>, u64, Sha256)>,
    failed: Option<String>,
}

/// What a cached step's argument must be: part of its key, through serde.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of a cache key: it does not implement `serde::Serialize`",
    label = "an argument of a `#[step(cache)]` must be `Serialize`",
    note = "derive `Serialize` for it, or leave the argument out of the key with `#[step(cache(skip(name)))]` \
            when it does not change the output (a client, a connection)"
)]
pub trait CacheArg {
    #[doc(hidden)]
    fn feed(&self, hasher: &mut Sha256) -> Result<(), String>;
}

impl<T: Serialize + ?Sized> CacheArg for T {
    fn feed(&self, hasher: &mut Sha256) -> Result<(), String> {
        digest::feed(hasher, self).map_err(|error| error.to_string())
    }
}

/// What a cached step's output (or its `Ok` value) must be: stored and read back through serde.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached: it must implement `serde::Serialize` and `serde::de::DeserializeOwned`",
    label = "the output of a `#[step(cache)]` must be `Serialize + DeserializeOwned`",
    note = "derive `Serialize` and `Deserialize` for it; a `Result` output stores only its `Ok` value, errors are \
            never cached"
)]
pub trait CacheValue: Serialize + DeserializeOwned {}

impl<T: Serialize + DeserializeOwned> CacheValue for T {}

/// Type-checks a cached step's output, at the user's tokens. Never does anything at run time.
pub fn check_value<T: CacheValue>() {}

impl KeyBuilder {
    /// Starts the key of a call of `step` in the unit current here.
    pub fn new(step: &'static StepInfo) -> KeyBuilder {
        let active = crate::runner::current_cache().map(|unit| {
            let mut hasher = Sha256::new();
            hasher.update(b"crystallize-cache-key 1\0");
            (unit, 0, hasher)
        });
        KeyBuilder { step, active, failed: None }
    }

    /// Adds an argument.
    pub fn arg<T: CacheArg + ?Sized>(&mut self, name: &'static str, value: &T) {
        if let Some((_, count, hasher)) = &mut self.active {
            *count += 1;
            hasher.update(name.as_bytes());
            hasher.update([0]);
            if let Err(error) = value.feed(hasher) {
                self.failed.get_or_insert_with(|| format!("argument `{name}` cannot be serialized: {error}"));
            }
        }
    }

    /// The call, with its key (and its position in the unit taken).
    pub fn finish(self) -> Call {
        let KeyBuilder { step, active, failed } = self;
        let Some((unit, _, hasher)) = active else { return Call { active: None } };
        let Some(spec) = step.cache else { return Call { active: None } };
        let position = unit.next_position(step);
        if let Some(problem) = failed {
            unit.cache
                .warn_once(format!("args {}", step.name), || format!("step {} is not cached: {problem}", step.name));
            return Call { active: None };
        }
        let args: Hash = hasher.finalize().into();
        let unit_key = crate::runner::current_unit();
        let seed = unit_key.as_ref().map_or(0, |unit| unit.seed);
        let module = module_in_crate(step.location.module_path);
        let mut key = Sha256::new();
        key.update(b"crystallize-cache 1\0");
        key.update(module.as_bytes());
        key.update([0]);
        key.update(step.name.as_bytes());
        key.update([0]);
        key.update(step.fingerprint.to_le_bytes());
        key.update(spec.version.to_le_bytes());
        key.update(args);
        if spec.shared {
            key.update([1]);
        } else if let Some(unit) = &unit_key {
            key.update([0]);
            key.update(unit.experiment.as_bytes());
            key.update([0]);
            key.update(unit.condition.as_bytes());
            key.update([0]);
            key.update(seed.to_le_bytes());
            key.update(position.to_le_bytes());
        }
        let key: Hash = key.finalize().into();
        let cache = &unit.cache;
        let refreshed = cache.refresh.iter().any(|name| name == step.name);
        let read = cache.mode.reads() && !refreshed;
        let write = cache.mode.writes();
        Call {
            active: Some(Active {
                step,
                spec,
                key,
                args,
                seed: (!spec.shared).then_some(seed),
                position: (!spec.shared).then_some(position),
                condition: unit_key.filter(|_| !spec.shared).map(|unit| String::from(&*unit.condition)),
                read,
                write,
                refreshed,
                unit,
            }),
        }
    }
}

/// One call of a cached step: looked up before the body runs, stored after.
pub struct Call {
    active: Option<Active>,
}

struct Active {
    step: &'static StepInfo,
    spec: &'static CacheSpec,
    key: Hash,
    args: Hash,
    seed: Option<u64>,
    position: Option<u64>,
    condition: Option<String>,
    read: bool,
    write: bool,
    refreshed: bool,
    unit: Arc<UnitCache>,
}

/// How a step's output is stored: whole ([`Whole`]), or only its `Ok` value ([`OkOnly`]).
pub trait Codec<Out> {
    /// What is stored.
    type Value: CacheValue;
    /// The value to store, if any.
    fn value(out: &Out) -> Option<&Self::Value>;
    /// The output from a stored value.
    fn restore(value: Self::Value) -> Out;
}

/// Stores the whole output.
#[derive(Clone, Copy)]
pub struct Whole;

impl<T: CacheValue> Codec<T> for Whole {
    type Value = T;
    fn value(out: &T) -> Option<&T> {
        Some(out)
    }
    fn restore(value: T) -> T {
        value
    }
}

/// Stores the `Ok` value of a `Result`; an `Err` is never stored (the next run tries again).
#[derive(Clone, Copy)]
pub struct OkOnly;

impl<T: CacheValue, E> Codec<Result<T, E>> for OkOnly {
    type Value = T;
    fn value(out: &Result<T, E>) -> Option<&T> {
        out.as_ref().ok()
    }
    fn restore(value: T) -> Result<T, E> {
        Ok(value)
    }
}

impl Call {
    /// The stored output of this call, when there is a sound one and the run reads the cache.
    pub fn lookup<Out, C: Codec<Out>>(&self, _codec: C) -> Option<Out> {
        let active = self.active.as_ref()?;
        let found = if active.read { active.load::<Out, C>() } else { None };
        active.unit.count(active.step, found.is_some());
        let outcome = match (&found, active.read, active.refreshed) {
            (Some(_), ..) => "hit",
            (None, true, _) => "miss",
            (None, false, true) => "refresh",
            (None, false, false) => "miss (write only)",
        };
        active.explain(outcome);
        found
    }

    /// Stores `out` (when the run writes the cache and the codec keeps it).
    pub fn store<Out, C: Codec<Out>>(self, _codec: C, out: &Out) {
        let Some(active) = self.active else { return };
        if !active.write {
            return;
        }
        if let Some(value) = C::value(out) {
            active.save::<C::Value>(value);
        }
    }

    /// Whether the call is looked up at all (a unit with the cache on).
    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }
}

impl Active {
    fn cache(&self) -> &Cache {
        &self.unit.cache
    }

    fn load<Out, C: Codec<Out>>(&self) -> Option<Out> {
        let cache = self.cache();
        let (_, payload) = match entry::read(&cache.dir, &self.key) {
            Ok(found) => found,
            Err(entry::Damage::Missing) => return None,
            Err(entry::Damage::Io(error)) => {
                cache.warn_once(format!("read {}", hex(&self.key)), || {
                    format!("cannot read the cache entry of step {} ({error}); running it", self.step.name)
                });
                return None;
            }
            Err(entry::Damage::Corrupt(why)) => {
                cache.warn_once(format!("corrupt {}", hex(&self.key)), || {
                    format!(
                        "ignoring the damaged cache entry {} of step {}: {why}; running the step",
                        entry::path_of(&cache.dir, &self.key).display(),
                        self.step.name
                    )
                });
                return None;
            }
        };
        match serde_json::from_slice::<C::Value>(&payload) {
            Ok(value) => Some(C::restore(value)),
            Err(error) => {
                // The entry is sound but its value is not of the step's type (its code changed in
                // a way its fingerprint does not see, such as a type defined elsewhere).
                cache.warn_once(format!("type {}", self.step.name), || {
                    format!(
                        "a stored output of step {} does not read as its output type ({error}); running the step \
                         (bump its cache(version = N) to drop what is stored)",
                        self.step.name
                    )
                });
                None
            }
        }
    }

    fn save<V: CacheValue>(&self, value: &V) {
        let cache = self.cache();
        let payload = match serde_json::to_vec(value) {
            Ok(payload) => payload,
            Err(error) => {
                cache.warn_once(format!("encode {}", self.step.name), || {
                    format!("the output of step {} cannot be stored ({error}); it is not cached", self.step.name)
                });
                return;
            }
        };
        // Stored only when it reads back to itself: JSON writes NaN and infinities as `null`.
        let round_trips = serde_json::from_slice::<V>(&payload)
            .ok()
            .and_then(|back| serde_json::to_vec(&back).ok())
            .is_some_and(|again| again == payload);
        if !round_trips {
            cache.warn_once(format!("roundtrip {}", self.step.name), || {
                format!(
                    "an output of step {} does not read back as itself from JSON (a NaN or infinite float?); it is \
                     not cached",
                    self.step.name
                )
            });
            return;
        }
        let header = entry::Header {
            key: hex(&self.key),
            step: self.step.name.to_owned(),
            module: self.step.location.module_path.to_owned(),
            fingerprint: format!("{:016x}", self.step.fingerprint),
            version: self.spec.version,
            shared: self.spec.shared,
            created_ms: now_ms(),
            len: payload.len() as u64,
            sha256: hex(&digest::sha256(&payload)),
        };
        if let Err(error) = entry::write(&cache.dir, &self.key, &entry::encode(&header, &payload)) {
            cache.warn_once(format!("write {}", self.step.name), || {
                format!("cannot write to the step cache {} ({error}); the run goes on", cache.dir.display())
            });
        }
    }

    /// With `debug`, an event saying how the call went and what its key is made of.
    fn explain(&self, outcome: &str) {
        if !self.cache().explain {
            return;
        }
        let parts = KeyParts {
            step: self.step.name,
            module: module_in_crate(self.step.location.module_path),
            fingerprint: format!("{:016x}", self.step.fingerprint),
            version: self.spec.version,
            shared: self.spec.shared,
            args: hex(&self.args)[..16].to_owned(),
            condition: self.condition.clone(),
            seed: self.seed,
            position: self.position,
        };
        let payload = serde_json::json!({
            "step": self.step.name,
            "outcome": outcome,
            "key": &hex(&self.key)[..16],
            "parts": parts,
        });
        crate::runner::emit_from_step("cache", payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_say_what_they_do() {
        for mode in [CacheMode::Off, CacheMode::Read, CacheMode::Write, CacheMode::On] {
            assert_eq!(CacheMode::parse(mode.name()), Ok(mode));
        }
        assert!(CacheMode::parse("yes").unwrap_err().contains("off, read, write, on"));
        assert!(CacheMode::On.reads() && CacheMode::On.writes());
        assert!(!CacheMode::Write.reads() && !CacheMode::Read.writes());
    }

    #[test]
    fn the_crate_name_is_not_part_of_a_key() {
        assert_eq!(module_in_crate("llm_arena::game"), "game");
        assert_eq!(module_in_crate("llm_arena_variant::game"), "game");
        assert_eq!(module_in_crate("llm_arena"), "");
    }
}
