//! `crystallize.toml`: an optional config file that changes replicates, the seed, params and input
//! fields without recompiling.
//!
//! ```toml
//! replicates = 20          # replicates per condition (the experiment's default otherwise)
//! seed = 7                 # the run's seed
//! jobs = 16                # units in parallel, or async units in flight
//! timeout = "120s"         # fail a unit still running after this long (500ms, 120s, 2min, 1h)
//! retries = 3              # try a unit that failed retryably up to 3 more times, same seed
//!
//! [limits]                 # capacities of named limits (`#[step(limit = "ollama")]`)
//! ollama = 2
//!
//! [params]                 # like new defaults: params, or fields of the input
//! think_ms = 5
//! max_rounds = 6
//! "players[0].model" = "llama3:70b"
//!
//! [treatments.dolphin_spoilers]   # only this condition (`baseline` works too), after the treatment
//! temperature = 1.5
//!
//! [experiments.other_experiment]  # when the crate has several experiments: keys for one of them
//! replicates = 3
//! ```
//!
//! **Where it is found.** `$CRYSTALLIZE_CONFIG` names the file (empty: no file); otherwise it is
//! `crystallize.toml` beside the experiment crate's `Cargo.toml` — the directory `cargo` compiled
//! the crate in, captured by `crystallize::main!` — if that file exists. Not the working
//! directory: `cargo run -p my_crate` from a workspace root and `./target/debug/my_crate` from
//! anywhere read the same file. A binary copied to another machine reads none unless
//! `$CRYSTALLIZE_CONFIG` names one.
//!
//! **Precedence** (see [`crate::resolve`]): declared defaults < `[params]` < the treatment's own
//! `set(...)` and mutation < `[treatments.NAME]` < `--set`. `replicates`, `seed`, `jobs`,
//! `timeout`, `retries` and `[limits]` lose to their flags (`--replicates`, `--seed`, `--jobs`,
//! `--timeout`, `--retries`, `--limit`) and win over the experiment's attribute (`jobs = N`,
//! `timeout = "..."`, `retries = N`, `limits(...)`). Top-level keys apply to every experiment of the crate;
//! `[experiments.NAME]` applies to one and wins over the top level.
//!
//! Every error names the file, the line and the key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Number, Value};

use crate::error::{suggest, Error};
use crate::overrides::OverrideValue;
use crate::params::Origin;
use crate::plan::Override;
use crate::registry::{Experiment, Registry};
use crate::resolve::Setting;

/// The file's name.
pub const FILE_NAME: &str = "crystallize.toml";

/// The environment variable that names the config file (empty: none).
pub const CONFIG_ENV: &str = "CRYSTALLIZE_CONFIG";

const TOP_KEYS: &[&str] =
    &["replicates", "seed", "jobs", "timeout", "retries", "limits", "params", "treatments", "experiments"];
const SECTION_KEYS: &[&str] = &["replicates", "seed", "jobs", "timeout", "retries", "limits", "params", "treatments"];

/// The most retries a unit may have, as for `--retries`.
const MAX_RETRIES: u64 = 100;

/// The largest capacity of a limit, as for `--limit`.
const MAX_CAPACITY: u64 = 1_000_000;

/// Where the config file is: `$CRYSTALLIZE_CONFIG` if set (empty: nowhere), else
/// `<manifest_dir>/crystallize.toml` if it exists.
pub fn locate(manifest_dir: &str) -> Option<PathBuf> {
    if let Some(named) = std::env::var_os(CONFIG_ENV) {
        return (!named.is_empty()).then(|| PathBuf::from(named));
    }
    let beside = Path::new(manifest_dir).join(FILE_NAME);
    beside.is_file().then_some(beside)
}

/// A key's value and the line it is on.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    key: String,
    value: Value,
    location: String,
}

/// One level of the file: the top, or an `[experiments.NAME]` section.
#[derive(Clone, Debug, Default, PartialEq)]
struct Section {
    replicates: Option<(u64, String)>,
    jobs: Option<(u64, String)>,
    seed: Option<(u64, String)>,
    timeout: Option<(Duration, String)>,
    retries: Option<(u32, String)>,
    /// `[limits]`: name, capacity, location.
    limits: Vec<(String, usize, String)>,
    params: Vec<Entry>,
    /// `[treatments.NAME]`: the name, its location, its entries.
    treatments: Vec<(String, String, Vec<Entry>)>,
}

/// A parsed config file.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigFile {
    path: PathBuf,
    top: Section,
    /// `[experiments.NAME]`: the name, its location, its section.
    experiments: Vec<(String, String, Section)>,
}

/// What the config file says about one experiment.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Replicates per condition.
    pub replicates: Option<Setting<u64>>,
    /// Units in parallel, or async units in flight (`jobs = 16`).
    pub jobs: Option<Setting<u64>>,
    /// The run's seed.
    pub seed: Option<Setting<u64>>,
    /// A unit's deadline (`timeout = "120s"`).
    pub timeout: Option<Setting<Duration>>,
    /// Retries of a unit that failed retryably (`retries = 3`).
    pub retries: Option<Setting<u32>>,
    /// Capacities of named limits (`[limits]`): name, capacity, the line it is on. A later level
    /// (an `[experiments.NAME]` section) replaces the same name's capacity.
    pub limits: Vec<(String, usize, String)>,
    /// Params and input fields, in the file's order (top level first).
    pub overrides: Vec<Override>,
}

impl Settings {
    /// The config file's overrides followed by the command line's `--set`s.
    pub fn overrides_with(&self, sets: &[String]) -> Result<Vec<Override>, Error> {
        let mut all = self.overrides.clone();
        for set in sets {
            all.push(Override::parse(set)?);
        }
        Ok(all)
    }

    /// Replicates: `explicit` (the command line), else the file's, else the experiment's.
    pub fn replicates(&self, explicit: Option<u64>, default: u64) -> Setting<u64> {
        pick(explicit, &self.replicates, default)
    }

    /// The seed: `explicit` (the command line), else the file's, else the experiment's.
    pub fn seed(&self, explicit: Option<u64>, default: u64) -> Setting<u64> {
        pick(explicit, &self.seed, default)
    }
}

fn pick(explicit: Option<u64>, file: &Option<Setting<u64>>, default: u64) -> Setting<u64> {
    match (explicit, file) {
        (Some(value), _) => Setting { value, origin: Origin::CommandLine },
        (None, Some(setting)) => setting.clone(),
        (None, None) => Setting { value: default, origin: Origin::Default },
    }
}

/// The settings for `experiment` from the config file found by [`locate`], if any.
pub fn settings(manifest_dir: &str, registry: &Registry, experiment: &Experiment) -> Result<Settings, Error> {
    match locate(manifest_dir) {
        None => Ok(Settings::default()),
        Some(path) => ConfigFile::load(&path)?.settings(registry, experiment),
    }
}

/// How a path is shown in messages: relative to the working directory when it is inside it.
fn display_path(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

impl ConfigFile {
    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<ConfigFile, Error> {
        let text = std::fs::read_to_string(path).map_err(|error| Error::ConfigFile {
            location: display_path(path),
            message: format!("cannot read the config file: {error}"),
        })?;
        ConfigFile::parse(path, &text)
    }

    /// Parses `text` as the config file at `path`.
    pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, Error> {
        let shown = display_path(path);
        let at = |offset: usize| format!("{shown}:{}", text[..offset.min(text.len())].matches('\n').count() + 1);
        let document = toml::de::DeTable::parse(text).map_err(|error| Error::ConfigFile {
            location: error.span().map(|span| at(span.start)).unwrap_or_else(|| shown.clone()),
            message: format!("not valid TOML: {}", error.message().trim_end()),
        })?;
        let reader = Reader { at: &at };
        let top = reader.section(document.get_ref(), TOP_KEYS, "")?;
        let mut experiments = Vec::new();
        for (key, value) in document.get_ref() {
            if key.get_ref().as_ref() != "experiments" {
                continue;
            }
            let table = reader.table(value, "experiments")?;
            for (name, section) in table {
                let name_text = name.get_ref().to_string();
                let location = at(name.span().start);
                let section_table = reader.table(section, &format!("experiments.{name_text}"))?;
                let parsed = reader.section(section_table, SECTION_KEYS, &format!("experiments.{name_text}."))?;
                experiments.push((name_text, location, parsed));
            }
        }
        Ok(ConfigFile { path: path.to_path_buf(), top, experiments })
    }

    /// What the file says about `experiment`, checked against the registry: every experiment and
    /// treatment it names must exist. Param and input keys are checked when the plan is made.
    pub fn settings(&self, registry: &Registry, experiment: &Experiment) -> Result<Settings, Error> {
        let experiment_names: Vec<&str> = registry.experiments().iter().map(|e| e.name()).collect();
        for (name, location, _) in &self.experiments {
            if !experiment_names.contains(&name.as_str()) {
                return Err(Error::ConfigFile {
                    location: location.clone(),
                    message: format!(
                        "[experiments.{name}]: no experiment is named '{name}'{}; experiments: {}",
                        hint(name, &experiment_names),
                        experiment_names.join(", ")
                    ),
                });
            }
        }
        let mut settings = Settings::default();
        let own = self.experiments.iter().filter(|(name, _, _)| name == experiment.name()).map(|(_, _, s)| s);
        for (level, section) in std::iter::once(&self.top).chain(own).enumerate() {
            if let Some((value, location)) = &section.replicates {
                settings.replicates = Some(Setting { value: *value, origin: Origin::ConfigFile(location.clone()) });
            }
            if let Some((value, location)) = &section.jobs {
                settings.jobs = Some(Setting { value: *value, origin: Origin::ConfigFile(location.clone()) });
            }
            if let Some((value, location)) = &section.seed {
                settings.seed = Some(Setting { value: *value, origin: Origin::ConfigFile(location.clone()) });
            }
            if let Some((value, location)) = &section.timeout {
                settings.timeout = Some(Setting { value: *value, origin: Origin::ConfigFile(location.clone()) });
            }
            if let Some((value, location)) = &section.retries {
                settings.retries = Some(Setting { value: *value, origin: Origin::ConfigFile(location.clone()) });
            }
            for (name, capacity, location) in &section.limits {
                settings.limits.retain(|(existing, _, _)| existing != name);
                settings.limits.push((name.clone(), *capacity, location.clone()));
            }
            settings.overrides.extend(section.params.iter().map(|entry| to_override(entry, None)));
            for (name, location, entries) in &section.treatments {
                let conditions = experiment.condition_names();
                if !conditions.contains(&name.as_str()) {
                    let elsewhere = level == 0
                        && registry.experiments().iter().any(|other| other.condition_names().contains(&name.as_str()));
                    if elsewhere {
                        continue;
                    }
                    return Err(Error::ConfigFile {
                        location: location.clone(),
                        message: format!(
                            "[treatments.{name}]: experiment '{}' has no condition '{name}'{}; conditions: {}",
                            experiment.name(),
                            hint(name, &conditions),
                            conditions.join(", ")
                        ),
                    });
                }
                settings.overrides.extend(entries.iter().map(|entry| to_override(entry, Some(name))));
            }
        }
        Ok(settings)
    }
}

fn hint(name: &str, valid: &[&str]) -> String {
    suggest(name, valid).map(|s| format!(" (did you mean '{s}'?)")).unwrap_or_default()
}

fn to_override(entry: &Entry, scope: Option<&str>) -> Override {
    Override {
        key: entry.key.clone(),
        value: OverrideValue::Json(entry.value.clone()),
        origin: Origin::ConfigFile(entry.location.clone()),
        scope: scope.map(str::to_owned),
    }
}

struct Reader<'a> {
    at: &'a dyn Fn(usize) -> String,
}

impl Reader<'_> {
    /// An integer within `range`, or `None`.
    fn integer(
        &self,
        value: &toml::Spanned<toml::de::DeValue<'_>>,
        range: std::ops::RangeInclusive<u64>,
    ) -> Option<u64> {
        match value.get_ref() {
            toml::de::DeValue::Integer(i) => {
                u64::from_str_radix(i.as_str(), i.radix()).ok().filter(|n| range.contains(n))
            }
            _ => None,
        }
    }

    fn error(&self, offset: usize, message: String) -> Error {
        Error::ConfigFile { location: (self.at)(offset), message }
    }

    /// The table under a key, or an error saying a table was expected.
    fn table<'t, 'i>(
        &self,
        value: &'t toml::Spanned<toml::de::DeValue<'i>>,
        key: &str,
    ) -> Result<&'t toml::de::DeTable<'i>, Error> {
        match value.get_ref() {
            toml::de::DeValue::Table(table) => Ok(table),
            _ => Err(self.error(value.span().start, format!("'{key}' must be a table ([{key}])"))),
        }
    }

    /// A section: its known keys, the rest rejected with a suggestion (the `experiments` key is
    /// read by the caller).
    fn section(&self, table: &toml::de::DeTable<'_>, keys: &[&str], prefix: &str) -> Result<Section, Error> {
        let mut section = Section::default();
        for (key, value) in table {
            let name = key.get_ref().as_ref();
            let offset = key.span().start;
            match name {
                "replicates" | "seed" => {
                    let number = match value.get_ref() {
                        toml::de::DeValue::Integer(i) => u64::from_str_radix(i.as_str(), i.radix()).ok(),
                        _ => None,
                    };
                    let minimum = if name == "replicates" { 1 } else { 0 };
                    let Some(number) = number.filter(|n| *n >= minimum) else {
                        let expected =
                            if name == "replicates" { "a positive integer" } else { "a non-negative integer" };
                        return Err(self.error(offset, format!("'{prefix}{name}' must be {expected}")));
                    };
                    let max = crate::plan::MAX_REPLICATES;
                    if name == "replicates" && number > max {
                        return Err(self.error(
                            offset,
                            format!("'{prefix}{name}' is {number}, more than the maximum of {max} per condition"),
                        ));
                    }
                    let setting = Some((number, (self.at)(offset)));
                    if name == "replicates" {
                        section.replicates = setting;
                    } else {
                        section.seed = setting;
                    }
                }
                "jobs" => {
                    let number = match value.get_ref() {
                        toml::de::DeValue::Integer(i) => u64::from_str_radix(i.as_str(), i.radix()).ok(),
                        _ => None,
                    };
                    let Some(number) = number.filter(|n| (1..=1024).contains(n)) else {
                        return Err(self.error(offset, format!("'{prefix}jobs' must be an integer from 1 to 1024")));
                    };
                    section.jobs = Some((number, (self.at)(offset)));
                }
                "timeout" => {
                    let parsed = match value.get_ref() {
                        toml::de::DeValue::String(text) => crate::duration::parse(text),
                        _ => Err("it must be a string with a unit, like \"120s\"".to_owned()),
                    };
                    let duration = parsed.map_err(|error| self.error(offset, format!("'{prefix}timeout': {error}")))?;
                    section.timeout = Some((duration, (self.at)(offset)));
                }
                "retries" => {
                    let retries = self.integer(value, 0..=MAX_RETRIES).ok_or_else(|| {
                        self.error(offset, format!("'{prefix}retries' must be an integer from 0 to {MAX_RETRIES}"))
                    })?;
                    section.retries = Some((u32::try_from(retries).unwrap_or(u32::MAX), (self.at)(offset)));
                }
                "limits" => {
                    for (limit, capacity) in self.table(value, &format!("{prefix}limits"))? {
                        let limit_name = limit.get_ref().to_string();
                        let capacity = self.integer(capacity, 1..=MAX_CAPACITY).ok_or_else(|| {
                            self.error(
                                limit.span().start,
                                format!(
                                    "'{prefix}limits.{limit_name}' must be a capacity: an integer from 1 to {MAX_CAPACITY}"
                                ),
                            )
                        })?;
                        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX);
                        section.limits.push((limit_name, capacity, (self.at)(limit.span().start)));
                    }
                }
                "params" => {
                    let params = self.table(value, &format!("{prefix}params"))?;
                    self.flatten(params, "", &mut section.params)?;
                }
                "treatments" => {
                    for (treatment, entries) in self.table(value, &format!("{prefix}treatments"))? {
                        let treatment_name = treatment.get_ref().to_string();
                        let table = self.table(entries, &format!("{prefix}treatments.{treatment_name}"))?;
                        let mut flat = Vec::new();
                        self.flatten(table, "", &mut flat)?;
                        section.treatments.push((treatment_name, (self.at)(treatment.span().start), flat));
                    }
                }
                "experiments" if keys.contains(&"experiments") => {}
                _ => {
                    return Err(self.error(
                        offset,
                        format!(
                            "unknown key '{prefix}{name}'{}; valid keys here: {}",
                            hint(name, keys),
                            keys.join(", ")
                        ),
                    ))
                }
            }
        }
        Ok(section)
    }

    /// Every leaf under `table` as a key path (nested tables join with `.`; lists are values).
    fn flatten(&self, table: &toml::de::DeTable<'_>, prefix: &str, out: &mut Vec<Entry>) -> Result<(), Error> {
        for (key, value) in table {
            let path =
                if prefix.is_empty() { key.get_ref().to_string() } else { format!("{prefix}.{}", key.get_ref()) };
            match value.get_ref() {
                toml::de::DeValue::Table(inner) => self.flatten(inner, &path, out)?,
                other => {
                    let offset = key.span().start;
                    let json = self.json(other, offset, &path)?;
                    out.push(Entry { key: path, value: json, location: (self.at)(offset) });
                }
            }
        }
        Ok(())
    }

    fn json(&self, value: &toml::de::DeValue<'_>, offset: usize, key: &str) -> Result<Value, Error> {
        use toml::de::DeValue;
        Ok(match value {
            DeValue::String(s) => Value::String(s.to_string()),
            DeValue::Boolean(b) => Value::Bool(*b),
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Value::Number(n.into()),
                Err(_) => match u64::from_str_radix(i.as_str(), i.radix()) {
                    Ok(n) => Value::Number(n.into()),
                    Err(_) => return Err(self.error(offset, format!("'{key}': the integer {i} is too large"))),
                },
            },
            DeValue::Float(f) => match f.as_str().replace('_', "").parse::<f64>().ok().and_then(Number::from_f64) {
                Some(n) => Value::Number(n),
                None => return Err(self.error(offset, format!("'{key}': {f} is not a finite number"))),
            },
            DeValue::Datetime(d) => {
                return Err(self.error(offset, format!("'{key}': dates ({d}) are not supported; quote it as a string")))
            }
            DeValue::Array(items) => {
                Value::Array(items.iter().map(|item| self.json(item.get_ref(), offset, key)).collect::<Result<_, _>>()?)
            }
            DeValue::Table(table) => {
                let mut map = Map::new();
                for (k, v) in table {
                    map.insert(k.get_ref().to_string(), self.json(v.get_ref(), offset, key)?);
                }
                Value::Object(map)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Result<ConfigFile, Error> {
        ConfigFile::parse(Path::new("/nowhere/crystallize.toml"), text)
    }

    #[test]
    fn reads_every_section_with_lines() {
        let file = parse(
            "replicates = 20\nseed = 7\n\n[params]\nthink_ms = 5\n\"players[0].model\" = \"x\"\nlimits.max = 3\nmodels = [\"a\", \"b\"]\n\n[treatments.dolphin]\ntemperature = 1.5\n\n[experiments.other]\nreplicates = 3\nparams.k = true\n",
        )
        .unwrap();
        assert_eq!(file.top.replicates, Some((20, "/nowhere/crystallize.toml:1".into())));
        assert_eq!(file.top.seed, Some((7, "/nowhere/crystallize.toml:2".into())));
        let params: Vec<(&str, &Value, &str)> =
            file.top.params.iter().map(|e| (e.key.as_str(), &e.value, e.location.as_str())).collect();
        assert_eq!(
            params,
            [
                ("think_ms", &json!(5), "/nowhere/crystallize.toml:5"),
                ("players[0].model", &json!("x"), "/nowhere/crystallize.toml:6"),
                ("limits.max", &json!(3), "/nowhere/crystallize.toml:7"),
                ("models", &json!(["a", "b"]), "/nowhere/crystallize.toml:8"),
            ]
        );
        let (name, location, entries) = &file.top.treatments[0];
        assert_eq!((name.as_str(), location.as_str()), ("dolphin", "/nowhere/crystallize.toml:10"));
        assert_eq!(entries[0].key, "temperature");
        assert_eq!(entries[0].value, json!(1.5));
        let (name, _, other) = &file.experiments[0];
        assert_eq!(name, "other");
        assert_eq!(other.replicates.as_ref().map(|r| r.0), Some(3));
        assert_eq!(other.params[0].key, "k");
        assert_eq!(other.params[0].location, "/nowhere/crystallize.toml:15");
    }

    #[test]
    fn reads_timeout_retries_and_limits_per_level() {
        let file = parse(
            "timeout = \"2min\"\nretries = 3\n[limits]\nollama = 2\nopenai = 8\n\n[experiments.other]\nlimits.ollama = 1\n",
        )
        .unwrap();
        assert_eq!(file.top.timeout, Some((Duration::from_secs(120), "/nowhere/crystallize.toml:1".into())));
        assert_eq!(file.top.retries.as_ref().map(|r| r.0), Some(3));
        let limits: Vec<(&str, usize, &str)> =
            file.top.limits.iter().map(|(n, c, l)| (n.as_str(), *c, l.as_str())).collect();
        assert_eq!(
            limits,
            [("ollama", 2, "/nowhere/crystallize.toml:4"), ("openai", 8, "/nowhere/crystallize.toml:5")]
        );
        assert_eq!(file.experiments[0].2.limits[0].1, 1);
        for (text, message) in [
            ("timeout = 5\n", "'timeout': it must be a string with a unit, like \"120s\""),
            ("timeout = \"0s\"\n", "'timeout': '0s' is no time at all"),
            ("retries = 101\n", "'retries' must be an integer from 0 to 100"),
            ("retries = -1\n", "'retries' must be an integer from 0 to 100"),
            ("[limits]\nollama = 0\n", "'limits.ollama' must be a capacity: an integer from 1 to 1000000"),
            ("limits = 3\n", "'limits' must be a table ([limits])"),
        ] {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.contains(message), "{text:?}: {error}");
        }
    }

    #[test]
    fn errors_name_the_file_line_and_key() {
        let error = parse("seed = 1\nreplicate = 3\n").unwrap_err().to_string();
        assert_eq!(
            error,
            "/nowhere/crystallize.toml:2: unknown key 'replicate' (did you mean 'replicates'?); valid keys here: \
             replicates, seed, jobs, timeout, retries, limits, params, treatments, experiments"
        );
        let error = parse("jobs = 0\n").unwrap_err().to_string();
        assert_eq!(error, "/nowhere/crystallize.toml:1: 'jobs' must be an integer from 1 to 1024");
        assert_eq!(parse("jobs = 12\n").unwrap().top.jobs.map(|j| j.0), Some(12));
        let error = parse("replicates = 0\n").unwrap_err().to_string();
        assert_eq!(error, "/nowhere/crystallize.toml:1: 'replicates' must be a positive integer");
        let error = parse("seed = 1\nreplicates = 1000000000000\n").unwrap_err().to_string();
        assert_eq!(
            error,
            "/nowhere/crystallize.toml:2: 'replicates' is 1000000000000, more than the maximum of 100000000 per condition"
        );
        let error = parse("[params]\nx = 1\n\n[params]\n").unwrap_err().to_string();
        assert!(error.starts_with("/nowhere/crystallize.toml:4: not valid TOML"), "{error}");
        let error = parse("params = 3\n").unwrap_err().to_string();
        assert_eq!(error, "/nowhere/crystallize.toml:1: 'params' must be a table ([params])");
        let error = parse("[params]\nwhen = 1979-05-27\n").unwrap_err().to_string();
        assert!(error.starts_with("/nowhere/crystallize.toml:2: 'when': dates"), "{error}");
        let error = parse("[experiments.x]\nexperiments = 1\n").unwrap_err().to_string();
        assert!(error.contains(":2: unknown key 'experiments.x.experiments'"), "{error}");
    }

    #[test]
    fn the_command_line_wins_over_the_file() {
        let settings = Settings {
            seed: Some(Setting { value: 7, origin: Origin::ConfigFile("f:2".into()) }),
            ..Settings::default()
        };
        assert_eq!(settings.seed(None, 42).value, 7);
        assert_eq!(settings.seed(Some(1), 42), Setting { value: 1, origin: Origin::CommandLine });
        assert_eq!(settings.replicates(None, 10), Setting { value: 10, origin: Origin::Default });
    }
}
