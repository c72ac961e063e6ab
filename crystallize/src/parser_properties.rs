//! Property tests of the parsers a user or a file reaches: the hypothesis grammar, `--set` key
//! paths and values, and `crystallize.toml` (the journal's and the manifest's readers have theirs
//! beside them, in `store::journal` and `store`). Thousands of generated inputs each, arbitrary
//! and grammar-shaped: no panic, every rejection a clear error (a non-empty message, a caret
//! inside the text), and what a printer writes parses back to the same thing.
//!
//! Case counts keep the whole set to seconds in a debug build; `PROPTEST_CASES` raises them
//! for a longer search.

use std::path::Path;

use proptest::prelude::*;
use serde_json::Value;

use crate::config_file::ConfigFile;
use crate::hypothesis;
use crate::overrides::{parse_value, KeyPath};

fn cases(n: u32) -> ProptestConfig {
    let n = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(n);
    ProptestConfig { cases: n, failure_persistence: None, ..ProptestConfig::default() }
}

/// Pieces hypotheses are made of, and pieces that break them: glued together at random they
/// reach every branch of the parser far more often than uniformly random text.
fn hypothesis_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z_][A-Za-z0-9_]{0,6}",
        Just(".".to_owned()),
        Just("/".to_owned()),
        prop::sample::select(vec![">", ">=", "<", "<=", "!=", "=", "==", "!", "+", "-", "±"]).prop_map(str::to_owned),
        "[0-9]{1,4}(\\.[0-9]{0,3})?([eE][+-]?[0-9]{0,3})?",
        "\"[^\"]{0,5}\"?",
        "[ \t\n]{1,2}",
        any::<char>().prop_map(String::from),
    ]
}

fn ident() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_]{0,8}"
}

/// A hypothesis as the grammar defines it, with its parts.
fn hypothesis_parts() -> impl Strategy<Value = (String, String, &'static str, String, String, f64)> {
    fn condition() -> impl Strategy<Value = String> {
        (ident(), prop::option::of(ident())).prop_map(|(a, b)| b.map_or(a.clone(), |b| format!("{a}/{b}")))
    }
    fn metric() -> impl Strategy<Value = String> {
        // A quoted metric is any text but '"', and not empty.
        prop_oneof![ident(), "[^\"]{1,8}"]
    }
    let op = prop::sample::select(vec![">", ">=", "<", "<=", "!="]);
    let margin = prop_oneof![Just(0.0), -1e6f64..1e6, any::<f64>().prop_filter("finite", |m| m.is_finite())];
    (condition(), metric(), op, condition(), metric(), margin)
}

#[track_caller]
fn assert_clear_hypothesis_error(text: &str, error: &hypothesis::ParseError) {
    assert!(!error.message.trim().is_empty(), "an empty message for {text:?}");
    assert!(error.position <= text.chars().count(), "caret past the end for {text:?}: {error:?}");
    assert!(error.to_string().contains(error.message.as_str()));
}

proptest! {
    #![proptest_config(cases(3000))]

    #[test]
    fn any_text_is_a_hypothesis_or_a_clear_error(text in "\\PC{0,40}|.{0,40}") {
        match hypothesis::parse(&text) {
            Ok(parsed) => prop_assert_eq!(hypothesis::parse(&parsed.to_string()), Ok(parsed)),
            Err(error) => assert_clear_hypothesis_error(&text, &error),
        }
    }

    #[test]
    fn glued_pieces_are_a_hypothesis_or_a_clear_error(pieces in prop::collection::vec(hypothesis_piece(), 0..12)) {
        let text = pieces.concat();
        match hypothesis::parse(&text) {
            // What parses prints back to a text that parses to the same hypothesis.
            Ok(parsed) => prop_assert_eq!(hypothesis::parse(&parsed.to_string()), Ok(parsed)),
            Err(error) => assert_clear_hypothesis_error(&text, &error),
        }
    }

    #[test]
    fn every_hypothesis_of_the_grammar_parses_to_its_parts_and_prints_back(
        (lc, lm, op, rc, rm, margin) in hypothesis_parts(),
        spaced in any::<bool>(),
    ) {
        let quote = |m: &str| if m.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && m.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') { m.to_owned() } else { format!("\"{m}\"") };
        let gap = if spaced { "  " } else { "" };
        let mut text = format!("{lc}.{}{gap}{op}{gap}{rc}.{}", quote(&lm), quote(&rm));
        if margin != 0.0 {
            text += &format!("{gap}{}{gap}{}", if margin < 0.0 { "-" } else { "+" }, margin.abs());
        }
        let parsed = hypothesis::parse(&text);
        prop_assert!(parsed.is_ok(), "{text:?}: {}", parsed.unwrap_err());
        let parsed = parsed.unwrap();
        prop_assert_eq!((&parsed.left.condition, &parsed.left.metric), (&lc, &lm));
        prop_assert_eq!((&parsed.right.condition, &parsed.right.metric), (&rc, &rm));
        prop_assert_eq!(parsed.op.symbol(), op);
        prop_assert_eq!(parsed.margin.to_bits(), (margin + 0.0).to_bits()); // -0.0 is written as no margin
        prop_assert_eq!(hypothesis::parse(&parsed.to_string()), Ok(parsed));
    }

    #[test]
    fn any_text_is_a_key_path_or_a_clear_error(text in "\\PC{0,30}|[a-z0-9_.\\[\\] =]{0,20}") {
        match KeyPath::parse(&text) {
            Ok(path) => prop_assert_eq!(KeyPath::parse(&path.to_string()).map(|p| p.to_string()), Ok(path.to_string())),
            Err(error) => prop_assert!(error.contains("is not a key path") && error.len() > 20, "{error}"),
        }
    }

    #[test]
    fn every_key_path_of_the_grammar_parses_and_prints_back(
        first in "[^.\\[\\]= \t\n]{1,8}",
        rest in prop::collection::vec(prop_oneof![
            "[^.\\[\\]= \t\n\r\u{b}\u{c}\u{85}\u{a0}\u{1680}\u{2000}-\u{200a}\u{2028}\u{2029}\u{202f}\u{205f}\u{3000}]{1,8}"
                .prop_map(|k| format!(".{k}")),
            any::<usize>().prop_map(|i| format!("[{i}]")),
        ], 0..6),
    ) {
        prop_assume!(!first.chars().any(char::is_whitespace));
        let text = format!("{first}{}", rest.concat());
        let parsed = KeyPath::parse(&text);
        prop_assert!(parsed.is_ok(), "{text:?}: {:?}", parsed);
        prop_assert_eq!(parsed.unwrap().to_string(), text);
    }

    #[test]
    fn any_text_is_a_set_value_or_a_clear_error(text in "\\PC{0,40}|[\\[\\]{}'\",: a-z0-9\\\\.-]{0,30}") {
        if let Err(error) = parse_value(&text) {
            prop_assert!(!error.trim().is_empty(), "an empty message for {text:?}");
        }
    }

    #[test]
    fn json_values_written_as_set_values_parse_back_to_themselves(value in json_value()) {
        // JSON text is override grammar when its strings need no escapes but `\"` and `\\`.
        let text = value.to_string();
        prop_assert_eq!(parse_value(&text), Ok(value), "{}", text);
    }
}

/// JSON values whose strings have no control characters (JSON escapes those as `\n`, `\u0001`,
/// which the override grammar does not read).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        "[^\\p{Cc}]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[^\\p{Cc}]{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Lines of `crystallize.toml`: its keys and others, values of every TOML type and out of
/// range, section headers, and junk.
fn toml_line() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        prop::sample::select(vec!["replicates", "seed", "jobs", "params", "treatments", "experiments", "think_ms"])
            .prop_map(str::to_owned),
        "[a-z_]{1,6}",
        "\"[a-z\\[\\]0-9.]{0,8}\"",
    ];
    let value = prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        Just("18446744073709551615".to_owned()),
        Just("1e400".to_owned()),
        any::<f64>().prop_map(|v| format!("{v:?}")),
        "\"[^\"\\\\\n]{0,8}\"",
        Just("true".to_owned()),
        Just("[1, \"a\", [2]]".to_owned()),
        Just("{ a = 1, b = [] }".to_owned()),
        Just("1979-05-27T07:32:00Z".to_owned()),
        "[^\n]{0,6}",
    ];
    prop_oneof![
        4 => (key.clone(), value).prop_map(|(k, v)| format!("{k} = {v}")),
        1 => prop::sample::select(vec!["params", "treatments.dolphin", "experiments.other", "experiments", "x.y.z"])
            .prop_map(|s| format!("[{s}]")),
        1 => "[^\n]{0,12}",
    ]
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn any_text_is_a_config_file_or_an_error_naming_the_file(text in "\\PC{0,60}") {
        if let Err(error) = ConfigFile::parse(Path::new("/c/crystallize.toml"), &text) {
            let message = error.to_string();
            prop_assert!(message.contains("crystallize.toml") && message.len() > 25, "{message}");
        }
    }

    #[test]
    fn config_files_of_its_own_lines_parse_or_name_file_and_line(lines in prop::collection::vec(toml_line(), 0..10)) {
        let text = lines.join("\n");
        if let Err(error) = ConfigFile::parse(Path::new("/c/crystallize.toml"), &text) {
            let message = error.to_string();
            prop_assert!(message.contains("/c/crystallize.toml:"), "no line in: {message}\n{text}");
        }
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for depth in [200, 100_000] {
        let text = "[".repeat(depth) + &"]".repeat(depth);
        let error = parse_value(&text).expect_err("too deep");
        assert!(error.contains("nested more than 64 deep"), "{error}");
        let text = "a = ".to_owned() + &"[".repeat(depth) + &"]".repeat(depth);
        assert!(ConfigFile::parse(Path::new("crystallize.toml"), &text).is_err());
    }
    assert!(parse_value(&("[".repeat(20) + &"]".repeat(20))).is_ok());
}
