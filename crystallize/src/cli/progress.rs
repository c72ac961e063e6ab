//! A one-line progress count on stderr while a run goes, only when stderr is a terminal.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use crate::events::Observer;
use crate::runner::{RunInfo, UnitResult};

/// A one-line progress count on stderr, only when stderr is a terminal (so piped output and
/// files get no control codes).
pub(super) struct Progress {
    enabled: bool,
    planned: usize,
    done: usize,
    failed: usize,
    started: Instant,
    last_draw: Option<Instant>,
}

impl Progress {
    pub(super) fn new() -> Progress {
        Progress {
            enabled: std::io::stderr().is_terminal(),
            planned: 0,
            done: 0,
            failed: 0,
            started: Instant::now(),
            last_draw: None,
        }
    }

    fn draw(&mut self, force: bool) {
        if !self.enabled || (!force && self.last_draw.is_some_and(|t| t.elapsed() < Duration::from_millis(100))) {
            return;
        }
        self.last_draw = Some(Instant::now());
        let elapsed = self.started.elapsed().as_secs_f64();
        let eta = if self.done > 0 {
            format!(", eta {:.0} s", elapsed / self.done as f64 * (self.planned - self.done) as f64)
        } else {
            String::new()
        };
        let failed = if self.failed > 0 { format!(", {} failed", self.failed) } else { String::new() };
        eprint!("\r\x1b[2K{}/{} units{failed}, {elapsed:.1} s{eta}", self.done, self.planned);
    }
}

impl Observer for Progress {
    fn run_started(&mut self, run: &RunInfo) {
        self.planned = run.units_planned;
        self.started = Instant::now();
        self.draw(true);
    }

    fn unit_finished(&mut self, result: &UnitResult) {
        self.done += 1;
        if !result.is_ok() {
            self.failed += 1;
        }
        self.draw(false);
    }

    fn run_finished(&mut self, _results: &[UnitResult]) {
        if self.enabled {
            eprint!("\r\x1b[2K");
        }
    }
}
