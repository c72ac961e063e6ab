//! Keeping a unit's failure to itself: the panic hook that keeps panics inside units (and
//! observers) off the terminal and remembers their message and location, and the unit that is
//! current on this thread or in this task, which steps (they get no context) report to.

use std::any::Any;
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

use crate::context::UnitSink;
use crate::events::Observer;

thread_local! {
    /// The sync unit running on this thread.
    static CURRENT: RefCell<Option<UnitSink>> = const { RefCell::new(None) };
    /// What the panic hook saw of the last panic in a unit on this thread.
    static LAST_PANIC: RefCell<Option<(String, Option<String>)>> = const { RefCell::new(None) };
    /// Set while an observer's hook runs, so the panic hook keeps its panic off the terminal.
    static IN_OBSERVER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(feature = "async")]
tokio::task_local! {
    /// The async unit this future belongs to: tasks move between threads, so a thread-local
    /// cannot say which unit a step is part of.
    pub(super) static TASK_UNIT: UnitSink;
}

/// Whether a unit is current here (a sync unit on this thread, or the async unit being polled).
fn in_unit() -> bool {
    let on_thread = CURRENT.with(|current| current.try_borrow().map(|c| c.is_some()).unwrap_or(false));
    #[cfg(feature = "async")]
    let on_thread = on_thread || TASK_UNIT.try_with(|_| ()).is_ok();
    on_thread
}

/// Installs, once per process, a panic hook that keeps panics inside units off the terminal (the
/// output thread reports them) and records their message and location. Panics elsewhere go to
/// the previous hook.
pub(super) fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_observer = IN_OBSERVER.with(|flag| flag.get());
            if in_unit() || in_observer {
                let location = info.location().map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
                let message = payload_message(info.payload());
                LAST_PANIC.with(|last| {
                    if let Ok(mut last) = last.try_borrow_mut() {
                        *last = Some((message, location));
                    }
                });
            } else {
                previous(info);
            }
        }));
    });
}

/// The message and location of the panic just caught on this thread, from the hook, or from its
/// payload when the hook did not see it.
pub(super) fn caught_panic(payload: &(dyn Any + Send)) -> (String, Option<String>) {
    LAST_PANIC.with(|last| last.borrow_mut().take()).unwrap_or_else(|| (payload_message(payload), None))
}

fn payload_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// Makes `sink` the unit current on this thread; returns what was current before (a unit can
/// run nested on a thread when user code inside another unit waits on rayon and this worker
/// steals work meanwhile), for [`restore_current`].
pub(super) fn enter_current(sink: UnitSink) -> Option<UnitSink> {
    CURRENT.with(|current| current.replace(Some(sink)))
}

/// Makes `previous` current again.
pub(super) fn restore_current(previous: Option<UnitSink>) {
    CURRENT.with(|current| current.replace(previous));
}

/// Calls `f` with the current unit's sink, if a unit is current.
pub(super) fn with_current<T>(f: impl FnOnce(&UnitSink) -> T) -> Option<T> {
    let mut f = Some(f);
    #[cfg(feature = "async")]
    if let Ok(value) = TASK_UNIT.try_with(|sink| f.take().map(|f| f(sink))) {
        return value;
    }
    let f = f.take()?;
    CURRENT.with(|current| current.try_borrow().ok().and_then(|c| c.as_ref().map(f)))
}

/// Calls an observer's hook; if it panics, reports that (through [`crate::console`], so a progress
/// display stays intact) and detaches the observer.
pub(super) fn guard_observer(
    alive: &mut bool,
    observer: &mut dyn Observer,
    hook: &str,
    call: impl FnOnce(&mut dyn Observer),
) {
    IN_OBSERVER.with(|flag| flag.set(true));
    let outcome = catch_unwind(AssertUnwindSafe(|| call(&mut *observer)));
    IN_OBSERVER.with(|flag| flag.set(false));
    if let Err(payload) = outcome {
        *alive = false;
        let (message, location) = caught_panic(payload.as_ref());
        let location = location.map(|l| format!(" at {l}")).unwrap_or_default();
        crate::console::line(format!(
            "crystallize: observer {} panicked in {hook}: {message}{location}; it is detached and the run goes on",
            observer.name()
        ));
    }
}
