//! Named resource limits: how many units may use one resource — a model server that takes only
//! a few requests at once — at the same time, whatever `--jobs` allows. A unit takes a permit
//! with [`Ctx::limit`] (async) or [`Ctx::limit_blocking`] (sync), or by calling a step declared
//! `#[step(limit = "ollama")]`, and gives it back when the guard drops. Capacities come from
//! `--limit ollama=2`, `crystallize.toml` or the experiment's attribute.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The limits of one run: a semaphore per declared name, each with its capacity.
#[derive(Debug, Default)]
pub struct Limits {
    by_name: BTreeMap<String, Arc<Semaphore>>,
}

impl Limits {
    /// Limits with these capacities (each at least 1: checked where they are given).
    pub fn new<'a>(capacities: impl IntoIterator<Item = (&'a str, usize)>) -> Limits {
        let by_name = capacities
            .into_iter()
            .map(|(name, capacity)| (name.to_owned(), Arc::new(Semaphore::new(capacity.max(1)))))
            .collect();
        Limits { by_name }
    }

    fn semaphore(&self, name: &str) -> Arc<Semaphore> {
        match self.by_name.get(name) {
            Some(semaphore) => semaphore.clone(),
            // Declared names are checked before any unit runs; a name only code knows is a bug of
            // that code, which fails its unit with what would be valid.
            None => panic!(
                "limit '{name}' is not declared; declared limits: {} (declare one with #[step(limit = \"{name}\")] or \
                 --limit {name}=N)",
                if self.by_name.is_empty() { "none".to_owned() } else { self.names().join(", ") }
            ),
        }
    }

    /// The declared names, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }
}

/// A permit of a named limit, held until it drops.
#[derive(Debug)]
pub struct LimitGuard {
    _permit: Option<OwnedSemaphorePermit>,
    waited: Duration,
}

impl LimitGuard {
    /// How long the unit waited for the permit.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// A guard that limits nothing: outside a run (a step called from a test).
    fn unlimited() -> LimitGuard {
        LimitGuard { _permit: None, waited: Duration::ZERO }
    }
}

/// Takes a permit of `name` for the unit current on this thread or task, if there is one and it
/// is in a run with limits (what `#[step(limit = "...")]` expands to).
pub(crate) async fn acquire(limits: Option<Arc<Limits>>, name: String) -> LimitGuard {
    let name = name.as_str();
    let Some(limits) = limits else { return LimitGuard::unlimited() };
    let started = Instant::now();
    let semaphore = limits.semaphore(name);
    // The semaphore is never closed, so acquiring fails only if it were: then nothing is limited.
    let permit = semaphore.acquire_owned().await.ok();
    let waited = started.elapsed();
    tracing::debug!(target: "crystallize::limit", limit = name, waited_ms = waited.as_secs_f64() * 1e3);
    LimitGuard { _permit: permit, waited }
}

/// Like [`acquire`], blocking this thread (a sync unit's).
pub(crate) fn acquire_blocking(limits: Option<Arc<Limits>>, name: &str) -> LimitGuard {
    let Some(limits) = limits else { return LimitGuard::unlimited() };
    let started = Instant::now();
    let semaphore = limits.semaphore(name);
    let permit = match tokio::runtime::Handle::try_current() {
        // On a runtime thread (a sync call inside an async unit), block without stalling the
        // runtime's other tasks.
        Ok(handle) => tokio::task::block_in_place(|| handle.block_on(semaphore.acquire_owned())).ok(),
        Err(_) => crate::async_runtime::block_on(semaphore.acquire_owned()).and_then(Result::ok),
    };
    LimitGuard { _permit: permit, waited: started.elapsed() }
}
