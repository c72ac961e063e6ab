//! The tokio runtime every async run of this process shares, and blocking on it from a thread
//! that is not one of its own (a sync unit waiting for a limit).

use std::future::Future;
use std::sync::OnceLock;

/// The runtime every async run of this process shares: built on first use, with a worker thread
/// per core (units mostly wait, so they need few threads; a user's own CPU-bound work in a unit
/// belongs in `spawn_blocking`).
pub(crate) fn runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .thread_name("crystallize-async")
                .enable_all()
                .build()
                .map_err(|error| format!("cannot start the async runtime: {error}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Runs `future` to its end on the shared runtime, from a thread that is not one of its own;
/// `None` when the runtime cannot start.
pub(crate) fn block_on<F: Future>(future: F) -> Option<F::Output> {
    runtime().ok().map(|runtime| runtime.block_on(future))
}
