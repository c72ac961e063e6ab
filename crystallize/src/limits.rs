//! Named resource limits: how many units may use one resource — a model server that takes only
//! a few requests at once — at the same time, whatever `--jobs` allows. A unit takes a permit
//! with [`Ctx::limit`] (async) or [`Ctx::limit_blocking`] (sync), or by calling a step declared
//! `#[step(limit = "ollama")]`, and gives it back when the guard drops. Capacities come from
//! `--limit ollama=2`, `crystallize.toml` or the experiment's attribute.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The limits of one run: a semaphore per declared name, each with its capacity.
#[derive(Debug, Default)]
pub struct Limits {
    by_name: BTreeMap<String, Limit>,
}

/// One named limit: its permits, its capacity, and how many units wait for a permit now (for the
/// progress display).
#[derive(Debug)]
struct Limit {
    semaphore: Arc<Semaphore>,
    capacity: usize,
    waiting: Arc<AtomicUsize>,
}

/// Counts a unit as waiting for as long as it lives: dropped when the permit comes, or when the
/// waiting unit is cancelled (a deadline).
struct Waiting(Arc<AtomicUsize>);

impl Waiting {
    fn start(counter: &Arc<AtomicUsize>) -> Waiting {
        counter.fetch_add(1, Ordering::Relaxed);
        Waiting(counter.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Limits {
    /// Limits with these capacities (each at least 1: checked where they are given).
    pub fn new<'a>(capacities: impl IntoIterator<Item = (&'a str, usize)>) -> Limits {
        let by_name = capacities
            .into_iter()
            .map(|(name, capacity)| {
                let capacity = capacity.max(1);
                let limit = Limit {
                    semaphore: Arc::new(Semaphore::new(capacity)),
                    capacity,
                    waiting: Arc::new(AtomicUsize::new(0)),
                };
                (name.to_owned(), limit)
            })
            .collect();
        Limits { by_name }
    }

    /// Each limit as it is used at this moment, sorted by name.
    pub(crate) fn uses(&self) -> Vec<crate::results::LimitUse> {
        self.by_name
            .iter()
            .map(|(name, limit)| crate::results::LimitUse {
                name: name.clone(),
                capacity: limit.capacity,
                in_use: limit.capacity.saturating_sub(limit.semaphore.available_permits()),
                waiting: limit.waiting.load(Ordering::Relaxed),
            })
            .collect()
    }

    fn limit(&self, name: &str) -> (Arc<Semaphore>, Arc<AtomicUsize>) {
        match self.by_name.get(name) {
            Some(limit) => (limit.semaphore.clone(), limit.waiting.clone()),
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
    let (semaphore, waiting) = limits.limit(name);
    let waiting = Waiting::start(&waiting);
    // The semaphore is never closed, so acquiring fails only if it were: then nothing is limited.
    let permit = semaphore.acquire_owned().await.ok();
    drop(waiting);
    let waited = started.elapsed();
    tracing::debug!(target: "crystallize::limit", limit = name, waited_ms = waited.as_secs_f64() * 1e3);
    LimitGuard { _permit: permit, waited }
}

/// Like [`acquire`], blocking this thread (a sync unit's).
pub(crate) fn acquire_blocking(limits: Option<Arc<Limits>>, name: &str) -> LimitGuard {
    let Some(limits) = limits else { return LimitGuard::unlimited() };
    let started = Instant::now();
    let (semaphore, waiting) = limits.limit(name);
    let waiting = Waiting::start(&waiting);
    let permit = match tokio::runtime::Handle::try_current() {
        // On a runtime thread (a sync call inside an async unit), block without stalling the
        // runtime's other tasks.
        Ok(handle) => tokio::task::block_in_place(|| handle.block_on(semaphore.acquire_owned())).ok(),
        Err(_) => crate::async_runtime::block_on(semaphore.acquire_owned()).and_then(Result::ok),
    };
    drop(waiting);
    LimitGuard { _permit: permit, waited: started.elapsed() }
}
