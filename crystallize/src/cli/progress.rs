//! The progress display of `run`: on stderr, one bar for the whole run (units done / planned,
//! rate, ETA, failures, and each named limit's permits in use and units waiting for one) and one
//! line per condition (done / planned, running, failed). It hides
//! itself when stderr is not a terminal, so piped output and files get no control codes, and
//! lines printed through [`crate::console`] (crystallize's own, and a `tracing` subscriber's
//! that writes through it) appear above it instead of garbling it.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::events::{Interest, Observer, UnitKey};
use crate::results::{LimitUse, LimitsInUse};
use crate::runner::{RunInfo, UnitResult};

/// With more conditions than this, only the total bar is shown.
const MAX_CONDITION_LINES: usize = 12;

/// The progress display of `run` and `stream`: an [`Observer`] drawing with indicatif.
///
/// ```no_run
/// # fn demo() -> Result<(), crystallize::Error> {
/// use crystallize::{observe::Progress, session::Session};
///
/// // Hidden unless stderr is a terminal.
/// Session::named("social_deception").observer(Progress::new()).run()?;
/// # Ok(()) }
/// ```
pub struct Progress {
    display: MultiProgress,
    visible: bool,
    /// Whether [`crate::console`] prints above this display.
    owns_console: bool,
    total: Option<ProgressBar>,
    conditions: HashMap<Arc<str>, ConditionLine>,
    failed: u64,
}

struct ConditionLine {
    bar: ProgressBar,
    running: u64,
    failed: u64,
}

impl ConditionLine {
    fn refresh(&self) {
        let mut message = String::new();
        if self.running > 0 {
            let _ = write!(message, "{} running", self.running);
        }
        if self.failed > 0 {
            let _ = write!(message, "{}{} failed", if message.is_empty() { "" } else { ", " }, self.failed);
        }
        self.bar.set_message(message);
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Progress {
    /// A display on stderr, hidden when stderr is not a terminal (or `TERM=dumb`). `NO_COLOR`
    /// does not hide it: the display has no colour to remove. While it is shown,
    /// [`crate::console::line`] prints above it.
    pub fn new() -> Progress {
        let terminal = std::io::stderr().is_terminal() && !matches!(std::env::var_os("TERM"), Some(t) if t == "dumb");
        let target = if terminal { terminal_target() } else { ProgressDrawTarget::hidden() };
        let mut progress = Progress::to_target(target);
        progress.owns_console = progress.visible;
        progress
    }

    /// A display drawn to `target`, for instance an in-memory terminal
    /// (`ProgressDrawTarget::term_like`). It leaves `crate::console` alone.
    pub fn to_target(target: ProgressDrawTarget) -> Progress {
        let visible = !target.is_hidden();
        Progress {
            display: MultiProgress::with_draw_target(target),
            visible,
            owns_console: false,
            total: None,
            conditions: HashMap::new(),
            failed: 0,
        }
    }

    /// Whether anything is drawn.
    pub fn is_visible(&self) -> bool {
        self.visible
    }

    fn refresh_total(&self) {
        if let Some(total) = &self.total {
            total.set_message(if self.failed > 0 { format!("{} failed", self.failed) } else { String::new() });
        }
    }
}

/// What the display draws on when stderr is a terminal: stderr as a plain [`indicatif::TermLike`].
/// indicatif's own terminal target (`ProgressDrawTarget::stderr`) hides everything when
/// `NO_COLOR` is set or `TERM` is unset, which would make `NO_COLOR` mean "no progress".
fn terminal_target() -> ProgressDrawTarget {
    ProgressDrawTarget::term_like_with_hz(Box::new(console::Term::buffered_stderr()), 10)
}

fn total_style(limits: LimitsInUse) -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} units  {rate}  ETA {eta_}  {msg}{limits}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
    .with_key("rate", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
        let _ = w.write_str(&rate(state.pos(), state.elapsed()));
    })
    .with_key("eta_", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
        let _ = w.write_str(&eta(state.pos(), state.len().unwrap_or(0), state.elapsed()));
    })
    // Read at every draw (four times a second): units waiting on a model server's limit are
    // what a slow run is doing.
    .with_key("limits", move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
        let _ = w.write_str(&limits_text(&limits.now()));
    })
}

/// `  [ollama 2/2, 5 waiting]`, or nothing without limits.
fn limits_text(uses: &[LimitUse]) -> String {
    if uses.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = uses.iter().map(LimitUse::describe).collect();
    format!("  [{}]", parts.join("; "))
}

fn condition_style() -> ProgressStyle {
    ProgressStyle::with_template("  {prefix} {bar:24} {pos}/{len}  {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// Units per second (or minute, or hour, whichever reads best).
pub(crate) fn rate(done: u64, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    if done == 0 || seconds <= 0.0 {
        return "-/s".into();
    }
    rate_text(done as f64 / seconds)
}

/// A rate given in units per second, per minute or per hour, whichever reads best.
pub(crate) fn rate_text(per_second: f64) -> String {
    if per_second >= 1.0 {
        format!("{per_second:.1}/s")
    } else if per_second * 60.0 >= 1.0 {
        format!("{:.1}/min", per_second * 60.0)
    } else {
        format!("{:.1}/h", per_second * 3600.0)
    }
}

/// The time left at the rate so far: elapsed / done * remaining; `-` before the first unit.
pub(crate) fn eta(done: u64, planned: u64, elapsed: Duration) -> String {
    if done == 0 {
        return "-".into();
    }
    let left = elapsed.as_secs_f64() / done as f64 * planned.saturating_sub(done) as f64;
    duration(Duration::from_secs_f64(left.min(1e9)))
}

/// `42s`, `3m05s`, `1h02m`.
pub(crate) fn duration(duration: Duration) -> String {
    let seconds = duration.as_secs_f64().round() as u64;
    match seconds {
        0..=59 => format!("{seconds}s"),
        60..=3599 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60),
    }
}

impl Observer for Progress {
    fn run_started(&mut self, run: &RunInfo) {
        let style = total_style(run.limits.clone());
        let total = self.display.add(ProgressBar::new(run.units_planned as u64).with_style(style));
        total.set_prefix(run.experiment.clone());
        if run.conditions.len() <= MAX_CONDITION_LINES {
            let width = run.conditions.iter().map(|c| c.chars().count()).max().unwrap_or(0);
            for (index, name) in run.conditions.iter().enumerate() {
                let planned = run.units_per_condition.get(index).copied().unwrap_or(run.replicates.len());
                let bar = self.display.add(ProgressBar::new(planned as u64).with_style(condition_style()));
                bar.set_prefix(format!("{name:<width$}"));
                self.conditions.insert(Arc::from(name.as_str()), ConditionLine { bar, running: 0, failed: 0 });
            }
        }
        if self.visible {
            total.enable_steady_tick(Duration::from_millis(250));
        }
        total.tick();
        self.total = Some(total);
        if self.owns_console {
            crate::console::claim(&self.display);
        }
    }

    fn interest(&self) -> Interest {
        Interest { unit_started: true, ..Interest::RESULTS }
    }

    fn unit_started(&mut self, unit: &UnitKey) {
        if let Some(line) = self.conditions.get_mut(&unit.condition) {
            line.running += 1;
            line.refresh();
        }
    }

    fn unit_finished(&mut self, result: &UnitResult) {
        if !result.is_ok() {
            self.failed += 1;
            if self.visible {
                let error = result.error.as_ref().map(|e| e.message.as_str()).unwrap_or("failed");
                let first_line = error.lines().next().unwrap_or_default();
                let _ =
                    self.display.println(format!("FAILED {} #{}: {first_line}", result.condition, result.replicate));
            }
        }
        self.refresh_total();
        if let Some(total) = &self.total {
            total.inc(1);
        }
        if let Some(line) = self.conditions.get_mut(result.condition.as_str()) {
            line.running = line.running.saturating_sub(1);
            if !result.is_ok() {
                line.failed += 1;
            }
            line.bar.inc(1);
            line.refresh();
        }
    }

    fn run_finished(&mut self, _results: &[UnitResult]) {
        if self.owns_console {
            crate::console::release();
        }
        for line in self.conditions.values() {
            line.bar.finish_and_clear();
        }
        if let Some(total) = &self.total {
            total.finish_and_clear();
        }
        let _ = self.display.clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.owns_console {
            crate::console::release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_terminal_target_is_drawn_whatever_no_color_and_the_colour_support_say() {
        // indicatif's terminal target would be hidden here (stderr is not a terminal in tests,
        // and would be with NO_COLOR set); the one `new` uses on a terminal never is.
        assert!(!terminal_target().is_hidden());
        assert!(Progress::to_target(terminal_target()).is_visible());
    }

    #[test]
    fn limits_read_as_permits_in_use_and_units_waiting() {
        let use_of = |name: &str, in_use, waiting| LimitUse { name: name.into(), capacity: 2, in_use, waiting };
        assert_eq!(limits_text(&[]), "");
        assert_eq!(limits_text(&[use_of("ollama", 1, 0)]), "  [ollama 1/2]");
        assert_eq!(
            limits_text(&[use_of("ollama", 2, 5), use_of("judge", 0, 0)]),
            "  [ollama 2/2, 5 waiting; judge 0/2]"
        );
    }

    #[cfg(feature = "async")]
    #[test]
    fn the_total_line_shows_units_waiting_on_a_limit_live() {
        use std::sync::Arc;
        let limits = Arc::new(crate::limits::Limits::new([("ollama", 1)]));
        let reader = limits.clone();
        let in_use = LimitsInUse::of(move || reader.uses());
        assert_eq!(limits_text(&in_use.now()), "  [ollama 0/1]");
        let held = crate::limits::acquire_blocking(Some(limits.clone()), "ollama");
        // Two units wait on the held permit, each on its own thread, as sync units do.
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let limits = limits.clone();
                std::thread::spawn(move || drop(crate::limits::acquire_blocking(Some(limits), "ollama")))
            })
            .collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while in_use.now()[0].waiting < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(limits_text(&in_use.now()), "  [ollama 1/1, 2 waiting]");
        drop(held);
        for waiter in waiters {
            waiter.join().expect("a waiter got its permit");
        }
        assert_eq!(limits_text(&in_use.now()), "  [ollama 0/1]");
    }

    #[test]
    fn durations_rates_and_etas_read_well() {
        assert_eq!(duration(Duration::from_secs(42)), "42s");
        assert_eq!(duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(duration(Duration::from_secs(3720)), "1h02m");
        assert_eq!(rate(0, Duration::from_secs(3)), "-/s");
        assert_eq!(rate(6, Duration::from_secs(3)), "2.0/s");
        assert_eq!(rate(3, Duration::from_secs(60)), "3.0/min");
        assert_eq!(eta(0, 10, Duration::from_secs(5)), "-");
        assert_eq!(eta(2, 10, Duration::from_secs(10)), "40s");
        assert_eq!(eta(10, 10, Duration::from_secs(10)), "0s");
    }
}
