//! The output thread: the only caller of observers. It takes the workers' messages in batches,
//! delivers each to every observer (detaching one that panics), and puts the finished units in
//! plan order.

use std::sync::mpsc;

use super::isolation::guard_observer;
use crate::events::{self, Message, Observer};
use crate::results::{RunInfo, UnitResult};

/// Most messages delivered before observers get a [`Observer::flush`], even when the workers keep
/// the channel full.
pub(super) const MAX_BATCH: usize = 1024;

/// Messages queued between the workers and the output thread before a worker waits.
pub(super) const CHANNEL_CAPACITY: usize = 4 * MAX_BATCH;

/// Delivers every message to the observers, collects the finished units (the successful ones
/// only with `keep_successes`), and ends with `run_finished` (units in plan order); the units
/// collected and how many finished in all. Messages are taken in batches: whatever
/// arrived while the last batch was delivered, then every observer gets a `flush`. An observer
/// that panics is reported and detached; the run and its results go on.
pub(super) fn output_thread(
    rx: mpsc::Receiver<Message>,
    info: &RunInfo,
    observers: &mut [&mut dyn Observer],
    order: &PlanOrder,
    keep_successes: bool,
) -> (Vec<UnitResult>, usize) {
    let mut alive = vec![true; observers.len()];
    for (index, observer) in observers.iter_mut().enumerate() {
        guard_observer(&mut alive[index], &mut **observer, "run_started", |o| o.run_started(info));
    }
    // Without the successes, the few failures are sorted at the end rather than placed in a
    // table of the whole plan.
    let mut finished = order.collector(if keep_successes { info.units_planned } else { 0 });
    let mut count = 0;
    let mut deliver = |message: Message, observers: &mut [&mut dyn Observer], alive: &mut [bool]| {
        for (index, observer) in observers.iter_mut().enumerate() {
            if alive[index] {
                guard_observer(&mut alive[index], &mut **observer, message.hook(), |o| events::dispatch(o, &message));
            }
        }
        if let Message::UnitFinished(result) = message {
            count += 1;
            if keep_successes || !result.is_ok() {
                finished.push(result);
            }
        }
    };
    let mut ended = false;
    while let Ok(first) = rx.recv() {
        let batch = std::iter::once(first).chain(rx.try_iter().take(MAX_BATCH - 1));
        for message in batch {
            if matches!(message, Message::End) {
                ended = true;
                break;
            }
            deliver(message, observers, &mut alive);
        }
        for (index, observer) in observers.iter_mut().enumerate() {
            if alive[index] {
                guard_observer(&mut alive[index], &mut **observer, "flush", |o| o.flush());
            }
        }
        if ended {
            break;
        }
    }
    let finished = finished.finish();
    for (index, observer) in observers.iter_mut().enumerate() {
        if alive[index] {
            guard_observer(&mut alive[index], &mut **observer, "run_finished", |o| o.run_finished(&finished));
        }
    }
    (finished, count)
}

/// Where each unit goes in plan order (condition, then replicate).
pub(super) struct PlanOrder<'a> {
    /// Conditions × replicates.
    pub(super) slots: usize,
    /// A unit's index in plan order; `None` for a unit the plan does not have.
    pub(super) place: &'a (dyn Fn(&UnitResult) -> Option<usize> + Sync),
}

impl<'a> PlanOrder<'a> {
    /// A collector of the results of `planned` units.
    pub(super) fn collector(&'a self, planned: usize) -> InPlanOrder<'a> {
        // A table of the whole plan when most of it runs; a resumed run with few units left
        // sorts them instead.
        let mut table = Vec::new();
        if planned.saturating_mul(4) >= self.slots {
            table.resize_with(self.slots, || None);
        }
        let rest = Vec::with_capacity(if table.is_empty() { planned } else { 0 });
        InPlanOrder { order: self, table, rest }
    }
}

/// Finished units, put in plan order as they arrive: each goes straight to its place in a table
/// of the plan, so a million results are moved once rather than sorted at the end (which was a
/// tenth of a run of cheap units).
pub(super) struct InPlanOrder<'a> {
    order: &'a PlanOrder<'a>,
    /// A slot per unit of the plan, or empty (see [`PlanOrder::collector`]).
    table: Vec<Option<UnitResult>>,
    /// Units not in the table: all of them without one; otherwise those the plan does not have,
    /// or a unit finished twice (neither of which the runner does).
    rest: Vec<UnitResult>,
}

impl InPlanOrder<'_> {
    pub(super) fn push(&mut self, unit: UnitResult) {
        match (self.order.place)(&unit) {
            Some(index) if self.table.get(index).is_some_and(Option::is_none) => self.table[index] = Some(unit),
            _ => self.rest.push(unit),
        }
    }

    /// Every unit in plan order; units the plan does not have go last.
    pub(super) fn finish(self) -> Vec<UnitResult> {
        // `filter_map` over a vector's own iterator collects in place: no second table.
        #[allow(clippy::filter_map_identity)]
        let mut units: Vec<UnitResult> = self.table.into_iter().filter_map(|slot| slot).collect();
        if !self.rest.is_empty() {
            units.extend(self.rest);
            units.sort_by_cached_key(|unit| (self.order.place)(unit).unwrap_or(usize::MAX));
        }
        units
    }
}
