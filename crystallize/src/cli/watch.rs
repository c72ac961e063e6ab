//! `watch [RUN]`: follows a run in progress from another terminal (or another machine sharing
//! the store), reading only the store: units done / planned per condition, failures as they
//! happen, the latest events and running means, until the run completes.
//!
//! It polls the run's journals and events logs, reading only the bytes appended since the last
//! poll ([`Tail`]). On a terminal it redraws one view in place; piped, it appends plain lines
//! (one per finished unit, per failure and per event) and ends with a summary.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::progress::{duration, rate_text};
use super::WatchArgs;
use crate::error::Error;
use crate::runner::UnitResult;
use crate::store::events::{self as events_log, Logged, Tail};
use crate::store::{journal, Damage, RunDir, Status, Store};
use crate::summary;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub(super) fn watch(args: &WatchArgs) -> Result<ExitCode, Error> {
    let store = Store::locate(args.store.store.as_deref());
    let run = match &args.run {
        Some(id) => store.run(id)?,
        None => latest_in_progress(&store)?,
    };
    let interval = Duration::from_millis(args.interval);
    let timeout = args.timeout.map(Duration::from_secs);
    let mut watcher = Watcher::new(run, args.events);
    let mut view = if std::io::stdout().is_terminal() { View::live() } else { View::Plain };
    let started = Instant::now();
    view.header(&watcher);
    // Polls in a row that found every writer gone and nothing new: two make the run stopped.
    let mut quiet_and_gone = 0;
    loop {
        // Whether the writers are gone is asked before reading, so that what they wrote last is read.
        let gone = watcher.writers_gone();
        let changes = watcher.poll();
        let caught_up = watcher.caught_up();
        let state = watcher.state();
        let status = state.status();
        quiet_and_gone = if gone && caught_up && changes.units.is_empty() && changes.events.is_empty() {
            quiet_and_gone + 1
        } else {
            0
        };
        // A damaged run may still be running: its writers may yet write the units it lacks.
        let unfinished = matches!(status, Status::Incomplete | Status::Damaged);
        let stopped = unfinished && quiet_and_gone >= 2;
        if !view.update(&watcher, &state, &changes) {
            return Ok(ExitCode::SUCCESS); // stdout was closed: nobody is watching any more
        }
        if !unfinished || stopped {
            view.finish(&watcher, &state);
            // A run with --until-decided that stopped because every hypothesis was decided
            // ended as it should: nothing to resume.
            let sequential = watcher.sequential();
            let decided =
                !sequential.is_empty() && sequential.iter().all(|r| r.status != crate::sequential::Status::Open);
            if decided && (stopped || status == Status::Decided) {
                eprintln!(
                    "run {} stopped with {} of {} units done: every hypothesis is decided (--until-decided)",
                    watcher.run.manifest.run,
                    state.done(),
                    state.planned()
                );
                return Ok(ExitCode::SUCCESS);
            }
            if stopped {
                eprintln!(
                    "run {} stopped with {} of {} units done: no process is running it any more; resume it with \
                     `run {} --resume {}`",
                    watcher.run.manifest.run,
                    state.done(),
                    state.planned(),
                    watcher.run.manifest.experiment,
                    watcher.run.manifest.run
                );
            }
            let ok = status == Status::Complete;
            return Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) });
        }
        if timeout.is_some_and(|t| started.elapsed() >= t) {
            view.finish(&watcher, &state);
            eprintln!(
                "watch: stopped after {} s (--timeout) with run {} still incomplete: {} of {} units done",
                timeout.map(|t| t.as_secs()).unwrap_or_default(),
                watcher.run.manifest.run,
                state.done(),
                state.planned()
            );
            return Ok(ExitCode::from(1));
        }
        // Files read only in part (a big run followed from its start) are read on at once.
        if caught_up {
            std::thread::sleep(interval);
        }
    }
}

/// The latest run that is not complete, of any experiment.
fn latest_in_progress(store: &Store) -> Result<RunDir, Error> {
    // A store that cannot be read is an error, not "no runs".
    let runs = store.list()?.runs;
    let mut latest = None;
    for run in runs.into_iter().rev() {
        let status = run.state().status();
        if matches!(status, Status::Incomplete | Status::Damaged) {
            return Ok(run);
        }
        if latest.is_none() {
            latest = Some(format!("{} ({status})", run.manifest.run));
        }
    }
    Err(Error::Store(match latest {
        Some(latest) => format!(
            "no run in progress in {}; the latest is {latest}: name a run to see it (`watch RUN`)",
            store.root().display()
        ),
        None => format!(
            "no runs in {}; start one with `run`, or point at another store with --store DIR",
            store.root().display()
        ),
    }))
}

/// Where a watched run stands: units done, failed and planned, and its status.
struct Tally {
    done: usize,
    failed: usize,
    planned: usize,
    status: Status,
}

impl Tally {
    fn done(&self) -> usize {
        self.done
    }
    fn failed(&self) -> usize {
        self.failed
    }
    fn planned(&self) -> usize {
        self.planned
    }
    fn status(&self) -> Status {
        self.status
    }
}

/// An event, as shown.
struct SeenEvent {
    condition: String,
    replicate: u64,
    name: String,
    payload: serde_json::Value,
    elapsed_ms: f64,
}

impl SeenEvent {
    fn text(&self) -> String {
        let payload = clip(&self.payload.to_string(), 160);
        format!("{} #{}  +{}  {} {payload}", self.condition, self.replicate, millis(self.elapsed_ms), self.name)
    }
}

/// What a poll found that was new.
#[derive(Default)]
struct Changes {
    /// Unit records that changed a unit's state (a first success, or a failure), in journal order,
    /// each with the units done and failed right after it.
    units: Vec<(UnitResult, usize, usize)>,
    /// Events, in log order.
    events: Vec<SeenEvent>,
    /// Damage found in the files.
    warnings: Vec<String>,
}

/// What the store says about one run, kept up to date by polling.
struct Watcher {
    run: RunDir,
    conditions: Vec<String>,
    replicates: u64,
    journals: Tail,
    events: Tail,
    /// Per unit with a record: the digest of its metrics when it succeeded, `None` when it only
    /// failed. Not the records themselves: watching a run of a million units must not hold them.
    units: BTreeMap<(usize, u64), Option<u64>>,
    /// Units in doubt (successful records that disagree, as the store's reader decides), each
    /// with the latest journal a disagreeing record was read from: a success from a later
    /// journal settles it (`integrity::resolve`, applied as lines arrive).
    in_doubt: BTreeMap<(usize, u64), std::path::PathBuf>,
    /// For a run with `--until-decided` only (at most its maximum replicates per condition): the
    /// successful records, which its sequential test replays.
    sequential_units: BTreeMap<(usize, u64), UnitResult>,
    /// Per condition: each metric's sum and count over the successful units, for the means.
    sums: Vec<BTreeMap<String, (f64, usize)>>,
    running: BTreeSet<(usize, u64)>,
    latest: VecDeque<SeenEvent>,
    keep_events: usize,
    sessions: Vec<crate::store::manifest::Session>,
    started: Instant,
    /// (when, units done) at the first poll, for the rate.
    baseline: Option<(Instant, usize)>,
    /// Units done and failed, kept as records arrive (for the plain log's running counts).
    done_count: usize,
    failed_count: usize,
    /// Damage seen in the journals so far.
    damage: Damage,
    /// Whether the last stop record read says every hypothesis was decided.
    decided: bool,
}

impl Watcher {
    fn new(run: RunDir, keep_events: usize) -> Watcher {
        let conditions = run.conditions();
        let replicates = run.manifest.replicates;
        let journals = Tail::new(run.path(), "journal-");
        let events = Tail::new(run.path(), events_log::PREFIX);
        Watcher {
            run,
            conditions,
            replicates,
            journals,
            events,
            units: BTreeMap::new(),
            in_doubt: BTreeMap::new(),
            sequential_units: BTreeMap::new(),
            sums: Vec::new(),
            running: BTreeSet::new(),
            latest: VecDeque::new(),
            keep_events,
            sessions: Vec::new(),
            started: Instant::now(),
            baseline: None,
            done_count: 0,
            failed_count: 0,
            damage: Damage::default(),
            decided: false,
        }
    }

    fn condition_index(&self, name: &str) -> Option<usize> {
        self.conditions.iter().position(|c| c == name)
    }

    /// Reads what was appended to the run's files since the last poll.
    fn poll(&mut self) -> Changes {
        let mut changes = Changes::default();
        let (sessions, _) = self.run.sessions();
        self.replicates = sessions.iter().map(|s| s.replicates).chain([self.manifest_replicates()]).max().unwrap_or(0);
        self.sessions = sessions;

        // Events first: inside one poll, a unit's events come before its record.
        for line in self.events.poll() {
            let logged = match events_log::parse_line(&line.bytes) {
                Ok(Some(logged)) => logged,
                Ok(None) => continue,
                Err(error) => {
                    changes.warnings.push(format!("{}: not a valid events line ({error}); ignored", line.position()));
                    continue;
                }
            };
            let (condition, replicate) = logged.unit();
            let Some(index) = self.condition_index(condition) else { continue };
            match logged {
                Logged::UnitStarted { .. } => {
                    if !self.units.get(&(index, replicate)).is_some_and(Option::is_some) {
                        self.running.insert((index, replicate));
                    }
                }
                Logged::UnitFinished { .. } => {
                    self.running.remove(&(index, replicate));
                }
                Logged::Event { condition, replicate, name, payload, elapsed_ms, .. } => {
                    changes.events.push(SeenEvent { condition, replicate, name, payload, elapsed_ms });
                }
            }
        }
        for line in self.journals.poll() {
            // A sequential session's stop: the last one says whether the run was decided.
            match crate::store::stops::parse::<crate::sequential::Stop>(&line.bytes) {
                Some(Ok(stop)) => {
                    self.decided = stop.reason == crate::sequential::StopReason::Decided;
                    continue;
                }
                Some(Err(why)) => {
                    changes.warnings.push(format!("{}: {why}; ignored", line.position()));
                    continue;
                }
                None => {}
            }
            // As the store reads it: a line that does not parse or fails its checksum is damage.
            let record = match journal::parse_record(&line.bytes) {
                Ok(Some(record)) => record,
                Ok(None) => continue,
                Err(error) => {
                    self.damage.lines += 1;
                    changes.warnings.push(format!("{}: {error}; ignored", line.position()));
                    continue;
                }
            };
            let Some(index) = self.condition_index(&record.condition) else {
                self.damage.rejected += 1;
                changes.warnings.push(format!(
                    "{}: a record of condition '{}', which is not part of the run; ignored",
                    line.position(),
                    record.condition
                ));
                continue;
            };
            // As the store reads it: a record outside the plan, or with another seed than its
            // replicate derives, does not count.
            if !self.planned(record.replicate)
                || !self.run.seed_matches(&record.condition, record.replicate, record.seed)
            {
                self.damage.rejected += 1;
                changes.warnings.push(format!(
                    "{}: a record of {} #{} that is not part of the run's plan; ignored",
                    line.position(),
                    record.condition,
                    record.replicate
                ));
                continue;
            }
            let key = (index, record.replicate);
            self.running.remove(&key);
            let digest =
                |unit: &UnitResult| journal::metrics_digest(unit.metrics.iter().map(|(n, v)| (n.as_str(), *v)));
            // The first success stands; a later success is a duplicate. One with other metrics is
            // damage and puts the unit in doubt (not done), until a success from a later journal
            // than every disagreeing one settles it: the store's rule (`integrity::resolve`).
            if let Some(Some(first)) = self.units.get(&key).copied() {
                if !record.is_ok() {
                    continue;
                }
                let doubt = self.in_doubt.get(&key);
                if doubt.is_some_and(|file| line.path > *file) {
                    self.in_doubt.remove(&key);
                    self.damage.in_doubt = self.damage.in_doubt.saturating_sub(1);
                    self.units.insert(key, Some(digest(&record)));
                    if self.run.manifest.stopping.is_some() {
                        self.sequential_units.insert(key, record.clone());
                    }
                    self.done_count += 1;
                    changes.units.push((record, self.done_count, self.failed_count));
                } else if first != digest(&record) {
                    self.damage.conflicts += 1;
                    changes.warnings.push(format!(
                        "{}: a second successful record of {} #{} whose metrics differ from the first one; \
                         neither counts until the unit runs again",
                        line.position(),
                        record.condition,
                        record.replicate
                    ));
                    let latest = doubt.map_or(line.path.clone(), |file| file.max(&line.path).clone());
                    if self.in_doubt.insert(key, latest).is_none() {
                        self.damage.in_doubt += 1;
                        self.done_count = self.done_count.saturating_sub(1);
                        self.sequential_units.remove(&key);
                    }
                }
                continue;
            }
            let previous = self.units.insert(key, record.is_ok().then(|| digest(&record)));
            if record.is_ok() && self.run.manifest.stopping.is_some() {
                self.sequential_units.insert(key, record.clone());
            }
            if record.is_ok() {
                if self.sums.len() < self.conditions.len() {
                    self.sums.resize(self.conditions.len(), BTreeMap::new());
                }
                for (name, value) in &record.metrics {
                    let entry = self.sums[index].entry(name.clone()).or_insert((0.0, 0));
                    entry.0 += value;
                    entry.1 += 1;
                }
            }
            if self.planned(record.replicate) {
                self.failed_count = self.failed_count.saturating_sub(usize::from(previous.is_some()));
                if record.is_ok() {
                    self.done_count += 1;
                } else {
                    self.failed_count += 1;
                }
            }
            changes.units.push((record, self.done_count, self.failed_count));
        }
        for event in changes.events.iter() {
            self.latest.push_back(SeenEvent {
                condition: event.condition.clone(),
                replicate: event.replicate,
                name: event.name.clone(),
                payload: event.payload.clone(),
                elapsed_ms: event.elapsed_ms,
            });
        }
        while self.latest.len() > self.keep_events {
            self.latest.pop_front();
        }
        if self.baseline.is_none() {
            self.baseline = Some((Instant::now(), self.done()));
        }
        changes
    }

    /// Whether the last poll read the run's files to their ends.
    fn caught_up(&self) -> bool {
        self.journals.caught_up() && self.events.caught_up()
    }

    /// Whether `replicate` is one of the run's planned replicate indices.
    fn planned(&self, replicate: u64) -> bool {
        let first = self.run.manifest.first_replicate;
        (first..first.saturating_add(self.replicates)).contains(&replicate)
    }

    fn manifest_replicates(&self) -> u64 {
        self.run.manifest.replicates
    }

    /// Where the run stands, as the store would say it from what was read so far.
    fn state(&self) -> Tally {
        let planned = crate::store::planned_units(self.conditions.len(), self.replicates);
        let (done, failed) = (self.done_count, self.failed_count);
        let status = Status::of(done, done + failed, planned, self.damage.total(), self.decided);
        Tally { done, failed, planned, status }
    }

    fn done(&self) -> usize {
        self.done_count
    }

    /// Units per second since the first poll, once some finished meanwhile.
    fn rate(&self) -> Option<f64> {
        let (since, done_then) = self.baseline?;
        let seconds = since.elapsed().as_secs_f64();
        let progressed = self.done().saturating_sub(done_then);
        (progressed > 0 && seconds > 0.0).then(|| progressed as f64 / seconds)
    }

    /// Whether every process that ran units of this run is known to have exited: then nothing
    /// more will be written. Only knowable for sessions on this host (by process id).
    fn writers_gone(&self) -> bool {
        let host = crate::store::host_name();
        !self.sessions.is_empty()
            && self.sessions.iter().all(|session| session.host == host && process_gone(&session.writer) == Some(true))
    }

    /// Per condition: (done, failed, running, means of each metric over the successful units).
    fn per_condition(&self) -> Vec<(usize, usize, usize, BTreeMap<String, f64>)> {
        type Sums = BTreeMap<String, (f64, usize)>;
        let mut rows: Vec<(usize, usize, usize, Sums)> = vec![(0, 0, 0, BTreeMap::new()); self.conditions.len()];
        for ((index, replicate), digest) in &self.units {
            let Some(row) = rows.get_mut(*index) else { continue };
            if !self.planned(*replicate) {
                continue;
            }
            if digest.is_some() {
                row.0 += 1;
            } else {
                row.1 += 1;
            }
        }
        for (row, sums) in rows.iter_mut().zip(&self.sums) {
            row.3 = sums.clone();
        }
        for (index, _) in &self.running {
            if let Some(row) = rows.get_mut(*index) {
                row.2 += 1;
            }
        }
        rows.into_iter()
            .map(|(done, failed, running, sums)| {
                let means = sums.into_iter().map(|(name, (sum, n))| (name, sum / n as f64)).collect();
                (done, failed, running, means)
            })
            .collect()
    }

    /// For a run with `--until-decided`: each hypothesis's interval and status so far, replayed
    /// from the units read (as `report` does).
    fn sequential(&self) -> Vec<crate::sequential::SequentialResult> {
        let Some(rule) = &self.run.manifest.stopping else { return Vec::new() };
        let units: Vec<UnitResult> = self.sequential_units.values().cloned().collect();
        crate::sequential::replay(rule, &self.run.manifest.experiment, self.run.manifest.first_replicate, &units)
    }

    /// The view of the run: a headline, a table per condition, the latest events.
    fn render(&self, state: &Tally, with_events: bool) -> String {
        let mut text = String::new();
        let rate = self.rate();
        let remaining = state.planned().saturating_sub(state.done() + state.failed()) as u64;
        let eta = match rate {
            Some(rate) if remaining > 0 => {
                format!(", ETA {}", duration(Duration::from_secs_f64(remaining as f64 / rate)))
            }
            _ => String::new(),
        };
        let rate = rate.map(|r| format!(", {}", rate_text(r))).unwrap_or_default();
        text += &format!(
            "run {}  ({}, started {})\n{}/{} units done, {} failed, {} running{rate}{eta}  [watching {}]\n",
            self.run.manifest.run,
            self.run.manifest.experiment,
            self.run.manifest.created,
            state.done(),
            state.planned(),
            state.failed(),
            self.running.len(),
            duration(self.started.elapsed()),
        );
        let mut table = vec![["condition".to_owned(), "done".into(), "failed".into(), "running".into()]];
        let mut means = vec!["means".to_owned()];
        for (name, (done, failed, running, condition_means)) in self.conditions.iter().zip(self.per_condition()) {
            table.push([name.clone(), format!("{done}/{}", self.replicates), failed.to_string(), running.to_string()]);
            means.push(means_text(&condition_means));
        }
        for (row, means) in summary::align(&table, 1).lines().zip(means) {
            text += &format!("  {row}  {means}\n");
        }
        for result in self.sequential() {
            text += &format!("  sequential {}\n", crate::sequential::line(&result));
        }
        if with_events && !self.latest.is_empty() {
            text += "latest events:\n";
            for event in &self.latest {
                text += &format!("  {}\n", event.text());
            }
        }
        text
    }
}

fn means_text(means: &BTreeMap<String, f64>) -> String {
    means.iter().map(|(name, mean)| format!("{name} {}", summary::number(*mean))).collect::<Vec<_>>().join("  ")
}

fn millis(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.2} ms")
    }
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let cut: String = text.chars().take(max.saturating_sub(3)).collect();
    format!("{cut}...")
}

/// Whether the process that wrote `writer` (`<time>-<nanos>-<pid>`) has exited: `None` when that
/// cannot be told here (no `/proc`).
fn process_gone(writer: &str) -> Option<bool> {
    let pid: u32 = writer.rsplit('-').next()?.parse().ok()?;
    if !std::path::Path::new("/proc/self").exists() {
        return None;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name; `Z` is a zombie: it has exited.
        Ok(stat) => Some(stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))),
        Err(_) => Some(true),
    }
}

/// How the run is shown.
enum View {
    /// On a terminal: one view, redrawn in place; failures scroll above it.
    Live { bar: ProgressBar, last: String },
    /// Piped: plain lines, appended.
    Plain,
}

impl View {
    fn live() -> View {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout_with_hz(4));
        bar.set_style(ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()));
        View::Live { bar, last: String::new() }
    }

    fn header(&mut self, watcher: &Watcher) {
        if let View::Plain = self {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "watching run {} ({}): {} conditions x {} replicates = {} units",
                watcher.run.manifest.run,
                watcher.run.manifest.experiment,
                watcher.conditions.len(),
                watcher.replicates,
                watcher.conditions.len() as u64 * watcher.replicates,
            );
        }
    }

    /// Shows what changed; false when stdout is gone.
    fn update(&mut self, watcher: &Watcher, state: &Tally, changes: &Changes) -> bool {
        for warning in &changes.warnings {
            eprintln!("warning: {warning}");
        }
        match self {
            View::Live { bar, last } => {
                for (unit, ..) in changes.units.iter().filter(|(u, ..)| !u.is_ok()) {
                    bar.println(failure_line(unit));
                }
                let text = watcher.render(state, true);
                if *last != text {
                    bar.set_message(text.trim_end().to_owned());
                    *last = text;
                }
                bar.tick();
                true
            }
            View::Plain => {
                let mut out = std::io::stdout().lock();
                let mut lines = Vec::new();
                for event in &changes.events {
                    lines.push(format!("event {}", event.text()));
                }
                for (unit, done, failed) in &changes.units {
                    // Counts as they were right after this record, so the lines read as a log.
                    let failed = if *failed > 0 { format!(", {failed} failed") } else { String::new() };
                    let counts = format!("{done}/{} done{failed}", state.planned());
                    if unit.is_ok() {
                        let metrics: Vec<String> =
                            unit.metrics.iter().map(|(k, v)| format!("{k}={}", summary::number(*v))).collect();
                        lines.push(format!(
                            "unit {} #{} ok  {}  ({counts})",
                            unit.condition,
                            unit.replicate,
                            metrics.join(" ")
                        ));
                    } else {
                        lines.push(format!("{}  ({counts})", failure_line(unit)));
                    }
                }
                if !changes.units.is_empty() {
                    for result in watcher.sequential() {
                        lines.push(format!("sequential {}", crate::sequential::line(&result)));
                    }
                }
                lines.iter().all(|line| writeln!(out, "{line}").is_ok()) && out.flush().is_ok()
            }
        }
    }

    /// The final view, left on screen (or at the end of the log).
    fn finish(&mut self, watcher: &Watcher, state: &Tally) {
        if let View::Live { bar, .. } = self {
            bar.finish_and_clear();
        }
        let mut out = std::io::stdout().lock();
        let status = match state.status() {
            Status::Incomplete => "incomplete".to_owned(),
            status => status.to_string(),
        };
        let _ = write!(out, "{}", watcher.render(state, matches!(self, View::Live { .. })));
        let _ = writeln!(
            out,
            "run {} {status}: {}/{} units done, {} failed",
            watcher.run.manifest.run,
            state.done(),
            state.planned(),
            state.failed()
        );
        let _ = out.flush();
    }
}

fn failure_line(unit: &UnitResult) -> String {
    let (message, location) = match &unit.error {
        Some(error) => (error.message.lines().next().unwrap_or_default(), error.location.as_deref()),
        None => ("failed", None),
    };
    let location = location.map(|l| format!(" at {l}")).unwrap_or_default();
    format!("unit {} #{} FAILED (seed {}): {message}{location}", unit.condition, unit.replicate, unit.seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_id_that_does_not_exist_is_gone() {
        if std::path::Path::new("/proc/self").exists() {
            assert_eq!(process_gone("20261126-231502-125000000-4294967294"), Some(true));
            let me = format!("x-{}", std::process::id());
            assert_eq!(process_gone(&me), Some(false));
        }
        assert_eq!(process_gone("no-pid-here"), None);
    }

    #[test]
    fn long_payloads_are_clipped() {
        assert_eq!(clip("abcdef", 10), "abcdef");
        assert_eq!(clip("abcdefghijkl", 8), "abcde...");
    }
}
