//! Lines on stderr that do not garble the progress display.
//!
//! While `run` shows its progress display on a terminal, anything written straight to stderr
//! lands in the middle of the bars. Write through this module instead: [`line()`] prints a line
//! above the display (or plainly, when no display is shown), [`stderr`] is an [`std::io::Write`]
//! that does the same line by line, and [`suspend`] hides the display while a closure writes to
//! the terminal however it likes.
//!
//! A `tracing` subscriber writes through it with
//! `tracing_subscriber::fmt().with_writer(crystallize::observe::stderr)`.
//!
//! ```
//! crystallize::observe::line("checkpoint written");
//!
//! use std::io::Write;
//! let mut err = crystallize::observe::stderr();
//! writeln!(err, "round {} of {}", 3, 8).unwrap();
//! ```

use std::io::{self, Write};
use std::sync::{Mutex, RwLock};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// The progress display on screen, if any.
static ACTIVE: RwLock<Option<MultiProgress>> = RwLock::new(None);

/// Rows added to the display by [`status`], by key, until [`release`].
static ROWS: Mutex<Vec<(String, ProgressBar)>> = Mutex::new(Vec::new());

/// Makes `display` the one that [`line`] prints above, until [`release`].
pub(crate) fn claim(display: &MultiProgress) {
    if let Ok(mut active) = ACTIVE.write() {
        *active = Some(display.clone());
    }
}

/// Forgets the display (and clears the rows [`status`] added to it): lines go plainly to
/// stderr again.
pub(crate) fn release() {
    if let Ok(mut rows) = ROWS.lock() {
        for (_, row) in rows.drain(..) {
            row.finish_and_clear();
        }
    }
    if let Ok(mut active) = ACTIVE.write() {
        *active = None;
    }
}

/// Shows `text` as the display's row `key`, added below the bars the first time and updated in
/// place after (how a sequential run's hypothesis stands, pair after pair, without a line per
/// pair). `false` when no display is shown: print a line instead.
pub(crate) fn status(key: &str, text: &str) -> bool {
    let Some(display) = active() else { return false };
    let Ok(mut rows) = ROWS.lock() else { return false };
    match rows.iter().find(|(name, _)| name == key) {
        Some((_, row)) => row.set_message(text.to_owned()),
        None => {
            let style = ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_spinner());
            let row = display.add(ProgressBar::new_spinner().with_style(style));
            row.set_message(text.to_owned());
            rows.push((key.to_owned(), row));
        }
    }
    true
}

fn active() -> Option<MultiProgress> {
    ACTIVE.read().ok().and_then(|active| active.clone())
}

/// Prints `text` and a newline on stderr, above the progress display when one is shown.
pub fn line(text: impl AsRef<str>) {
    let text = text.as_ref();
    match active() {
        Some(display) if display.println(text).is_ok() => {}
        _ => {
            let mut err = io::stderr().lock();
            let _ = writeln!(err, "{text}");
            let _ = err.flush();
        }
    }
}

/// Runs `f` with the progress display (if any) cleared from the screen, and redraws it after:
/// for code that writes to the terminal directly.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    match active() {
        Some(display) => display.suspend(f),
        None => f(),
    }
}

/// A writer to stderr that keeps the progress display intact: complete lines are printed with
/// [`line()`], a trailing partial line when the writer is flushed or dropped.
pub fn stderr() -> Stderr {
    Stderr { pending: Vec::new() }
}

/// What [`stderr()`] returns.
#[derive(Debug)]
pub struct Stderr {
    pending: Vec<u8>,
}

impl Stderr {
    fn emit_complete_lines(&mut self) {
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let rest = self.pending.split_off(end + 1);
            let mut text = std::mem::replace(&mut self.pending, rest);
            text.pop();
            line(String::from_utf8_lossy(&text));
        }
    }
}

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        self.emit_complete_lines();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.emit_complete_lines();
        if !self.pending.is_empty() {
            let text = std::mem::take(&mut self.pending);
            line(String::from_utf8_lossy(&text));
        }
        Ok(())
    }
}

impl Drop for Stderr {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}
