//! Helpers for end-to-end tests that run an example binary as a user would.
//!
//! ```no_run
//! use crystallize_tests::Command;
//!
//! // In an integration test of the example package: env!("CARGO_BIN_EXE_social_deception").
//! let bin = "target/debug/social_deception";
//! let out = Command::new(bin).args(["run", "--json"]).run();
//! out.assert_code(0);
//! let summary = out.json();
//! out.check(summary["units"].is_array(), "`units` is an array");
//! ```
//!
//! - Every command runs in a fresh temporary working directory (a run may write a `.crystallize/`
//!   store into its cwd), removed when its [`Output`] is dropped; [`Command::current_dir`] reuses
//!   a directory instead, e.g. to run a second command against the store of a first.
//! - The inherited environment is kept, except the variables that change what the binaries do
//!   or print ([`clear_environment`]: every `CRYSTALLIZE_*`, `NO_COLOR`, `CLICOLOR`,
//!   `CLICOLOR_FORCE`, ...), so that `NO_COLOR=1 cargo test` or a developer's
//!   `CRYSTALLIZE_STORE` cannot change a test's outcome; [`Command::env`] sets what a test needs.
//! - stdin is empty, stdout and stderr are captured (so neither is a terminal), and a command
//!   that runs longer than its timeout is killed and fails the test instead of hanging CI.
//! - Every assertion on an [`Output`] fails with the command, its directory, its exit code, its
//!   stdout and its stderr, so a failure in CI can be understood without rerunning it.
//! - [`fake_ollama`] is a fake Ollama server on 127.0.0.1, for examples that call a model over HTTP.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt::{Display, Write as _};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

pub mod fake_ollama;

/// How long a command may run before it is killed, unless [`Command::timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A command line to run: the program, its arguments, extra environment and a timeout.
#[derive(Clone, Debug)]
pub struct Command {
    program: OsString,
    args: Vec<OsString>,
    env: BTreeMap<OsString, OsString>,
    dir: Option<PathBuf>,
    timeout: Duration,
}

impl Command {
    /// A command running `program` (typically `env!("CARGO_BIN_EXE_<name>")`) without arguments.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: BTreeMap::new(),
            dir: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Command {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets one environment variable of the child.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Command {
        self.env.insert(key.as_ref().to_owned(), value.as_ref().to_owned());
        self
    }

    /// Sets several environment variables of the child.
    pub fn envs<I, K, V>(mut self, vars: I) -> Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (key, value) in vars {
            self.env.insert(key.as_ref().to_owned(), value.as_ref().to_owned());
        }
        self
    }

    /// Runs in `dir` (which must exist) instead of a fresh temporary directory.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Command {
        self.dir = Some(dir.as_ref().to_owned());
        self
    }

    /// Kills the command and fails the test if it runs longer than `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Command {
        self.timeout = timeout;
        self
    }

    /// The command line as a user would type it (arguments shell-quoted where needed).
    pub fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| shell_quote(&a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs the command to completion and captures what it printed. Panics (with everything
    /// captured so far) if it cannot be started or does not finish within its timeout.
    #[track_caller]
    pub fn run(self) -> Output {
        let (temp, dir) = match &self.dir {
            Some(dir) => (None, dir.clone()),
            None => {
                let temp = TempDir::new();
                let dir = temp.path().to_owned();
                (Some(temp), dir)
            }
        };
        let mut command = std::process::Command::new(&self.program);
        command.args(&self.args).current_dir(&dir).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        clear_environment(&mut command);
        command.envs(&self.env);

        let started = Instant::now();
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => panic!("could not start `{}` in {}: {error}", self.display(), dir.display()),
        };
        let stdout = read_in_background(child.stdout.take());
        let stderr = read_in_background(child.stderr.take());
        let mut timed_out = false;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if started.elapsed() >= self.timeout => {
                    timed_out = true;
                    let _ = child.kill();
                    break child.wait().ok();
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(error) => panic!("waiting for `{}` failed: {error}", self.display()),
            }
        };
        let output = Output {
            command: self.display(),
            dir,
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
            elapsed: started.elapsed(),
            _temp: temp,
        };
        if timed_out {
            output.fail(format!("timed out after {:?} and was killed", self.timeout));
        }
        output
    }
}

/// Variables that change what crystallize or the example print or do, besides every
/// `CRYSTALLIZE_*` one: colour (`NO_COLOR`, `CLICOLOR`, `CLICOLOR_FORCE`, `FORCE_COLOR`), the
/// terminal's size (`COLUMNS`, `LINES`), the example's own (`FOLLOW_CONDITION`, `SOCIAL_DECEPTION_EXIT_IN_UNIT`)
/// and those of a job array (`SLURM_ARRAY_TASK_ID`, ...), which `run --shard auto` reads.
pub const CLEARED_VARIABLES: &[&str] = &[
    "NO_COLOR",
    "CLICOLOR",
    "CLICOLOR_FORCE",
    "FORCE_COLOR",
    "COLUMNS",
    "LINES",
    "FOLLOW_CONDITION",
    "SOCIAL_DECEPTION_EXIT_IN_UNIT",
    // A job array's: `run --shard auto` reads them, and a test run inside a Slurm job must not.
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_JOB_ID",
    "JOB_COMPLETION_INDEX",
    "AWS_BATCH_JOB_ARRAY_INDEX",
    "AWS_BATCH_JOB_ARRAY_SIZE",
    "AWS_BATCH_JOB_ID",
];

/// Removes from `command`'s environment every variable of the caller's that could change a test's
/// outcome: every `CRYSTALLIZE_*` and the [`CLEARED_VARIABLES`]. A test sets what it needs after.
pub fn clear_environment(command: &mut std::process::Command) {
    clear_variables(command, std::env::vars_os().map(|(key, _)| key));
}

/// Removes those of the caller's variables `names` that [`clear_environment`] removes.
fn clear_variables(command: &mut std::process::Command, names: impl IntoIterator<Item = OsString>) {
    for key in names {
        let name = key.to_string_lossy();
        if name.starts_with("CRYSTALLIZE_") || CLEARED_VARIABLES.contains(&name.as_ref()) {
            command.env_remove(&key);
        }
    }
}

/// Runs `program` with `args` in a fresh temporary directory; see [`Command`].
#[track_caller]
pub fn run<I, S>(program: impl AsRef<OsStr>, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(program).args(args).run()
}

fn read_in_background(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// What a finished command printed, and how it exited. Keeps its temporary directory alive.
#[derive(Debug)]
pub struct Output {
    /// The command line, for messages.
    pub command: String,
    /// The working directory it ran in.
    pub dir: PathBuf,
    /// How it exited; `None` if that could not be observed.
    pub status: Option<ExitStatus>,
    /// Everything written to stdout (lossily decoded as UTF-8).
    pub stdout: String,
    /// Everything written to stderr (lossily decoded as UTF-8).
    pub stderr: String,
    /// Wall time from start to exit.
    pub elapsed: Duration,
    _temp: Option<TempDir>,
}

impl Output {
    /// The exit code; `None` when killed by a signal.
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// stdout split into lines.
    pub fn stdout_lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// stderr split into lines.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }

    /// Everything about this command, for a failure message.
    pub fn report(&self) -> String {
        let status = match self.status {
            Some(status) => match status.code() {
                Some(code) => code.to_string(),
                None => format!("none ({status})"),
            },
            None => "unknown".into(),
        };
        let mut text = String::new();
        let _ = writeln!(text, "command:   {}", self.command);
        let _ = writeln!(text, "cwd:       {}", self.dir.display());
        let _ = writeln!(text, "exit code: {status} after {:.2?}", self.elapsed);
        let _ = writeln!(text, "--- stdout ---\n{}", clip(&self.stdout));
        let _ = write!(text, "--- stderr ---\n{}", clip(&self.stderr));
        text
    }

    /// Fails the test: `what` went wrong, then the command's [`report`](Output::report).
    #[track_caller]
    pub fn fail(&self, what: impl Display) -> ! {
        panic!("{what}\n{}", self.report())
    }

    /// Fails the test with `what` unless `ok`.
    #[track_caller]
    pub fn check(&self, ok: bool, what: impl Display) -> &Output {
        if !ok {
            self.fail(format!("check failed: {what}"));
        }
        self
    }

    /// Fails the test unless `left == right`.
    #[track_caller]
    pub fn check_eq<T: PartialEq + std::fmt::Debug>(&self, left: T, right: T, what: impl Display) -> &Output {
        if left != right {
            self.fail(format!("check failed: {what}\n  left:  {left:?}\n  right: {right:?}"));
        }
        self
    }

    /// Fails the test unless the command exited with `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Output {
        if self.code() != Some(code) {
            self.fail(format!("expected exit code {code}"));
        }
        self
    }

    /// Fails the test unless stdout contains `needle`.
    #[track_caller]
    pub fn assert_stdout_contains(&self, needle: &str) -> &Output {
        if !self.stdout.contains(needle) {
            self.fail(format!("expected stdout to contain {needle:?}"));
        }
        self
    }

    /// Fails the test unless stderr contains `needle`.
    #[track_caller]
    pub fn assert_stderr_contains(&self, needle: &str) -> &Output {
        if !self.stderr.contains(needle) {
            self.fail(format!("expected stderr to contain {needle:?}"));
        }
        self
    }

    /// stdout parsed as exactly one JSON value (surrounding whitespace allowed, nothing else).
    #[track_caller]
    pub fn json(&self) -> Value {
        match serde_json::from_str(&self.stdout) {
            Ok(value) => value,
            Err(error) => self.fail(format!("stdout is not one JSON value: {error}")),
        }
    }

    /// stdout parsed as JSON Lines: one JSON value per non-empty line.
    #[track_caller]
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(index, line)| match serde_json::from_str(line) {
                Ok(value) => value,
                Err(error) => self.fail(format!("stdout line {} is not JSON: {error}\n  line: {line}", index + 1)),
            })
            .collect()
    }

    /// The value at JSON `pointer` (RFC 6901, e.g. `/units/0/seed`) in `value`; fails if absent.
    #[track_caller]
    pub fn at<'v>(&self, value: &'v Value, pointer: &str) -> &'v Value {
        match value.pointer(pointer) {
            Some(found) => found,
            None => self.fail(format!("JSON has nothing at {pointer}")),
        }
    }

    /// The unsigned integer at `pointer` in `value`; fails if absent or not one.
    #[track_caller]
    pub fn u64_at(&self, value: &Value, pointer: &str) -> u64 {
        match self.at(value, pointer).as_u64() {
            Some(n) => n,
            None => {
                self.fail(format!("JSON at {pointer} is not an unsigned integer: {}", value.pointer(pointer).unwrap()))
            }
        }
    }

    /// The number at `pointer` in `value`; fails if absent or not one.
    #[track_caller]
    pub fn f64_at(&self, value: &Value, pointer: &str) -> f64 {
        match self.at(value, pointer).as_f64() {
            Some(n) => n,
            None => self.fail(format!("JSON at {pointer} is not a number: {}", value.pointer(pointer).unwrap())),
        }
    }

    /// The string at `pointer` in `value`; fails if absent or not one.
    #[track_caller]
    pub fn str_at<'v>(&self, value: &'v Value, pointer: &str) -> &'v str {
        match self.at(value, pointer).as_str() {
            Some(text) => text,
            None => self.fail(format!("JSON at {pointer} is not a string: {}", value.pointer(pointer).unwrap())),
        }
    }
}

/// Long outputs are cut in the middle so a failure message stays readable.
fn clip(text: &str) -> String {
    const KEEP: usize = 8_000;
    if text.len() <= 2 * KEEP {
        return text.to_owned();
    }
    let head = text.char_indices().take_while(|(i, _)| *i < KEEP).last().map_or(0, |(i, c)| i + c.len_utf8());
    let tail = text.char_indices().find(|(i, _)| *i >= text.len() - KEEP).map_or(text.len(), |(i, _)| i);
    format!("{}\n[... {} bytes cut ...]\n{}", &text[..head], tail - head, &text[tail..])
}

/// `text` quoted for a POSIX shell, unless it needs no quoting.
pub fn shell_quote(text: &str) -> String {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "_-.=/:,+@%".contains(c)) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Splits a command line into words as a POSIX shell would for the simple cases a CLI prints:
/// whitespace separates, single and double quotes group, a backslash escapes outside single
/// quotes. Returns `None` for an unterminated quote.
pub fn shell_split(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => words.extend(word.take()),
            '\'' => {
                let word = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                let word = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => word.push(chars.next()?),
                        c => word.push(c),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).push(chars.next()?),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Some(words)
}

/// A directory under the system's temporary directory, removed (with its contents) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a new, empty, uniquely named directory; panics if it cannot.
    pub fn new() -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        for _ in 0..100 {
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
            let name = format!(
                "crystallize-e2e-{}-{}-{nanos:08x}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            let path = base.join(name);
            // `create_dir` (not `_all`) fails if the path exists: the directory is ours alone.
            match std::fs::create_dir(&path) {
                Ok(()) => return TempDir { path },
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(error) => panic!("could not create a temporary directory in {}: {error}", base.display()),
            }
        }
        panic!("could not create a uniquely named temporary directory in {}", base.display())
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Default for TempDir {
    fn default() -> Self {
        TempDir::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A run store in a temporary directory, and an example binary run against it: every command
/// gets `CRYSTALLIZE_STORE` set to the store and runs in its directory.
pub struct Store {
    program: PathBuf,
    dir: TempDir,
}

impl Store {
    /// An empty store for `program` (e.g. `env!("CARGO_BIN_EXE_social_deception")`).
    pub fn new(program: impl AsRef<Path>) -> Store {
        Store { program: program.as_ref().to_path_buf(), dir: TempDir::new() }
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `program ARGS` against this store, not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        Command::new(&self.program).args(args).env("CRYSTALLIZE_STORE", self.path()).current_dir(self.path())
    }

    /// Runs `program ARGS` against this store (a 2-minute timeout).
    #[track_caller]
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).timeout(Duration::from_secs(120)).run()
    }

    /// `program ARGS` against this store as a process to start by hand (empty stdin; set stdout
    /// and stderr as the test needs), for tests that read or signal it while it runs.
    pub fn process(&self, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(&self.program);
        clear_environment(&mut command);
        command.args(args).env("CRYSTALLIZE_STORE", self.path()).current_dir(self.path()).stdin(Stdio::null());
        command
    }

    /// Starts `program ARGS` against this store without waiting for it (stdio discarded).
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.process(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", self.program.display()))
    }

    /// `runs --json`: the stored runs.
    #[track_caller]
    pub fn runs(&self) -> Vec<Value> {
        let out = self.run(&["runs", "--json"]);
        out.assert_code(0);
        out.json().as_array().cloned().unwrap_or_else(|| out.fail("`runs --json` is not a list"))
    }

    /// The one stored run; fails unless there is exactly one.
    #[track_caller]
    pub fn only_run(&self) -> Value {
        let runs = self.runs();
        assert_eq!(runs.len(), 1, "expected exactly one run: {runs:?}");
        runs[0].clone()
    }

    /// The ids of the stored runs.
    #[track_caller]
    pub fn run_ids(&self) -> Vec<String> {
        self.runs().iter().map(|r| r["id"].as_str().expect("a run id").to_owned()).collect()
    }

    /// The directory of run `id`.
    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.path().join("runs").join(id)
    }
}

/// `(condition, replicate) -> (seed, metrics)` of every unit in a `run --json`/`report --json`.
pub fn units_by_key(summary: &Value) -> BTreeMap<(String, u64), (u64, Value)> {
    summary["units"]
        .as_array()
        .expect("units")
        .iter()
        .map(|u| {
            let key =
                (u["condition"].as_str().expect("condition").to_owned(), u["replicate"].as_u64().expect("replicate"));
            (key, (u["seed"].as_u64().expect("seed"), u["metrics"].clone()))
        })
        .collect()
}

/// How many journal records each unit has, over every journal file of the run in `run_dir`.
pub fn records_per_unit(run_dir: &Path) -> BTreeMap<(String, u64), usize> {
    let mut counts = BTreeMap::new();
    for entry in std::fs::read_dir(run_dir).expect("run directory") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if !name.starts_with("journal-") {
            continue;
        }
        for line in std::fs::read_to_string(&path).expect("journal").lines() {
            let Ok(record) = serde_json::from_str::<Value>(line) else { continue };
            if record["type"] == "unit" {
                let key =
                    (record["condition"].as_str().unwrap_or("?").to_owned(), record["replicate"].as_u64().unwrap_or(0));
                *counts.entry(key).or_insert(0) += 1;
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_split_undoes_shell_quote() {
        let words = ["debug", "social_deception/baseline", "--set", "name=it's a b", "", "x\"y"];
        let line = words.iter().map(|w| shell_quote(w)).collect::<Vec<_>>().join(" ");
        assert_eq!(shell_split(&line).unwrap(), words);
        assert_eq!(shell_split("a 'b"), None);
    }

    #[test]
    fn temp_dirs_are_distinct_and_removed() {
        let a = TempDir::new();
        let b = TempDir::new();
        assert_ne!(a.path(), b.path());
        let path = a.path().to_owned();
        std::fs::write(path.join("f"), "x").unwrap();
        drop(a);
        assert!(!path.exists());
    }

    #[test]
    fn the_callers_colour_and_store_variables_do_not_reach_the_child() {
        let caller = ["PATH", "NO_COLOR", "CRYSTALLIZE_STORE", "HOME", "CLICOLOR_FORCE", "CRYSTALLIZE_CONFIG", "TERM"];
        let mut command = std::process::Command::new("env");
        clear_variables(&mut command, caller.iter().map(OsString::from));
        // `env_remove` is what hides a caller's variable; `get_envs` lists every removal.
        let removed: Vec<String> = command
            .get_envs()
            .filter(|(_, value)| value.is_none())
            .map(|(key, _)| key.to_string_lossy().into_owned())
            .collect();
        assert_eq!(removed, ["CLICOLOR_FORCE", "CRYSTALLIZE_CONFIG", "CRYSTALLIZE_STORE", "NO_COLOR"]);
    }

    #[test]
    fn clip_keeps_both_ends() {
        let text = format!("{}{}", "a".repeat(10_000), "b".repeat(10_000));
        let clipped = clip(&text);
        assert!(clipped.starts_with('a') && clipped.ends_with('b') && clipped.len() < text.len());
    }
}
