//! What `#[step(timeout = "30s", retries = 2)]` expands to at run time: a step's deadline, the
//! pause before each retry of a step, and the way a step that ran out of time and retries ends
//! its unit (as a `timeout`, like a unit's own deadline).
//!
//! A step retries when an attempt timed out or returned an error marked
//! [`Failure::retryable`](crate::results::Failure::retryable). Each attempt starts from the same
//! place in the unit's random streams, so a step that succeeds on its third attempt draws what it
//! would have drawn on its first: the unit's result does not depend on how often its step failed.
//! Each retry is an event `step_retry` of the unit (`{step, attempt, error, pause_ms}`).

use std::time::Duration;

use super::isolation;
use crate::results::human_duration;
use crate::source::StepInfo;

/// The panic payload that ends a unit whose step ran out of time and retries; the runner turns it
/// into a failure of kind `timeout` (never reported as a panic).
pub(crate) struct StepTimedOut {
    /// What the unit's error says.
    pub(crate) message: String,
}

/// The first pause before a step's retry; each next one doubles, with jitter.
const FIRST_PAUSE: Duration = Duration::from_millis(200);

/// The retries one call of a step has left, and the pauses between them.
pub struct StepRetries {
    step: &'static StepInfo,
    attempt: u32,
    backoff: backon::ExponentialBackoff,
}

impl StepRetries {
    /// Up to `retries` more attempts of `step` for this call.
    pub fn new(step: &'static StepInfo, retries: u32) -> StepRetries {
        use backon::BackoffBuilder;
        let backoff = backon::ExponentialBuilder::default()
            .with_min_delay(FIRST_PAUSE)
            .with_max_delay(FIRST_PAUSE.saturating_mul(64))
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(retries as usize)
            .build();
        StepRetries { step, attempt: 1, backoff }
    }

    /// After a failed attempt (`error` says why): the pause before the next, or `None` when no
    /// retry is left. The retry is an event of the unit.
    pub fn next_pause(&mut self, error: &str) -> Option<Duration> {
        let pause = self.backoff.next()?;
        tracing::warn!(
            target: "crystallize::step",
            step = self.step.name,
            attempt = self.attempt,
            error,
            pause_ms = pause.as_millis() as u64,
            "step attempt failed; retrying"
        );
        let payload = serde_json::json!({
            "step": self.step.name,
            "attempt": self.attempt,
            "error": error,
            "pause_ms": pause.as_millis() as u64,
        });
        isolation::with_current(|sink| sink.emit("step_retry".into(), payload));
        self.attempt += 1;
        Some(pause)
    }
}

/// Ends the unit: `step` ran out of time (`limit`) on its last attempt.
pub fn step_timed_out(step: &'static StepInfo, limit: Duration, attempts: u32) -> ! {
    let tries = if attempts > 1 { format!(" on each of {attempts} attempts") } else { String::new() };
    let message =
        format!("step '{}' timed out after {}{tries} (the step's deadline)", step.name, human_duration(limit));
    std::panic::resume_unwind(Box::new(StepTimedOut { message }))
}

/// Whether a unit is running here: a step's deadline applies only inside a run (a step called
/// from a test, on whatever runtime, is a plain call).
#[cfg(feature = "async")]
pub fn in_run() -> bool {
    isolation::with_current(|_| ()).is_some()
}
