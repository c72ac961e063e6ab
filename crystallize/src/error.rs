//! The library's errors. Each says what was wrong, where, and what would be valid. All of them
//! are detected before any unit runs, and the command line maps them to exit code 2.

use thiserror::Error;

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Bad input to a command, or an inconsistent registry.
///
/// Its `Debug` is its message, so that `fn main() -> Result<(), crystallize::Error>` prints what
/// went wrong and how to fix it rather than the variant's name.
#[derive(Error)]
pub enum Error {
    /// Nothing registered an experiment in this binary.
    #[error(
        "no experiments are registered in this binary. Annotate a function with #[experiment(...)] \
         in this crate; if your experiments live in a library crate, name it in the main macro \
         (`crystallize::main!(my_experiments)`) so the linker keeps it"
    )]
    EmptyRegistry,
    /// The registered parts contradict each other.
    #[error("the registered experiments are inconsistent:\n{0}")]
    InvalidRegistry(String),
    /// No experiment has this name.
    #[error("unknown experiment '{name}'{} experiments: {valid}", did_you_mean(suggestion))]
    UnknownExperiment {
        /// What the user wrote.
        name: String,
        /// The closest valid name.
        suggestion: Option<String>,
        /// Every valid name.
        valid: String,
    },
    /// Several experiments are registered and none was named.
    #[error("this binary has several experiments; name one: {valid}")]
    ExperimentRequired {
        /// Every valid name.
        valid: String,
    },
    /// The experiment has no treatment of this name.
    #[error("unknown treatment '{name}' of experiment '{experiment}'{} treatments: {valid}", did_you_mean(suggestion))]
    UnknownTreatment {
        /// The experiment.
        experiment: String,
        /// What the user wrote.
        name: String,
        /// The closest valid name.
        suggestion: Option<String>,
        /// Every valid name.
        valid: String,
    },
    /// No condition has this name.
    #[error("unknown condition '{name}'{} conditions: {valid}", did_you_mean(suggestion))]
    UnknownCondition {
        /// What the user wrote.
        name: String,
        /// The closest valid name.
        suggestion: Option<String>,
        /// Every valid name.
        valid: String,
    },
    /// A hypothesis names a metric that its experiment does not declare (an experiment that
    /// returns a `#[derive(Metrics)]` struct declares its fields).
    #[error(
        "unknown metric '{name}' of experiment '{experiment}'{} declared metrics: {valid}",
        did_you_mean(suggestion)
    )]
    UndeclaredMetric {
        /// The experiment.
        experiment: String,
        /// What the user wrote.
        name: String,
        /// The closest declared metric.
        suggestion: Option<String>,
        /// Every declared metric.
        valid: String,
    },
    /// Several experiments have a condition of this name.
    #[error("'{name}' is a condition of several experiments; write one of: {candidates}")]
    AmbiguousCondition {
        /// What the user wrote.
        name: String,
        /// `EXP/COND` spellings that would be unambiguous.
        candidates: String,
    },
    /// `--set` (or the config file) gave a param a value of the wrong type.
    #[error("bad value for param '{key}' (type {rust_type}) in {origin}: {problem}")]
    BadParamValue {
        /// The param.
        key: String,
        /// Its declared Rust type.
        rust_type: String,
        /// Where the value came from: `--set`, or `path:line` of the config file.
        origin: String,
        /// What is wrong with the value.
        problem: String,
    },
    /// No stored run has this id.
    #[error("no run '{id}' in the store {store}{} runs: {known}", did_you_mean(suggestion))]
    UnknownRun {
        /// What the user wrote.
        id: String,
        /// The store directory.
        store: String,
        /// The closest id.
        suggestion: Option<String>,
        /// Every id in the store.
        known: String,
    },
    /// `--resume` without a run id found nothing to resume.
    #[error(
        "no unfinished run of experiment '{experiment}' in the store {store}; start one with `run` (runs: {known})"
    )]
    NothingToResume {
        /// The experiment.
        experiment: String,
        /// The store directory.
        store: String,
        /// Stored runs of the experiment with their status.
        known: String,
    },
    /// The configuration or code of a run changed since it started.
    #[error(
        "run {run} cannot be resumed: its configuration or code changed since it started:\n{changes}\nrerun with --force to resume anyway (the run will record that it was forced and what changed), or start a new run"
    )]
    Drift {
        /// The run.
        run: String,
        /// What changed, one indented line each.
        changes: String,
    },
    /// A [`crate::quick()`] run was set up wrongly.
    #[error("quick: {0}")]
    InvalidQuick(String),
    /// The store could not be read or written.
    #[error("store: {0}")]
    Store(String),
    /// `--set` was not `KEY=VALUE`.
    #[error("--set takes KEY=VALUE, got '{0}'")]
    BadSetSyntax(String),
    /// An override named neither a param nor a field of the input.
    #[error("unknown key '{key}' in {origin}{} {valid}", did_you_mean(suggestion))]
    UnknownKey {
        /// What the user wrote.
        key: String,
        /// Where: `--set`, or `path:line` of the config file.
        origin: String,
        /// The closest param or input path.
        suggestion: Option<String>,
        /// The params and the input's fields.
        valid: String,
    },
    /// An override's key is not a key path.
    #[error("bad key '{key}' in {origin}: {problem}")]
    BadKey {
        /// What the user wrote.
        key: String,
        /// Where: `--set`, or `path:line` of the config file.
        origin: String,
        /// What is wrong.
        problem: String,
    },
    /// An override gave a field of the input a value that does not fit its type.
    #[error("bad value for input field '{key}' in {origin}: {problem}")]
    BadInputValue {
        /// The field's path.
        key: String,
        /// Where: `--set`, or `path:line` of the config file.
        origin: String,
        /// What is wrong, in the words of the input type's deserializer.
        problem: String,
    },
    /// A hypothesis does not parse; the message points a caret at the offending character.
    #[error("bad hypothesis {origin}: {message}")]
    BadHypothesis {
        /// Where it was written: `in --hypothesis`, `declared at src/main.rs:75`.
        origin: String,
        /// The parse error with the text and its caret (see [`crate::hypothesis::ParseError`]).
        message: String,
    },
    /// A hypothesis names something the experiment or the run does not have.
    #[error("in hypothesis '{hypothesis}' ({origin}): {source}")]
    InHypothesis {
        /// The hypothesis as written.
        hypothesis: String,
        /// Where it was written.
        origin: String,
        /// What is wrong with it (an unknown condition, with the valid ones).
        source: Box<Error>,
    },
    /// A hypothesis cannot be evaluated where it must be before anything runs (the exploratory
    /// run of a confirmation, the run a plan starts from).
    #[error("{0}")]
    Hypothesis(String),
    /// A confirmation would not be valid and `--force` was not given.
    #[error(
        "confirmation refused, nothing was run; these checks fail before the first unit:\n{checks}\nfix them, \
         or rerun with --force to run anyway (the report will then say INVALID or CONFOUNDED, never VALID)"
    )]
    ConfirmationRefused {
        /// The failed checks, one indented line each.
        checks: String,
    },
    /// An option's value is out of its range.
    #[error("invalid {option} {value}: {why}")]
    BadOption {
        /// The option (`--alpha`).
        option: String,
        /// Its value.
        value: String,
        /// What would be valid.
        why: String,
    },
    /// `--limit NAME=N` names a limit nothing declares.
    #[error("unknown limit '{name}'{} limits: {valid}", did_you_mean(suggestion))]
    UnknownLimit {
        /// What the user wrote.
        name: String,
        /// The closest declared name.
        suggestion: Option<String>,
        /// Every declared name.
        valid: String,
    },
    /// Another live process holds the lease of units this one would run (see
    /// `crystallize::store::lease`): the message names it and how to take over.
    #[error("{0}")]
    Leased(String),
    /// A process joining a shared run (`--run-id`) planned it differently from the run's manifest.
    #[error(
        "run {run} exists with another configuration than this process planned:\n{changes}\nevery shard of a run \
         must be started with the same experiment, treatments, --set values, replicates, seed and code; start \
         this one like the others (or choose another --run-id)"
    )]
    ShardDrift {
        /// The run.
        run: String,
        /// What differs, one indented line each.
        changes: String,
    },
    /// The config file (`crystallize.toml`) is malformed.
    #[error("{location}: {message}")]
    ConfigFile {
        /// `path:line` (or just the path).
        location: String,
        /// What is wrong and what would be valid.
        message: String,
    },
}

impl Error {
    /// The process exit code for this error: always 2, bad usage or bad input.
    pub fn exit_code(&self) -> u8 {
        2
    }
}

/// `; did you mean 'x'?` or just `;`, to stand before the list of valid values.
fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion.as_ref().map(|s| format!("; did you mean '{s}'?")).unwrap_or_else(|| ";".into())
}

/// The closest of `candidates` to `name`, when it is close enough to be a typo of it.
pub fn suggest(name: &str, candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .map(|candidate| (strsim::damerau_levenshtein(name, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= (candidate.chars().count() / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_misses_only() {
        assert_eq!(suggest("dolphn", &["dolphin", "dolphin_spoilers"]).as_deref(), Some("dolphin"));
        assert_eq!(suggest("thinkms", &["think_ms", "temperature"]).as_deref(), Some("think_ms"));
        assert_eq!(suggest("xyz", &["dolphin"]), None);
    }

    #[test]
    fn messages_name_the_value_and_the_valid_ones() {
        let error = Error::UnknownTreatment {
            experiment: "social_deception".into(),
            name: "dolphn".into(),
            suggestion: Some("dolphin".into()),
            valid: "dolphin, dolphin_spoilers".into(),
        };
        assert_eq!(
            error.to_string(),
            "unknown treatment 'dolphn' of experiment 'social_deception'; did you mean 'dolphin'? \
             treatments: dolphin, dolphin_spoilers"
        );
    }
}
