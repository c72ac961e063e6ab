//! End-to-end tests of configuration: `diff` of two conditions and of two stored runs, `show`,
//! typed `--set` overrides of params and of the input's fields, and the `crystallize.toml` config
//! file. The example binary runs as a user runs it: each command in a fresh temporary directory
//! (or a shared one, for a store), stdout and stderr piped, `CRYSTALLIZE_*` cleared.
//!
//! Snapshots (insta) pin what a user reads from `diff` and `show`; line numbers of main.rs are
//! redacted so that editing the example above an item does not churn them.

use std::path::Path;

use crystallize_tests::{Command, Output, TempDir};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_social_deception");
const DOLPHIN_MODEL: &str = "dolphin-llama3:latest";
const LLAMA_MODEL: &str = "llama3:8b";

/// Runs the example with `args` in a fresh temporary directory, without any config file.
fn sd(args: &[&str]) -> Output {
    Command::new(BIN).args(args).env("CRYSTALLIZE_CONFIG", "").run()
}

/// Runs the example in `dir` (a store shared between commands), without any config file.
fn sd_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN).args(args).env("CRYSTALLIZE_CONFIG", "").current_dir(dir).run()
}

/// `main.rs:42` → `main.rs:[line]`, so snapshots survive edits that move the example's items.
fn redact_lines(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("main.rs:") {
        let after = &rest[at + "main.rs:".len()..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        out += &rest[..at + "main.rs:".len()];
        out += if digits > 0 { "[line]" } else { "" };
        rest = &after[digits..];
    }
    out + rest
}

/// Redacts the `line` of every `{file, line}` location in a JSON value.
fn redact_json(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.contains_key("file") && map.contains_key("line") {
                map.insert("line".into(), Value::String("[line]".into()));
            }
            map.values_mut().for_each(redact_json);
        }
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

/// The pretty, redacted JSON of a command's stdout.
fn pretty(out: &Output) -> String {
    let mut value = out.json();
    redact_json(&mut value);
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// diff of two conditions

#[test]
fn diff_shows_the_swapped_datasource_models_spoilers_and_treatment_param() {
    let out = sd(&["diff", "baseline", "dolphin_spoilers"]);
    out.assert_code(0);
    let lines = out.stdout_lines();
    let has = |line: &str| out.check(lines.iter().any(|l| l.starts_with(line)), format!("a line starting {line:?}"));
    has("--- social_deception/baseline");
    has("+++ social_deception/dolphin_spoilers");
    has("- datasource: llama_table");
    has("+ datasource: dolphin_table");
    has("- temperature: 0.7");
    has("+ temperature: 1.2");
    has("- spoilers: false");
    has("+ spoilers: true");
    for seat in [0, 2, 4] {
        has(&format!("- players[{seat}].model: \"{LLAMA_MODEL}\""));
        has(&format!("+ players[{seat}].model: \"{DOLPHIN_MODEL}\""));
    }
    // Unchanged keys are hidden: the odd seats keep their model, think_ms keeps its default.
    out.check(!out.stdout.contains("players[1].model"), "an unchanged seat is hidden");
    out.check(!out.stdout.contains("think_ms"), "an unchanged param is hidden");
    // Piped: no colour.
    out.check(!out.stdout.contains('\x1b'), "no escape codes when stdout is not a terminal");
    insta::assert_snapshot!("diff_text", redact_lines(&out.stdout));
}

#[test]
fn diff_all_shows_unchanged_keys_and_takes_the_experiment_first() {
    let out = sd(&["diff", "--all", "social_deception", "baseline", "dolphin"]);
    out.assert_code(0);
    out.assert_stdout_contains("  think_ms: 0");
    out.assert_stdout_contains("  players[1].model: \"llama3:8b\"");
    out.assert_stdout_contains("- players[0].model: \"llama3:8b\"");
    out.assert_stdout_contains("  spoilers: false");
    let same = sd(&["diff", "dolphin", "dolphin"]);
    same.assert_code(0);
    same.assert_stdout_contains("(no differences)");
}

#[test]
fn diff_as_markdown_and_json() {
    let md = sd(&["diff", "baseline", "dolphin_spoilers", "--md"]);
    md.assert_code(0);
    md.assert_stdout_contains("| key | `baseline` | `dolphin_spoilers` |");
    insta::assert_snapshot!("diff_md", redact_lines(&md.stdout));

    let json = sd(&["diff", "baseline", "dolphin_spoilers", "--json"]);
    json.assert_code(0);
    let value = json.json();
    let entries = json.at(&value, "/entries").as_array().cloned().unwrap_or_default();
    let keys: Vec<&str> = entries.iter().filter_map(|e| e["key"].as_str()).collect();
    json.check_eq(
        keys,
        vec![
            "datasource",
            "mutation",
            "temperature",
            "players[0].model",
            "players[2].model",
            "players[4].model",
            "spoilers",
        ],
        "changed keys, in order",
    );
    json.check_eq(json.str_at(&value, "/entries/0/b/value"), "dolphin_table", "datasource of B");
    json.check_eq(json.str_at(&value, "/entries/2/b/origin/kind"), "treatment", "origin of temperature in B");
    insta::assert_snapshot!("diff_json", pretty(&json));
}

#[test]
fn colour_follows_the_terminal_no_color_and_clicolor_force() {
    let forced = Command::new(BIN)
        .args(["diff", "baseline", "dolphin"])
        .env("CRYSTALLIZE_CONFIG", "")
        .env("CLICOLOR_FORCE", "1")
        .run();
    forced.assert_code(0);
    forced.assert_stdout_contains("\x1b[31m- datasource: llama_table");
    forced.assert_stdout_contains("\x1b[32m+ datasource: dolphin_table");
    let no_color = Command::new(BIN)
        .args(["diff", "baseline", "dolphin"])
        .env("CRYSTALLIZE_CONFIG", "")
        .env("CLICOLOR_FORCE", "1")
        .env("NO_COLOR", "1")
        .run();
    no_color.assert_code(0);
    no_color.assert_stdout_contains("- datasource: llama_table");
    no_color.check(!no_color.stdout.contains('\x1b'), "NO_COLOR wins");
}

#[test]
fn diff_names_unknown_conditions() {
    let out = sd(&["diff", "baseline", "dolphn"]);
    out.assert_code(2);
    out.assert_stderr_contains("'dolphn'");
    out.assert_stderr_contains("did you mean 'dolphin'");
    out.check(out.stdout.is_empty(), "nothing on stdout");
}

// ---------------------------------------------------------------------------------------------
// show

#[test]
fn show_annotates_every_value_with_its_origin() {
    let out = sd(&["show", "dolphin_spoilers"]);
    out.assert_code(0);
    let line = |key: &str| {
        out.stdout_lines()
            .into_iter()
            .find(|l| l.trim_start().starts_with(&format!("{key} ")))
            .unwrap_or_else(|| out.fail(format!("no line for {key}")))
            .to_owned()
    };
    out.check(line("temperature").ends_with("treatment dolphin_spoilers"), "temperature comes from the treatment");
    out.check(line("think_ms").ends_with("default"), "think_ms is the default");
    out.check(line("spoilers").ends_with("treatment dolphin_spoilers"), "the mutation set spoilers");
    out.check(line("players[0].model").ends_with("datasource dolphin_table"), "models come from the datasource");
    out.check(line("datasource").contains("dolphin_table"), "the swapped datasource");
    insta::assert_snapshot!("show_text", redact_lines(&out.stdout));

    let json = sd(&["show", "social_deception/dolphin_spoilers", "--json"]);
    json.assert_code(0);
    insta::assert_snapshot!("show_json", pretty(&json));
}

#[test]
fn show_with_set_marks_the_overrides() {
    let out = sd(&["show", "baseline", "--set", "think_ms=5", "--set", "players[3].model=gpt-x", "--json"]);
    out.assert_code(0);
    let value = out.json();
    let params = out.at(&value, "/params").as_array().cloned().unwrap_or_default();
    let think = params.iter().find(|p| p["name"] == "think_ms").cloned().unwrap_or_default();
    out.check_eq(think["value"].as_u64(), Some(5), "think_ms");
    out.check_eq(think["origin"]["kind"].as_str(), Some("command_line"), "origin of think_ms");
    let fields = out.at(&value, "/input/fields").as_array().cloned().unwrap_or_default();
    let seat = fields.iter().find(|f| f["path"] == "players[3].model").cloned().unwrap_or_default();
    out.check_eq(seat["value"].as_str(), Some("gpt-x"), "players[3].model");
    out.check_eq(seat["origin"]["kind"].as_str(), Some("command_line"), "origin of players[3].model");
}

// ---------------------------------------------------------------------------------------------
// --set

#[test]
fn set_rejects_unknown_keys_and_wrong_types_before_any_unit_runs() {
    let cases: &[(&[&str], &[&str])] = &[
        (&["run", "--set", "thinkms=0"], &["unknown key 'thinkms'", "did you mean 'think_ms'", "max_rounds"]),
        (&["run", "--set", "think_ms=fast"], &["think_ms", "'fast'", "u64", "non-negative integer"]),
        (&["run", "--set", "max_rounds=fast"], &["input field 'max_rounds'", "\"fast\"", "u32"]),
        (&["run", "--set", "players[2].modl=x"], &["'players[2].modl'", "did you mean 'players[2].model'"]),
        (&["run", "--set", "players[9].model=x"], &["players[9].model", "out of range", "6 items"]),
        (&["run", "--set", "spoilers=[1,2"], &["spoilers", "cannot read the value"]),
        (&["run", "--set", "+surprise=1"], &["surprise", "no field"]),
        (&["stream", "--set", "players=null"], &["players", "null", "sequence"]),
        (&["debug", "baseline", "--set", "max_rounds=-1"], &["max_rounds", "u32"]),
        (&["show", "baseline", "--set", "thinkms=0"], &["did you mean 'think_ms'"]),
    ];
    for (args, needles) in cases {
        let out = sd(args);
        out.assert_code(2);
        for needle in *needles {
            out.assert_stderr_contains(needle);
        }
        out.check(out.stdout.is_empty(), "nothing on stdout");
        out.check(!out.dir.join(".crystallize").exists(), "no run was stored");
    }
}

#[test]
fn set_reaches_nested_input_fields() {
    // Every game ends after its first round when max_rounds is 1.
    let out = sd(&[
        "run",
        "--replicates",
        "3",
        "--treatment",
        "dolphin_spoilers",
        "--set",
        "think_ms=0",
        "--set",
        "max_rounds=1",
        "--json",
    ]);
    out.assert_code(0);
    let value = out.json();
    let units = out.at(&value, "/units").as_array().cloned().unwrap_or_default();
    out.check_eq(units.len(), 6, "baseline and dolphin_spoilers x 3 replicates");
    for unit in &units {
        out.check_eq(unit["metrics"]["rounds"].as_f64(), Some(1.0), "rounds with max_rounds=1");
    }
    // debug prints the input the unit got, after the treatment's mutation and the overrides.
    let debug =
        sd(&["debug", "dolphin_spoilers", "--set", "players[2].model=\"gpt 5\"", "--set", "input.max_rounds=3"]);
    debug.assert_code(0);
    let input = debug.stdout_lines().into_iter().find(|l| l.starts_with("input")).unwrap_or_default().to_owned();
    debug.check(input.contains("\"model\":\"gpt 5\""), format!("the override reached the unit: {input}"));
    debug.check(input.contains("\"max_rounds\":3"), "input.max_rounds is max_rounds");
    debug.check(input.contains("\"spoilers\":true"), "the mutation still ran");
}

#[test]
fn set_is_recorded_in_the_manifest_and_guarded_on_resume() {
    let dir = TempDir::new();
    let first = sd_in(dir.path(), &["run", "--replicates", "2", "--set", "players[2].model=gpt", "--json"]);
    first.assert_code(0);
    let run = first.str_at(&first.json(), "/run").to_owned();
    let manifest_path = dir.path().join(".crystallize/runs").join(&run).join("manifest.json");
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap_or_default())
        .unwrap_or_else(|e| first.fail(format!("manifest: {e}")));
    first.check_eq(&manifest["request"]["sets"], &serde_json::json!(["players[2].model=gpt"]), "request.sets");
    for condition in ["baseline", "dolphin", "dolphin_spoilers"] {
        first.check_eq(
            manifest["config"]["conditions"][condition]["input"]["players"][2]["model"].as_str(),
            Some("gpt"),
            format!("the resolved input of {condition}"),
        );
    }
    // A different value is drift: refused, naming what changed.
    let refused =
        sd_in(dir.path(), &["run", "--resume", &run, "--replicates", "3", "--set", "players[2].model=claude"]);
    refused.assert_code(2);
    refused.assert_stderr_contains("players[2].model");
    refused.assert_stderr_contains("\"gpt\" -> \"claude\"");
    refused.assert_stderr_contains("--force");
    // The same --set (or none: the run's own are reused) resumes.
    let resumed = sd_in(dir.path(), &["run", "--resume", &run, "--replicates", "3", "--json"]);
    resumed.assert_code(0);
    resumed.assert_stderr_contains("resuming run");
}

#[test]
fn the_roadmap_command_runs() {
    let out = sd(&["run", "--replicates", "3", "--treatment", "dolphin_spoilers", "--set", "think_ms=0"]);
    out.assert_code(0);
    out.assert_stdout_contains("dolphin_spoilers");
}

// ---------------------------------------------------------------------------------------------
// diff of two stored runs

#[test]
fn diff_of_two_runs_compares_manifests_and_metrics() {
    let dir = TempDir::new();
    let a = sd_in(dir.path(), &["run", "--replicates", "3", "--json"]);
    a.assert_code(0);
    let b = sd_in(dir.path(), &["run", "--replicates", "3", "--set", "max_rounds=1", "--seed", "7", "--json"]);
    b.assert_code(0);
    let (run_a, run_b) = (a.str_at(&a.json(), "/run").to_owned(), b.str_at(&b.json(), "/run").to_owned());
    let out = sd_in(dir.path(), &["diff", &run_a, &run_b]);
    out.assert_code(0);
    out.assert_stdout_contains(&format!("--- {run_a}"));
    out.assert_stdout_contains(&format!("+++ {run_b}"));
    out.assert_stdout_contains("- seed: 42");
    out.assert_stdout_contains("+ seed: 7");
    out.assert_stdout_contains("+ set: [\"max_rounds=1\"]");
    out.assert_stdout_contains("- conditions.baseline.input.max_rounds: 8");
    out.assert_stdout_contains("+ conditions.baseline.input.max_rounds: 1");
    out.assert_stdout_contains("p (permutation)");
    let rounds = out
        .stdout_lines()
        .into_iter()
        .find(|l| l.starts_with("baseline") && l.contains("rounds"))
        .unwrap_or_else(|| out.fail("no row for baseline rounds"))
        .to_owned();
    out.check(rounds.contains("1 ± 0 (n=3)"), format!("run B's rounds are all 1: {rounds}"));

    let json = sd_in(dir.path(), &["diff", &run_a, &run_b, "--json"]);
    json.assert_code(0);
    let value = json.json();
    let metrics = json.at(&value, "/metrics").as_array().cloned().unwrap_or_default();
    let row =
        metrics.iter().find(|m| m["condition"] == "baseline" && m["metric"] == "rounds").cloned().unwrap_or_default();
    json.check_eq(row["b"]["mean"].as_f64(), Some(1.0), "mean rounds of B");
    json.check_eq(row["a"]["n"].as_u64(), Some(3), "n of A");
    json.check_eq(row["test"]["name"].as_str(), Some("permutation"), "the test");
    json.check(row["test"]["p"].as_f64().is_some_and(|p| (0.0..=1.0).contains(&p)), "a p value");
    let md = sd_in(dir.path(), &["diff", &run_a, &run_b, "--md"]);
    md.assert_code(0);
    md.assert_stdout_contains("| condition | metric | A | B | change | p (permutation) |");
}

// ---------------------------------------------------------------------------------------------
// crystallize.toml

/// Writes `text` as a config file in a fresh directory; commands then run there with
/// `CRYSTALLIZE_CONFIG` naming it.
struct Config {
    dir: TempDir,
}

impl Config {
    fn new(text: &str) -> Config {
        let dir = TempDir::new();
        if let Err(error) = std::fs::write(dir.path().join("crystallize.toml"), text) {
            panic!("cannot write the config file: {error}");
        }
        Config { dir }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("CRYSTALLIZE_CONFIG", self.dir.path().join("crystallize.toml"))
            .current_dir(self.dir.path())
            .run()
    }
}

const CONFIG: &str = "\
# replicates, seed, params and per-treatment overrides, without recompiling
replicates = 2
seed = 7

[params]
think_ms = 1
max_rounds = 1

[treatments.dolphin_spoilers]
temperature = 1.5
\"players[1].model\" = \"mistral\"
";

#[test]
fn the_config_file_sets_replicates_seed_params_and_treatments() {
    let config = Config::new(CONFIG);
    let out = config.run(&["run", "--json"]);
    out.assert_code(0);
    let value = out.json();
    out.check_eq(out.u64_at(&value, "/replicates"), 2, "replicates from the file");
    out.check_eq(out.u64_at(&value, "/seed"), 7, "seed from the file");
    let units = out.at(&value, "/units").as_array().cloned().unwrap_or_default();
    out.check_eq(units.len(), 6, "3 conditions x 2 replicates");
    for unit in units {
        out.check_eq(unit["metrics"]["rounds"].as_f64(), Some(1.0), "max_rounds = 1 from the file");
    }

    let show = config.run(&["show", "dolphin_spoilers"]);
    show.assert_code(0);
    let line = |key: &str| {
        show.stdout_lines()
            .into_iter()
            .find(|l| l.trim_start().starts_with(&format!("{key} ")))
            .unwrap_or_else(|| show.fail(format!("no line for {key}")))
            .to_owned()
    };
    show.check(line("replicates").ends_with("crystallize.toml:2"), "replicates: file and line");
    show.check(line("seed").ends_with("crystallize.toml:3"), "seed: file and line");
    show.check(line("think_ms").ends_with("crystallize.toml:6"), "think_ms: file and line");
    show.check(line("max_rounds").ends_with("crystallize.toml:7"), "an input field from [params]");
    show.check(
        line("temperature").contains("1.5") && line("temperature").ends_with("crystallize.toml:10"),
        "the treatment's section wins over its set(...)",
    );
    show.check(line("players[1].model").contains("mistral"), "an input field of one treatment");
    show.check(line("spoilers").ends_with("treatment dolphin_spoilers"), "the mutation still runs");

    // The baseline keeps its own temperature; the treatment's section does not reach it.
    let baseline = config.run(&["show", "baseline", "--json"]);
    let params = baseline.json()["params"].clone();
    let temperature = params.as_array().and_then(|p| p.iter().find(|p| p["name"] == "temperature").cloned());
    baseline.check_eq(temperature.and_then(|t| t["value"].as_f64()), Some(0.7), "baseline temperature");

    // The command line wins over the file.
    let cli = config.run(&["show", "baseline", "--set", "think_ms=9", "--seed", "3", "--json"]);
    let value = cli.json();
    cli.check_eq(cli.u64_at(&value, "/seed/value"), 3, "--seed wins");
    let think = value["params"].as_array().and_then(|p| p.iter().find(|p| p["name"] == "think_ms").cloned());
    cli.check_eq(think.and_then(|t| t["value"].as_u64()), Some(9), "--set wins");
    // In text, each value says the flag it came from.
    let text = config.run(&["show", "baseline", "--set", "think_ms=9", "--seed", "3"]);
    let line = |name: &str| text.stdout_lines().into_iter().find(|l| l.trim_start().starts_with(name)).unwrap_or("");
    text.check(line("seed").trim_end().ends_with("--seed"), format!("the seed's origin: {}", line("seed")));
    text.check(line("think_ms").trim_end().ends_with("--set"), format!("think_ms's origin: {}", line("think_ms")));
}

#[test]
fn config_file_errors_point_at_file_line_and_key() {
    let cases: &[(&str, &[&str])] = &[
        ("replicates = 2\nthinkms = 1\n", &["crystallize.toml:2", "'thinkms'", "valid keys here"]),
        ("[params]\nthinkms = 1\n", &["crystallize.toml:2", "unknown key 'thinkms'", "did you mean 'think_ms'"]),
        ("[params]\nthink_ms = \"fast\"\n", &["crystallize.toml:2", "think_ms", "non-negative integer"]),
        ("[params]\nmax_rounds = \"x\"\n", &["crystallize.toml:2", "max_rounds", "u32"]),
        ("[treatments.dolphn]\ntemperature = 1.0\n", &["crystallize.toml:1", "'dolphn'", "did you mean 'dolphin'"]),
        ("seed = -1\n", &["crystallize.toml:1", "'seed' must be a non-negative integer"]),
        ("[params\n", &["crystallize.toml:1", "not valid TOML"]),
    ];
    for (text, needles) in cases {
        let config = Config::new(text);
        let out = config.run(&["run", "--replicates", "1"]);
        out.assert_code(2);
        for needle in *needles {
            out.assert_stderr_contains(needle);
        }
        out.check(!config.dir.path().join(".crystallize").exists(), "no run was stored");
    }
}
