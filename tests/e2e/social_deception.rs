//! End-to-end tests of the `social_deception` example: the binary is run as a user would run it
//! (each command in a fresh temporary directory, stdout and stderr piped) and we check what a user
//! would check: what `list` shows, the table and JSON of `run`, determinism, `debug`, bad input
//! and failing units. Compiled as the `e2e` test of the example package, so Cargo builds the
//! binary first and `CARGO_BIN_EXE_social_deception` points at it.
//!
//! The CLI contract is `CLI.md`; fields it does not mention are ignored, so that adding fields
//! (a run id, a store) does not break these tests.

use std::collections::{BTreeMap, BTreeSet};

use crystallize_tests::{shell_split, Command, Output};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_social_deception");
/// The example's source, to find where its items are (so the tests survive edits to it).
const MAIN_RS: &str = include_str!("../../examples/social_deception/src/main.rs");

const EXPERIMENT: &str = "social_deception";
const CONDITIONS: [&str; 3] = ["baseline", "dolphin", "dolphin_spoilers"];
const METRICS: [&str; 3] = ["hallucinations", "rounds", "win"];
const DOLPHIN_MODEL: &str = "dolphin-llama3:latest";
const LLAMA_MODEL: &str = "llama3:8b";
const CRASH_MESSAGE: &str = "simulated crash in replicate 1";

/// Runs the example with `args` in a fresh temporary directory.
fn sd(args: &[&str]) -> Output {
    Command::new(BIN).args(args).run()
}

// ---------------------------------------------------------------------------------------------
// Reading the example's source

/// The 1-based number of the first line of main.rs that contains `needle`.
fn line_of(needle: &str) -> u64 {
    let index = MAIN_RS.lines().position(|l| l.contains(needle));
    1 + index.unwrap_or_else(|| panic!("main.rs has no line containing {needle:?}")) as u64
}

/// The lines a location of item `fn name` may point at: from its first attribute to the `fn`.
fn item_lines(name: &str) -> std::ops::RangeInclusive<u64> {
    let fn_line = line_of(&format!("fn {name}("));
    let lines: Vec<&str> = MAIN_RS.lines().collect();
    let mut first = fn_line;
    // Walk up over attributes (and their continuation lines) but not over doc comments.
    while first > 1 {
        let above = lines[first as usize - 2].trim_start();
        if above.starts_with("///") || above.starts_with("//") || above.is_empty() || above.ends_with('}') {
            break;
        }
        first -= 1;
    }
    first..=fn_line
}

/// Every line number that follows `main.rs:` in `text`.
fn main_rs_lines_in(text: &str) -> Vec<u64> {
    text.match_indices("main.rs:")
        .filter_map(|(at, needle)| {
            let digits: String = text[at + needle.len()..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

/// A JSON location, either `"file:line[:col]"` or `{"file": .., "line": ..}`: (file, line).
fn json_location(location: &Value) -> Option<(String, u64)> {
    match location {
        Value::String(text) => {
            let mut parts = text.split(':');
            let file = parts.next()?.to_owned();
            Some((file, parts.next()?.parse().ok()?))
        }
        Value::Object(fields) => Some((fields.get("file")?.as_str()?.to_owned(), fields.get("line")?.as_u64()?)),
        _ => None,
    }
}

/// Checks that JSON `location` points into main.rs at item `fn name`.
#[track_caller]
fn check_location(out: &Output, location: &Value, name: &str) {
    let lines = item_lines(name);
    let found = json_location(location);
    out.check(
        found.as_ref().is_some_and(|(file, line)| file.ends_with("main.rs") && lines.contains(line)),
        format!("location of {name} is {location}, expected main.rs at a line in {lines:?}"),
    );
}

// ---------------------------------------------------------------------------------------------
// Reading the output of `run`

/// A unit of `run --json`, reduced to what must be reproducible.
#[derive(Clone, Debug, PartialEq)]
struct UnitFacts {
    seed: u64,
    status: String,
    metrics: BTreeMap<String, f64>,
}

/// The units of a `run --json` object by (condition, replicate); fails on a duplicate.
#[track_caller]
fn units(out: &Output, summary: &Value) -> BTreeMap<(String, u64), UnitFacts> {
    let list = out.at(summary, "/units").as_array().unwrap_or_else(|| out.fail("`units` is not an array"));
    let mut units = BTreeMap::new();
    for (index, unit) in list.iter().enumerate() {
        let at = |field: &str| format!("/units/{index}/{field}");
        let metrics = out
            .at(summary, &at("metrics"))
            .as_object()
            .unwrap_or_else(|| out.fail(format!("{} is not an object", at("metrics"))))
            .iter()
            .map(|(name, value)| {
                let value =
                    value.as_f64().unwrap_or_else(|| out.fail(format!("metric {name} of unit {index} is {value}")));
                (name.clone(), value)
            })
            .collect();
        let key = (out.str_at(unit, "/condition").to_owned(), out.u64_at(unit, "/replicate"));
        let facts =
            UnitFacts { seed: out.u64_at(unit, "/seed"), status: out.str_at(unit, "/status").to_owned(), metrics };
        if units.insert(key.clone(), facts).is_some() {
            out.fail(format!("unit {key:?} appears twice"));
        }
    }
    units
}

/// Every (condition, replicate) of a full run of `replicates` replicates.
fn all_keys(replicates: u64) -> BTreeSet<(String, u64)> {
    CONDITIONS.iter().flat_map(|c| (0..replicates).map(move |r| (c.to_string(), r))).collect()
}

/// The rows of the summary table on stdout, by (condition, metric), each as column -> cell.
#[track_caller]
fn table(out: &Output) -> BTreeMap<(String, String), BTreeMap<String, String>> {
    let lines = out.stdout_lines();
    let header_at = lines
        .iter()
        .position(|l| l.split_whitespace().take(3).eq(["condition", "metric", "n"]))
        .unwrap_or_else(|| out.fail("no table header (condition metric n ...) on stdout"));
    let header: Vec<&str> = lines[header_at].split_whitespace().collect();
    let mut rows = BTreeMap::new();
    // The table ends at the first empty line (the hypotheses follow it).
    for line in lines[header_at + 1..].iter().take_while(|l| !l.trim().is_empty()) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        if cells.len() != header.len() {
            continue;
        }
        let row: BTreeMap<String, String> =
            header.iter().zip(&cells).map(|(h, c)| (h.to_string(), c.to_string())).collect();
        rows.insert((cells[0].to_owned(), cells[1].to_owned()), row);
    }
    rows
}

/// Parses a table cell or a printed metric value.
#[track_caller]
fn number(out: &Output, text: &str) -> f64 {
    text.parse().unwrap_or_else(|_| out.fail(format!("{text:?} is not a number")))
}

/// Mean, sample sd (None below 2 values), min and max of `values`.
fn stats(values: &[f64]) -> (f64, Option<f64>, f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = (values.len() > 1).then(|| (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (mean, sd, min, max)
}

/// The runs stored in the default store of `out`'s working directory (`.crystallize/runs/<id>`,
/// docs/STORE.md); empty when there is no store.
fn stored_runs(out: &Output) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(out.dir.join(".crystallize").join("runs")) else { return Vec::new() };
    entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect()
}

/// Whether a unit of `run --json` has no `error` (absent or null).
fn has_no_error(unit: &Value) -> bool {
    !matches!(unit.get("error"), Some(error) if !error.is_null())
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance
}

/// Fails unless `text` has no terminal control codes (escape sequences, carriage returns...).
#[track_caller]
fn check_no_control_codes(out: &Output, text: &str, stream: &str) {
    let bad = text.char_indices().find(|(_, c)| c.is_control() && *c != '\n');
    if let Some((at, c)) = bad {
        out.fail(format!("{stream} has control character {c:?} at byte {at}"));
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the output of `debug`

/// The rest of the first stdout line whose first word is `label` (e.g. `seed`, `input`).
#[track_caller]
fn labelled<'o>(out: &'o Output, label: &str) -> &'o str {
    out.stdout
        .lines()
        .find_map(|line| line.strip_prefix(label).filter(|rest| rest.starts_with(char::is_whitespace)).map(str::trim))
        .unwrap_or_else(|| out.fail(format!("no line starting with {label:?}")))
}

/// The `params` line of `debug` as name -> (value, origin), from `name = value (origin), ...`.
#[track_caller]
fn debug_params(out: &Output) -> BTreeMap<String, (String, String)> {
    let text = labelled(out, "params");
    let mut params = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let parsed = (|| {
            let (name, after) = rest.split_once(" = ")?;
            let open = after.find(" (")?;
            let close = open + after[open..].find(')')?;
            let value = &after[..open];
            let origin = &after[open + 2..close];
            let next = after[close + 1..].trim_start_matches(',').trim_start();
            Some((name.trim().to_owned(), value.to_owned(), origin.to_owned(), next))
        })();
        let Some((name, value, origin, next)) = parsed else {
            out.fail(format!("cannot read `name = value (origin)` from params line at {rest:?}"))
        };
        params.insert(name, (value, origin));
        rest = next;
    }
    params
}

/// The `metrics` line of `debug` as name -> value, from `name = value, ...`.
#[track_caller]
fn debug_metrics(out: &Output) -> BTreeMap<String, f64> {
    labelled(out, "metrics")
        .split(", ")
        .map(|pair| {
            let (name, value) = pair.split_once(" = ").unwrap_or_else(|| out.fail(format!("bad metric {pair:?}")));
            (name.to_owned(), number(out, value))
        })
        .collect()
}

/// The index of the first stdout line with the words `marker step name` (e.g. `> step play`).
fn step_line(lines: &[&str], marker: &str, name: &str) -> Option<usize> {
    lines.iter().position(|l| l.split_whitespace().collect::<Vec<_>>().windows(3).any(|w| w == [marker, "step", name]))
}

/// The `round` events of `debug`: (line index, payload).
#[track_caller]
fn round_events(out: &Output) -> Vec<(usize, Value)> {
    out.stdout_lines()
        .iter()
        .enumerate()
        .filter_map(|(index, line)| {
            let at = line.find(" round {")?;
            let payload = serde_json::from_str(&line[at + " round ".len()..])
                .unwrap_or_else(|e| out.fail(format!("round event on line {index} is not JSON: {e}")));
            Some((index, payload))
        })
        .collect()
}

/// The index of the line reporting that the unit ended (`ok ...` or `FAILED ...`).
#[track_caller]
fn end_line(out: &Output, word: &str) -> usize {
    out.stdout_lines()
        .iter()
        .position(|l| l.split_whitespace().next() == Some(word))
        .unwrap_or_else(|| out.fail(format!("no line starting with {word:?}")))
}

/// Checks what `debug` shows of one successful unit against what `run --json` recorded for it.
#[track_caller]
fn check_debug_unit(out: &Output, recorded: &UnitFacts) {
    out.assert_code(0);
    // Compared as text: a u64 seed does not survive a trip through f64.
    out.check_eq(labelled(out, "seed"), recorded.seed.to_string().as_str(), "debug shows the seed run --json recorded");

    let lines = out.stdout_lines();
    let play_start = step_line(&lines, ">", "play").unwrap_or_else(|| out.fail("no `> step play` line"));
    let play_end = step_line(&lines, "<", "play").unwrap_or_else(|| out.fail("no `< step play` line"));
    let deal_start = step_line(&lines, ">", "deal_tells").unwrap_or_else(|| out.fail("no `> step deal_tells` line"));
    let deal_end = step_line(&lines, "<", "deal_tells").unwrap_or_else(|| out.fail("no `< step deal_tells` line"));
    let round_start = step_line(&lines, ">", "play_round").unwrap_or_else(|| out.fail("no `> step play_round` line"));
    let round_end = step_line(&lines, "<", "play_round").unwrap_or_else(|| out.fail("no `< step play_round` line"));
    out.check(
        play_start < deal_start && deal_start < deal_end && deal_end < round_start && round_start < round_end,
        "steps start and end in order: play > deal_tells > < > play_round <",
    );
    out.check(round_end < play_end, "play_round ends before play ends");

    let ok = end_line(out, "ok");
    let metrics_line = end_line(out, "metrics");
    out.check(play_end < ok && ok < metrics_line, "`< step play`, then `ok`, then `metrics`");

    let events = round_events(out);
    out.check(!events.is_empty(), "at least one `round` event");
    for (index, (line, payload)) in events.iter().enumerate() {
        out.check(
            play_start < *line && *line < play_end,
            format!("round event on line {line} is shown live, inside step play (lines {play_start}..{play_end})"),
        );
        out.check(*line < ok, format!("round event on line {line} comes before the final `ok` line {ok}"));
        out.check_eq(out.u64_at(payload, "/round"), index as u64 + 1, "rounds are numbered 1, 2, ... in order");
    }

    let metrics = debug_metrics(out);
    out.check_eq(&metrics, &recorded.metrics, "debug's final metrics are run --json's metrics of that unit");
    out.check_eq(metrics["rounds"], events.len() as f64, "one round event per round played");
    let hallucinated: u64 = events.iter().map(|(_, p)| out.u64_at(p, "/hallucinated_votes")).sum();
    out.check_eq(metrics["hallucinations"], hallucinated as f64, "hallucinations = sum of hallucinated_votes");
    let last = &events.last().unwrap().1;
    let aligned_won = out.u64_at(last, "/deceivers_left") == 0;
    out.check_eq(metrics["win"], if aligned_won { 1.0 } else { 0.0 }, "win = no deceivers left after the last round");
}

/// The input `debug` shows: (models of the players, spoilers).
#[track_caller]
fn debug_input(out: &Output) -> (Vec<String>, bool) {
    let input: Value = serde_json::from_str(labelled(out, "input"))
        .unwrap_or_else(|e| out.fail(format!("the `input` line is not JSON: {e}")));
    let players = out.at(&input, "/players").as_array().unwrap_or_else(|| out.fail("input.players is not an array"));
    let models = (0..players.len()).map(|i| out.str_at(&input, &format!("/players/{i}/model")).to_owned()).collect();
    let spoilers = out.at(&input, "/spoilers").as_bool().unwrap_or_else(|| out.fail("input.spoilers is not a bool"));
    (models, spoilers)
}

fn count(models: &[String], model: &str) -> usize {
    models.iter().filter(|m| *m == model).count()
}

// ---------------------------------------------------------------------------------------------
// list

/// The first stdout line having every one of `words` as a word (identifiers are not matched
/// inside longer ones: `dolphin` is not found in `dolphin_table`).
#[track_caller]
fn line_with_words<'o>(out: &'o Output, words: &[&str]) -> &'o str {
    let has = |line: &str, word: &str| {
        let is_part = |c: char| c.is_alphanumeric() || c == '_';
        line.match_indices(word).any(|(at, _)| {
            let open_before = !word.starts_with(is_part) || !line[..at].ends_with(is_part);
            let open_after = !word.ends_with(is_part) || !line[at + word.len()..].starts_with(is_part);
            open_before && open_after
        })
    };
    out.stdout
        .lines()
        .find(|line| words.iter().all(|w| has(line, w)))
        .unwrap_or_else(|| out.fail(format!("no line of stdout has all the words {words:?}")))
}

#[test]
fn list_names_the_experiment_its_datasource_treatments_params_hypothesis_and_locations() {
    let out = sd(&["list"]);
    out.assert_code(0);
    // The facts, each on one line with what belongs to it.
    let line_with = |words: &[&str]| line_with_words(&out, words);
    let located = |line: &str, item: &str| {
        let range = item_lines(item);
        out.check(
            main_rs_lines_in(line).iter().any(|l| range.contains(l)),
            format!("the line {line:?} shows {item}'s location, main.rs at a line in {range:?}"),
        );
    };
    located(line_with(&[EXPERIMENT, "main.rs:"]), EXPERIMENT);
    located(line_with(&["datasource", "llama_table"]), "llama_table");
    line_with(&["replicates", "10"]);
    line_with(&["seed", "42"]);
    let params = line_with(&["temperature", "think_ms", "crash_on_replicate"]);
    for (name, ty, default) in
        [("temperature", "f64", "0.7"), ("think_ms", "u64", "0"), ("crash_on_replicate", "Option<u64>", "none")]
    {
        let at = params.find(name).unwrap();
        let shown = params[at..].split(',').next().unwrap();
        out.check(
            shown.contains(ty) && shown.split(|c: char| c.is_whitespace() || c == '=').any(|w| w == default),
            format!("param {name} is shown with type {ty} and default {default}: {shown:?}"),
        );
    }
    let dolphin = line_with(&["dolphin", "dolphin_table"]);
    located(dolphin, "dolphin");
    let spoilers = line_with(&["dolphin_spoilers", "dolphin_table", "temperature", "1.2"]);
    located(spoilers, "dolphin_spoilers");
    line_with(&["dolphin.win < baseline.win"]);
    line_with(&["metrics", "win, rounds, hallucinations"]);
}

#[test]
fn list_json_has_the_same_facts() {
    let out = sd(&["list", "--json"]);
    out.assert_code(0);
    let all = out.json();
    let experiments = all.as_array().unwrap_or_else(|| out.fail("list --json is not an array"));
    out.check_eq(experiments.len(), 1, "one experiment");
    let e = &experiments[0];
    out.check_eq(out.str_at(e, "/name"), EXPERIMENT, "name");
    check_location(&out, out.at(e, "/location"), EXPERIMENT);
    out.check_eq(out.str_at(e, "/datasource/name"), "llama_table", "datasource");
    check_location(&out, out.at(e, "/datasource/location"), "llama_table");
    out.check_eq(out.u64_at(e, "/replicates"), 10, "default replicates");
    out.check_eq(out.u64_at(e, "/seed"), 42, "default seed");

    let params = out.at(e, "/params").as_array().unwrap_or_else(|| out.fail("params is not an array"));
    let params: BTreeMap<&str, &Value> = params.iter().map(|p| (out.str_at(p, "/name"), p)).collect();
    for name in ["temperature", "think_ms", "crash_on_replicate"] {
        out.check(params.contains_key(name), format!("param {name} is listed"));
    }
    for (name, ty, default) in [
        ("temperature", "f64", Value::from(0.7)),
        ("think_ms", "u64", Value::from(0)),
        ("crash_on_replicate", "Option<u64>", Value::Null),
    ] {
        out.check_eq(out.str_at(params[name], "/type"), ty, format!("type of {name}"));
        out.check_eq(out.at(params[name], "/default").as_f64(), default.as_f64(), format!("default of {name}"));
        out.check_eq(out.at(params[name], "/default").is_null(), default.is_null(), format!("default of {name}"));
    }
    let metrics = out.at(e, "/metrics");
    out.check_eq(metrics, &serde_json::json!(["win", "rounds", "hallucinations"]), "declared metrics");

    let treatments = out.at(e, "/treatments").as_array().unwrap_or_else(|| out.fail("treatments is not an array"));
    let treatments: BTreeMap<&str, &Value> = treatments.iter().map(|t| (out.str_at(t, "/name"), t)).collect();
    out.check_eq(treatments.keys().copied().collect(), vec!["dolphin", "dolphin_spoilers"], "treatments");
    for (name, treatment) in &treatments {
        check_location(&out, out.at(treatment, "/location"), name);
        out.check_eq(out.str_at(treatment, "/datasource/name"), "dolphin_table", format!("datasource of {name}"));
        check_location(&out, out.at(treatment, "/datasource/location"), "dolphin_table");
    }
    out.check_eq(
        out.f64_at(treatments["dolphin_spoilers"], "/sets/temperature"),
        1.2,
        "dolphin_spoilers sets temperature",
    );
    out.check(
        out.at(treatments["dolphin"], "/sets").as_object().is_some_and(|s| s.is_empty()),
        "dolphin sets no param",
    );
    out.check_eq(out.at(e, "/hypotheses"), &serde_json::json!(["dolphin.win < baseline.win"]), "hypotheses");
}

// ---------------------------------------------------------------------------------------------
// run

#[test]
fn run_prints_a_table_of_every_condition_and_metric_that_matches_the_json() {
    let out = sd(&["run", "--replicates", "4"]);
    out.assert_code(0);
    check_no_control_codes(&out, &out.stdout, "stdout");
    let rows = table(&out);
    let expected: BTreeSet<(String, String)> =
        CONDITIONS.iter().flat_map(|c| METRICS.iter().map(move |m| (c.to_string(), m.to_string()))).collect();
    out.check_eq(rows.keys().cloned().collect::<BTreeSet<_>>(), expected, "one row per condition and metric");

    // The same run as JSON (same seed, so the same units): the table shows its aggregates.
    let json_out = sd(&["run", "--replicates", "4", "--json"]);
    json_out.assert_code(0);
    let summary = json_out.json();
    for ((condition, metric), row) in &rows {
        out.check_eq(row["n"].as_str(), "4", format!("n of {condition}/{metric}"));
        let cell = |column: &str| number(&out, &row[column]);
        let (mean, min, max) = (cell("mean"), cell("min"), cell("max"));
        out.check(min <= mean && mean <= max, format!("{condition}/{metric}: min <= mean <= max"));
        if metric == "win" {
            out.check(0.0 <= min && max <= 1.0, format!("{condition}/win is a proportion"));
        }
        for column in ["mean", "sd", "min", "max"] {
            let json = json_out.f64_at(&summary, &format!("/conditions/{condition}/{metric}/{column}"));
            out.check(
                close(cell(column), json, 1e-4 * json.abs().max(1.0)),
                format!("{condition}/{metric} {column}: table shows {}, run --json says {json}", row[column]),
            );
        }
    }
}

#[test]
fn run_json_has_the_shape_of_cli_md_and_its_aggregates_match_its_units() {
    let out = sd(&["run", "--replicates", "3", "--json"]);
    out.assert_code(0);
    let summary = out.json();
    let run = out.at(&summary, "/run");
    out.check(run.is_null() || run.is_string(), format!("`run` is an id or null, got {run}"));
    if let Some(id) = run.as_str() {
        out.check_eq(stored_runs(&out), vec![id.to_owned()], "the run is stored under its id in ./.crystallize");
    }
    out.check_eq(out.str_at(&summary, "/experiment"), EXPERIMENT, "experiment");

    let list = out.at(&summary, "/units").as_array().unwrap_or_else(|| out.fail("units is not an array"));
    for (index, unit) in list.iter().enumerate() {
        out.check_eq(out.str_at(unit, "/type"), "unit", format!("units[{index}].type"));
        out.check_eq(out.str_at(unit, "/experiment"), EXPERIMENT, format!("units[{index}].experiment"));
        if let Some(unit_run) = unit.get("run") {
            out.check_eq(unit_run, run, format!("units[{index}].run is the run's id"));
        }
        out.check_eq(out.str_at(unit, "/status"), "ok", format!("units[{index}].status"));
        out.check(out.f64_at(unit, "/duration_ms") >= 0.0, format!("units[{index}].duration_ms >= 0"));
        out.check(has_no_error(unit), format!("units[{index}] has no error"));
    }
    let units = units(&out, &summary);
    out.check_eq(units.keys().cloned().collect(), all_keys(3), "every condition x replicate 0..3 once");
    for ((condition, replicate), unit) in &units {
        out.check_eq(
            unit.metrics.keys().map(String::as_str).collect::<Vec<_>>(),
            METRICS.to_vec(),
            format!("metrics of {condition}/{replicate}"),
        );
        out.check(
            unit.metrics["win"] == 0.0 || unit.metrics["win"] == 1.0,
            format!("win of {condition}/{replicate} is 0 or 1"),
        );
        out.check(unit.metrics["rounds"] >= 1.0, format!("{condition}/{replicate} played a round"));
    }

    let conditions =
        out.at(&summary, "/conditions").as_object().unwrap_or_else(|| out.fail("conditions is not an object"));
    out.check_eq(conditions.keys().map(String::as_str).collect::<BTreeSet<_>>(), CONDITIONS.into(), "conditions");
    for condition in CONDITIONS {
        for metric in METRICS {
            let values: Vec<f64> = (0..3).map(|r| units[&(condition.to_owned(), r)].metrics[metric]).collect();
            let (mean, sd, min, max) = stats(&values);
            let at = |field: &str| format!("/conditions/{condition}/{metric}/{field}");
            out.check_eq(out.u64_at(&summary, &at("n")), 3, at("n"));
            for (field, expected) in [("mean", mean), ("sd", sd.unwrap()), ("min", min), ("max", max)] {
                let shown = out.f64_at(&summary, &at(field));
                out.check(
                    close(shown, expected, 1e-9),
                    format!("{} = {shown}, recomputed from units: {expected}", at(field)),
                );
            }
        }
    }
}

#[test]
fn run_stdout_is_pure_json_and_no_stream_has_control_codes_when_piped() {
    for args in [&["run", "--replicates", "3", "--json"][..], &["list", "--json"], &["run", "--replicates", "2"]] {
        let out = sd(args);
        out.assert_code(0);
        check_no_control_codes(&out, &out.stdout, "stdout");
        check_no_control_codes(&out, &out.stderr, "stderr (not a terminal here: no progress line)");
        if args.contains(&"--json") {
            // `json()` accepts one JSON value and surrounding whitespace, nothing else.
            let value = out.json();
            out.check(value.is_object() || value.is_array(), "stdout is a JSON object or array");
            out.check_eq(out.stdout.trim().lines().count(), 1, "the JSON is printed on one line");
        }
    }
}

#[test]
fn run_treatment_runs_the_baseline_and_only_that_treatment() {
    let out = sd(&["run", "--treatment", "dolphin", "--replicates", "2", "--json"]);
    out.assert_code(0);
    let summary = out.json();
    let keys: BTreeSet<(String, u64)> = units(&out, &summary).into_keys().collect();
    let expected: BTreeSet<(String, u64)> =
        ["baseline", "dolphin"].iter().flat_map(|c| (0..2).map(move |r| (c.to_string(), r))).collect();
    out.check_eq(keys, expected, "units of run --treatment dolphin");
    let conditions = out.at(&summary, "/conditions").as_object().unwrap_or_else(|| out.fail("conditions"));
    out.check_eq(
        conditions.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        ["baseline", "dolphin"].into(),
        "conditions",
    );
}

// ---------------------------------------------------------------------------------------------
// determinism

#[test]
fn runs_are_deterministic_across_jobs_and_seeds_follow_the_default_policy() {
    let serial = sd(&["run", "--replicates", "6", "--jobs", "1", "--json"]);
    let parallel = sd(&["run", "--replicates", "6", "--jobs", "2", "--json"]);
    serial.assert_code(0);
    parallel.assert_code(0);
    let (serial_json, parallel_json) = (serial.json(), parallel.json());
    let a = units(&serial, &serial_json);
    let b = units(&parallel, &parallel_json);
    serial.check_eq(a.keys().cloned().collect(), all_keys(6), "every condition x replicate 0..6 once");
    for (key, unit) in &a {
        serial.check_eq(unit.status.as_str(), "ok", format!("status of {key:?}"));
        parallel.check_eq(b.get(key), Some(unit), format!("unit {key:?} with --jobs 2 as with --jobs 1"));
    }
    parallel.check_eq(b.len(), a.len(), "as many units with --jobs 2 as with --jobs 1");
    parallel.check_eq(
        parallel.at(&parallel_json, "/conditions"),
        serial.at(&serial_json, "/conditions"),
        "the same aggregates with --jobs 2 as with --jobs 1",
    );

    // Default policy: replicate k has one seed, the same in every condition; replicates differ.
    let mut seeds = BTreeSet::new();
    for replicate in 0..6 {
        let seed = a[&("baseline".to_owned(), replicate)].seed;
        for condition in CONDITIONS {
            serial.check_eq(
                a[&(condition.to_owned(), replicate)].seed,
                seed,
                format!("seed of {condition}/{replicate}"),
            );
        }
        seeds.insert(seed);
    }
    serial.check_eq(seeds.len(), 6, "six replicates, six distinct seeds");
    // Same seed, different treatment: the treatments change something.
    serial.check(
        (0..6).any(|r| a[&("baseline".to_owned(), r)].metrics != a[&("dolphin".to_owned(), r)].metrics),
        "dolphin differs from baseline in some replicate",
    );

    let reseeded = sd(&["run", "--replicates", "6", "--jobs", "2", "--seed", "7", "--json"]);
    reseeded.assert_code(0);
    let c = units(&reseeded, &reseeded.json());
    reseeded.check_eq(c.keys().cloned().collect(), all_keys(6), "every unit with --seed 7");
    for (key, unit) in &c {
        reseeded.check(unit.seed != a[key].seed, format!("{key:?} gets another seed with --seed 7"));
    }
    reseeded.check(c.iter().any(|(key, unit)| unit.metrics != a[key].metrics), "--seed 7 changes some metrics");
}

// ---------------------------------------------------------------------------------------------
// debug

#[test]
fn debug_dolphin_shows_datasource_params_seed_input_steps_live_events_and_metrics() {
    let run = sd(&["run", "--replicates", "1", "--json"]);
    run.assert_code(0);
    let recorded = units(&run, &run.json());

    let out = sd(&["debug", "dolphin"]);
    out.assert_code(0);
    out.check(labelled(&out, "datasource").contains("dolphin_table"), "datasource dolphin_table");
    let params = debug_params(&out);
    for (name, value) in [("temperature", "0.7"), ("think_ms", "0"), ("crash_on_replicate", "none")] {
        let (shown, origin) = params.get(name).unwrap_or_else(|| out.fail(format!("param {name} is not shown")));
        out.check_eq(shown.as_str(), value, format!("value of {name}"));
        out.check(origin.contains("default"), format!("origin of {name} is the default, got {origin:?}"));
    }
    let (models, spoilers) = debug_input(&out);
    out.check_eq((count(&models, DOLPHIN_MODEL), models.len()), (3, 6), "three of six players are dolphin models");
    out.check(!spoilers, "no spoilers for dolphin");
    check_debug_unit(&out, &recorded[&("dolphin".to_owned(), 0)]);
    out.check(!out.dir.join(".crystallize").exists(), "debug stores nothing (no --keep)");
}

#[test]
fn debug_dolphin_spoilers_shows_the_treatments_temperature_and_mutated_input() {
    let out = sd(&["debug", "dolphin_spoilers"]);
    out.assert_code(0);
    out.check(labelled(&out, "datasource").contains("dolphin_table"), "datasource dolphin_table");
    let params = debug_params(&out);
    let (temperature, origin) = &params["temperature"];
    out.check_eq(temperature.as_str(), "1.2", "temperature set by the treatment");
    out.check(origin.contains("dolphin_spoilers"), format!("temperature's origin names the treatment: {origin:?}"));
    out.check(params["think_ms"].1.contains("default"), "think_ms keeps its default");
    let (models, spoilers) = debug_input(&out);
    out.check_eq(count(&models, DOLPHIN_MODEL), 3, "three dolphin players");
    out.check(spoilers, "the treatment turned spoilers on in the input");
}

#[test]
fn debug_a_replicate_reproduces_that_unit_of_a_run() {
    let run = sd(&["run", "--replicates", "3", "--json"]);
    run.assert_code(0);
    let recorded = units(&run, &run.json());

    let out = sd(&["debug", "social_deception/baseline", "--replicate", "2"]);
    out.check(labelled(&out, "datasource").contains("llama_table"), "the baseline's datasource");
    let (models, spoilers) = debug_input(&out);
    out.check_eq(count(&models, LLAMA_MODEL), 6, "all six players are llama models");
    out.check(!spoilers, "no spoilers in the baseline");
    check_debug_unit(&out, &recorded[&("baseline".to_owned(), 2)]);
    out.check(
        recorded[&("baseline".to_owned(), 2)].seed != recorded[&("baseline".to_owned(), 0)].seed,
        "replicate 2 has its own seed",
    );

    // With another run seed, debug follows it like run does.
    let run7 = sd(&["run", "--replicates", "2", "--seed", "7", "--json"]);
    run7.assert_code(0);
    let recorded7 = units(&run7, &run7.json());
    let out7 = sd(&["debug", "dolphin", "--replicate", "1", "--seed", "7"]);
    check_debug_unit(&out7, &recorded7[&("dolphin".to_owned(), 1)]);
}

#[test]
fn run_once_with_the_experiments_name_and_verbose_debugs_its_baseline() {
    let expected = sd(&["debug", "baseline"]);
    expected.assert_code(0);
    let out = sd(&["run-once", EXPERIMENT, "--verbose"]);
    out.assert_code(0);
    out.check_eq(labelled(&out, "seed"), labelled(&expected, "seed"), "run-once EXP runs the baseline's replicate 0");
    out.check(labelled(&out, "datasource").contains("llama_table"), "the baseline's datasource");
    out.check_eq(debug_metrics(&out), debug_metrics(&expected), "the same unit as debug baseline");
}

#[test]
fn debug_steps_off_hides_step_lines_but_keeps_events_and_metrics() {
    let all = sd(&["debug", "dolphin", "--steps", "all"]);
    all.assert_code(0);
    let off = sd(&["debug", "dolphin", "--steps", "off"]);
    off.assert_code(0);
    let steps =
        |out: &Output| out.stdout_lines().iter().filter(|l| l.contains("> step ") || l.contains("< step ")).count();
    all.check(steps(&all) > 0, "--steps all prints the step lines");
    off.check_eq(steps(&off), 0, "--steps off prints no step line");
    off.check_eq(round_events(&off).len(), round_events(&all).len(), "events are still printed");
    off.check_eq(debug_metrics(&off), debug_metrics(&all), "metrics are still printed");
    let bad = sd(&["debug", "dolphin", "--steps", "some"]);
    bad.assert_code(2).assert_stderr_contains("off, summary, all");
}

// ---------------------------------------------------------------------------------------------
// bad input

#[test]
fn bad_input_exits_2_naming_the_value_and_what_is_valid_before_anything_runs() {
    let cases: &[(&[&str], &[&str])] = &[
        (&["run", "--treatment", "dolphn"], &["'dolphn'", "did you mean 'dolphin'", "dolphin_spoilers"]),
        (&["run", "--treatment", "dolphn", "--json"], &["'dolphn'", "did you mean 'dolphin'"]),
        (&["debug", "dolphn"], &["'dolphn'", "did you mean 'dolphin'", "baseline"]),
        (&["run", "nosuch_experiment"], &["'nosuch_experiment'", EXPERIMENT]),
        (&["debug", "nosuch_experiment/baseline"], &["'nosuch_experiment'", EXPERIMENT]),
        (&["run", "--set", "thinkms=0"], &["'thinkms'", "did you mean 'think_ms'"]),
        (&["debug", "baseline", "--set", "thinkms=0"], &["'thinkms'", "did you mean 'think_ms'"]),
        (&["run", "--set", "think_ms=fast"], &["think_ms", "'fast'", "u64"]),
        (&["run", "--set", "temperature=hot", "--json"], &["temperature", "'hot'", "f64"]),
        (&["run", "--replicates", "0"], &["'0'", "--replicates"]),
        (&["run", "--jobs", "0"], &["'0'", "--jobs"]),
        (&["run", "--timeout", "5x"], &["'5x'", "500ms, 120s, 2min, 1h"]),
        (&["run", "--timeout", "0s"], &["'0s'", "more than 0"]),
        (&["run", "--retries", "-1"], &["-1"]),
        (&["run", "--retries", "1000"], &["1000", "--retries"]),
        (&["run", "--limit", "ollama=0"], &["'0'", "1 to 1000000"]),
        (&["run", "--limit", "ollama"], &["'ollama'", "NAME=N"]),
        (&["run", "--limit", "ollama=2"], &["unknown limit 'ollama'", "no step declares a limit"]),
    ];
    for (args, needles) in cases {
        let out = sd(args);
        out.assert_code(2);
        for needle in *needles {
            out.assert_stderr_contains(needle);
        }
        // Nothing ran: no table, no JSON, no debug trace.
        out.check(out.stdout.trim().is_empty(), "stdout is empty: no unit ran");
        out.check(!out.stderr.contains("failed"), "no unit is reported as failed");
        out.check(stored_runs(&out).is_empty(), "no run was stored");
    }
}

// ---------------------------------------------------------------------------------------------
// failures

#[test]
fn a_panicking_unit_fails_alone_and_the_printed_command_reproduces_it() {
    let panic_line = line_of("panic!(\"simulated crash");
    let out = sd(&["run", "--replicates", "4", "--set", "crash_on_replicate=1", "--json"]);
    out.assert_code(1);
    check_no_control_codes(&out, &out.stdout, "stdout");
    let summary = out.json();
    let list = out.at(&summary, "/units").as_array().unwrap_or_else(|| out.fail("units is not an array"));
    let units = units(&out, &summary);
    out.check_eq(units.keys().cloned().collect(), all_keys(4), "every unit ran despite the failures");
    for (index, unit) in list.iter().enumerate() {
        let (condition, replicate) = (out.str_at(unit, "/condition"), out.u64_at(unit, "/replicate"));
        if replicate == 1 {
            out.check_eq(out.str_at(unit, "/status"), "error", format!("{condition}/1 failed"));
            let message = out.str_at(unit, "/error/message");
            out.check(
                message.contains(CRASH_MESSAGE),
                format!("units[{index}].error.message is the panic's: {message:?}"),
            );
            let location = out.str_at(unit, "/error/location");
            out.check(
                location.contains("main.rs:") && main_rs_lines_in(location) == [panic_line],
                format!("units[{index}].error.location {location:?} is the panic, main.rs:{panic_line}"),
            );
        } else {
            out.check_eq(out.str_at(unit, "/status"), "ok", format!("{condition}/{replicate} is ok"));
            out.check(has_no_error(unit), format!("{condition}/{replicate} has no error"));
            out.check_eq(units[&(condition.to_owned(), replicate)].metrics.len(), 3, "the ok unit has its metrics");
        }
    }
    for condition in CONDITIONS {
        for metric in METRICS {
            let n = out.u64_at(&summary, &format!("/conditions/{condition}/{metric}/n"));
            out.check_eq(n, 3, format!("{condition}/{metric} aggregates the 3 ok units"));
        }
    }

    // stderr: each failure with a command that reproduces it, run where the user ran `run` (the
    // command may name the stored run instead of repeating the --set).
    let run_id = out.at(&summary, "/run").as_str();
    for condition in CONDITIONS {
        let line = out
            .stderr_lines()
            .into_iter()
            .find(|line| {
                let words = shell_split(line).unwrap_or_default();
                words.iter().position(|w| w == "debug").is_some_and(|at| {
                    words.get(at + 1).is_some_and(|c| c.as_str() == condition || c.ends_with(&format!("/{condition}")))
                })
            })
            .unwrap_or_else(|| out.fail(format!("stderr has no `debug {condition}` command")));
        let words = shell_split(line).unwrap_or_else(|| out.fail(format!("unbalanced quotes in {line:?}")));
        let at = words.iter().position(|w| w == "debug").unwrap();
        let args: Vec<&str> = words[at..].iter().map(String::as_str).collect();
        let has = |pair: [&str; 2]| args.windows(2).any(|w| w == pair);
        out.check(has(["--replicate", "1"]), format!("{line:?} has --replicate 1"));
        let by_run = run_id.is_some_and(|id| has(["--run", id]));
        out.check(
            has(["--set", "crash_on_replicate=1"]) || by_run,
            format!("{line:?} keeps the --set or names the stored run {run_id:?}"),
        );
        out.check(
            at > 0 && words[at - 1].ends_with("social_deception"),
            format!("{line:?} names the program before `debug`, so it can be pasted"),
        );

        let reproduced = Command::new(BIN).args(&args).current_dir(&out.dir).run();
        if !by_run {
            reproduced.assert_code(1);
        }
        // With --run the exit code says whether the unit reproduced, not whether it failed:
        // CLI.md does not settle which; only bad usage (2) is ruled out here.
        reproduced.check(matches!(reproduced.code(), Some(0 | 1)), "the reproduction ran");
        reproduced.assert_stdout_contains(CRASH_MESSAGE);
        reproduced.assert_stdout_contains(&format!("main.rs:{panic_line}"));
        reproduced.check_eq(
            labelled(&reproduced, "seed"),
            units[&(condition.to_owned(), 1)].seed.to_string().as_str(),
            "the reproduction runs with the failed unit's seed",
        );

        // By hand, anywhere: the same condition, replicate and --set.
        let by_hand = sd(&["debug", condition, "--replicate", "1", "--set", "crash_on_replicate=1"]);
        by_hand.assert_code(1);
        by_hand.assert_stdout_contains(CRASH_MESSAGE);
        by_hand.check_eq(
            labelled(&by_hand, "seed"),
            units[&(condition.to_owned(), 1)].seed.to_string().as_str(),
            "debug --replicate 1 runs with the failed unit's seed",
        );
        by_hand.check(!by_hand.stdout.lines().any(|l| l.starts_with("ok")), "no `ok` line for a failed unit");
    }
    out.check(!out.stderr.contains("panicked at"), "the panics are reported, not dumped raw on stderr");

    // The table says the same, with n = 3.
    let table_out = sd(&["run", "--replicates", "4", "--set", "crash_on_replicate=1"]);
    table_out.assert_code(1);
    table_out.assert_stderr_contains(CRASH_MESSAGE);
    for ((condition, metric), row) in table(&table_out) {
        table_out.check_eq(row["n"].as_str(), "3", format!("n of {condition}/{metric} in the table"));
    }
}

#[test]
fn fail_fast_stops_scheduling_after_the_first_failure() {
    let out =
        sd(&["run", "--replicates", "4", "--set", "crash_on_replicate=1", "--fail-fast", "--jobs", "1", "--json"]);
    out.assert_code(1);
    let summary = out.json();
    let ran = units(&out, &summary);
    let failed: Vec<_> = ran.iter().filter(|(_, u)| u.status == "error").map(|(k, _)| k).collect();
    out.check_eq(failed.len(), 1, "with one job, nothing runs after the first failure");
    out.check_eq(failed[0].1, 1, "the failure is a replicate 1");
    out.check(ran.len() < 12, format!("fewer than the 12 planned units ran ({})", ran.len()));
    out.assert_stderr_contains(CRASH_MESSAGE);

    let full = sd(&["run", "--replicates", "4", "--set", "crash_on_replicate=1", "--jobs", "1", "--json"]);
    full.assert_code(1);
    full.check_eq(units(&full, &full.json()).len(), 12, "without --fail-fast all 12 units run");
}
