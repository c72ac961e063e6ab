//! A unit that calls `std::process::exit` while a stored run is running ends the process with
//! whatever code it chose — `exit(0)` would tell a script that an incomplete run succeeded. While
//! a run's journal is open, an `atexit` hook turns such an exit into exit code 1, after saying
//! that the run is incomplete and how to resume it.
//!
//! The hook runs inside `exit`, when other threads may still be running; it only takes a mutex
//! held for a few instructions elsewhere, writes to stderr, and calls `_exit`, which skips the
//! remaining exit handlers (they would run with the run half done anyway). An interrupted run
//! (Ctrl-C twice, which exits with 130 on purpose) keeps its own exit code, and the hook prints
//! only how to resume it: a unit that hangs must not cost the resume command.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

/// The armed guards: (token, what to print if the process exits meanwhile, the resume command).
static ARMED: Mutex<Vec<(u64, String, String)>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(0);
static HOOK: Once = Once::new();

/// While alive, an exit of the process (other than an interruption) prints `message` and ends
/// with exit code 1. Dropped when the run's journal is finished.
#[derive(Debug)]
pub struct ExitGuard {
    token: u64,
}

impl ExitGuard {
    /// Arms the hook with `message` (a full sentence, without `error: `) and the command that
    /// resumes the run (printed alone when the process was interrupted).
    pub fn arm(message: String, resume: String) -> ExitGuard {
        HOOK.call_once(|| {
            // SAFETY: `on_exit` is an `extern "C" fn()` that never unwinds; registering it has no
            // other precondition. If registration fails, exits keep their own code, as before.
            let _ = unsafe { libc::atexit(on_exit) };
        });
        let token = NEXT.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut armed) = ARMED.lock() {
            armed.push((token, message, resume));
        }
        ExitGuard { token }
    }
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        if let Ok(mut armed) = ARMED.lock() {
            armed.retain(|(token, _, _)| *token != self.token);
        }
    }
}

extern "C" fn on_exit() {
    // Nothing here may unwind into C: no panicking calls, errors ignored.
    if crate::runner::interrupted() {
        // The second Ctrl-C: the exit code stays 130; say how to pick the run up again.
        if let Ok(armed) = ARMED.lock() {
            let mut err = std::io::stderr().lock();
            for (_, _, resume) in armed.iter() {
                let _ = writeln!(err, "resume with:\n  {resume}");
            }
            let _ = err.flush();
        }
        return;
    }
    let messages: Vec<String> = match ARMED.lock() {
        Ok(armed) => armed.iter().map(|(_, message, _)| message.clone()).collect(),
        Err(_) => return,
    };
    if messages.is_empty() {
        return;
    }
    let mut err = std::io::stderr().lock();
    for message in &messages {
        let _ = writeln!(err, "\nerror: {message}");
    }
    let _ = err.flush();
    // SAFETY: `_exit` ends the process at once; it has no preconditions.
    unsafe { libc::_exit(1) }
}
