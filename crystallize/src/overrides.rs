//! The override grammar of `--set KEY=VALUE` and of `crystallize.toml`, as people know it from
//! Hydra: keys are paths into the input (`max_rounds`, `players[2].model`, `players.2.model`),
//! values are `null`, booleans, numbers, quoted strings, lists `[1, 2]`, maps `{a: 1}` or bare
//! text. This module parses both and applies a value at a path of a JSON document; it knows
//! nothing of params or experiments (see [`crate::resolve`] for that).
//!
//! ```ignore
//! // An internal module: the example shows the grammar (tested in this module's unit tests).
//! use crystallize::overrides::{parse_value, KeyPath};
//! use serde_json::json;
//!
//! let path = KeyPath::parse("players[2].model").unwrap();
//! let mut doc = json!({"players": [{"model": "a"}, {"model": "b"}, {"model": "c"}]});
//! path.set(&mut doc, json!("dolphin"), false).unwrap();
//! assert_eq!(doc["players"][2]["model"], "dolphin");
//! assert_eq!(parse_value("[1, 'two', null]").unwrap(), json!([1, "two", null]));
//! ```

use std::fmt;

use serde_json::{Map, Number, Value};

use crate::error::Error;
use crate::events::InputView;
use crate::params::Origin;

/// One step of a [`KeyPath`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// A field of an object (or, when all digits and applied to a list, an index).
    Key(String),
    /// An index into a list, written `[2]`.
    Index(usize),
}

/// A path into a JSON document: `a.b[2].c`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPath {
    /// The steps, outermost first; never empty.
    pub segments: Vec<Segment>,
}

/// Why a value could not be set at a path.
#[derive(Clone, Debug, PartialEq)]
pub enum PathError {
    /// An object has no field of this name.
    UnknownField {
        /// The path of the object (empty for the root).
        parent: String,
        /// The missing field.
        field: String,
    },
    /// A list is shorter than the index.
    OutOfRange {
        /// The path of the list.
        parent: String,
        /// The index asked for.
        index: usize,
        /// The list's length.
        len: usize,
    },
    /// The path goes through a value that has no fields or items.
    NotAContainer {
        /// The path of the value.
        parent: String,
        /// What it is (`a number`, ...).
        found: &'static str,
    },
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |parent: &str| if parent.is_empty() { "the input".to_owned() } else { format!("'{parent}'") };
        match self {
            PathError::UnknownField { parent, field } => write!(f, "{} has no field '{field}'", at(parent)),
            PathError::OutOfRange { parent, index, len } => {
                write!(
                    f,
                    "index {index} is out of range: {} has {len} item{}",
                    at(parent),
                    if *len == 1 { "" } else { "s" }
                )
            }
            PathError::NotAContainer { parent, found } => {
                write!(f, "{} is {found}, which has no fields or items", at(parent))
            }
        }
    }
}

impl KeyPath {
    /// Parses `a.b[2].c` (also `a.b.2.c`). Field names are anything but `.`, `[`, `]`, `=` and
    /// whitespace.
    pub fn parse(text: &str) -> Result<KeyPath, String> {
        let bad = |why: &str| {
            Err(format!("'{text}' is not a key path ({why}); write it like max_rounds or players[2].model"))
        };
        let mut segments = Vec::new();
        let mut rest = text;
        let mut expect_field = true;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('[') {
                let Some(close) = after.find(']') else { return bad("a '[' without ']'") };
                let Ok(index) = after[..close].trim().parse::<usize>() else {
                    return bad("a list index must be a non-negative integer");
                };
                if segments.is_empty() {
                    return bad("it starts with an index");
                }
                segments.push(Segment::Index(index));
                rest = &after[close + 1..];
                expect_field = false;
            } else if let Some(after) = rest.strip_prefix('.') {
                if expect_field {
                    return bad("an empty field name");
                }
                rest = after;
                expect_field = true;
                if rest.is_empty() {
                    return bad("it ends with '.'");
                }
            } else {
                if !expect_field {
                    return bad("expected '.' or '[' after an index");
                }
                let end = rest.find(['.', '[']).unwrap_or(rest.len());
                let field = &rest[..end];
                if field.contains(|c: char| c == ']' || c == '=' || c.is_whitespace()) {
                    return bad("a field name cannot contain ']', '=' or spaces");
                }
                segments.push(Segment::Key(field.to_owned()));
                rest = &rest[end..];
                expect_field = false;
            }
        }
        if segments.is_empty() {
            return bad("it is empty");
        }
        Ok(KeyPath { segments })
    }

    /// The value at this path, if there is one.
    pub fn get<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        let mut node = root;
        for segment in &self.segments {
            node = match (node, segment) {
                (Value::Object(map), Segment::Key(key)) => map.get(key)?,
                (Value::Array(items), Segment::Index(index)) => items.get(*index)?,
                (Value::Array(items), Segment::Key(key)) => items.get(key.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// Sets the value at this path and returns the path as the document spells it
    /// (`players.2.model` becomes `players[2].model`). Every step must exist, except that with
    /// `add` the last field of an object may be new (Hydra's `+key=value`).
    pub fn set(&self, root: &mut Value, value: Value, add: bool) -> Result<String, PathError> {
        let mut node = root;
        let mut spelled = String::new();
        let last = self.segments.len() - 1;
        for (position, segment) in self.segments.iter().enumerate() {
            let parent = spelled.clone();
            node = match node {
                Value::Object(map) => {
                    let key = match segment {
                        Segment::Key(key) => key.clone(),
                        Segment::Index(index) => {
                            return Err(PathError::UnknownField { parent, field: format!("[{index}]") })
                        }
                    };
                    spelled = join_field(&spelled, &key);
                    if !map.contains_key(&key) {
                        if add && position == last {
                            map.insert(key.clone(), Value::Null);
                        } else {
                            return Err(PathError::UnknownField { parent, field: key });
                        }
                    }
                    map.get_mut(&key).expect("checked or inserted above")
                }
                Value::Array(items) => {
                    let index = match segment {
                        Segment::Index(index) => *index,
                        Segment::Key(key) => match key.parse::<usize>() {
                            Ok(index) => index,
                            Err(_) => return Err(PathError::UnknownField { parent, field: key.clone() }),
                        },
                    };
                    let len = items.len();
                    spelled = format!("{spelled}[{index}]");
                    match items.get_mut(index) {
                        Some(item) => item,
                        None => return Err(PathError::OutOfRange { parent, index, len }),
                    }
                }
                other => return Err(PathError::NotAContainer { parent, found: kind_of(other) }),
            };
        }
        *node = value;
        Ok(spelled)
    }
}

fn join_field(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_owned()
    } else {
        format!("{parent}.{field}")
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Key(key) if position == 0 => write!(f, "{key}")?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// What a JSON value is, for messages: `a number`, `a list`, ...
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The value of an override before it meets the type it is assigned to.
#[derive(Clone, Debug, PartialEq)]
pub enum OverrideValue {
    /// Text from the command line, in the override grammar (see `parse_value`).
    Text(String),
    /// A value that is already typed (from `crystallize.toml`).
    Json(Value),
}

impl OverrideValue {
    /// The value to assign where `current` is now: text is parsed with [`parse_value`], except
    /// that bare text (`--set name=5`) stays a string where a string is now, so that strings need
    /// no quotes. Whether the result fits is for the target's type to decide.
    pub fn to_json(&self, current: Option<&Value>) -> Result<Value, String> {
        match self {
            OverrideValue::Json(value) => Ok(value.clone()),
            OverrideValue::Text(text) => {
                let bare = is_bare(text);
                if bare && matches!(current, Some(Value::String(_))) && text.trim() != "null" {
                    return Ok(Value::String(text.trim().to_owned()));
                }
                parse_value(text)
            }
        }
    }
}

impl fmt::Display for OverrideValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OverrideValue::Text(text) => write!(f, "{text}"),
            OverrideValue::Json(value) => write!(f, "{value}"),
        }
    }
}

/// Whether `text` is bare (not quoted, not a list or a map).
fn is_bare(text: &str) -> bool {
    !text.trim_start().starts_with(['"', '\'', '[', '{'])
}

/// Parses a value of the override grammar:
///
/// - `null`; `true`/`false` (any case); integers (`5`, `-3`, `1_000`) and floats (`0.5`, `1e-3`);
/// - strings quoted with `"` or `'` (a backslash escapes the quote or itself);
/// - lists `[1, 2]` and maps `{a: 1, 'b c': [x]}`, nested freely;
/// - anything else is bare text, taken as a string (trimmed); inside a list or map, bare text ends
///   at `,`, `]`, `}` (and `:` for a map's key).
///
/// `key=` (nothing after `=`) is the empty string.
pub fn parse_value(text: &str) -> Result<Value, String> {
    let trimmed = text.trim();
    if is_bare(trimmed) {
        return Ok(scalar(trimmed));
    }
    let mut parser = Parser { text: trimmed, chars: trimmed.char_indices().collect(), at: 0, depth: 0 };
    let value = parser.value()?;
    parser.skip_space();
    if parser.at < parser.chars.len() {
        return Err(parser.error("unexpected text after the value"));
    }
    Ok(value)
}

/// A bare word: null, a boolean, a number, or else a string.
fn scalar(word: &str) -> Value {
    if word == "null" {
        return Value::Null;
    }
    if word.eq_ignore_ascii_case("true") {
        return Value::Bool(true);
    }
    if word.eq_ignore_ascii_case("false") {
        return Value::Bool(false);
    }
    let digits = word.replace('_', "");
    let numeric = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | 'e' | 'E'))
        && digits.chars().any(|c| c.is_ascii_digit());
    if numeric {
        if let Ok(i) = digits.parse::<i64>() {
            return Value::Number(i.into());
        }
        if let Ok(u) = digits.parse::<u64>() {
            return Value::Number(u.into());
        }
        if let Some(number) = digits.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(number);
        }
    }
    Value::String(word.to_owned())
}

struct Parser<'a> {
    text: &'a str,
    chars: Vec<(usize, char)>,
    at: usize,
    /// Lists and maps open around the current position.
    depth: usize,
}

/// The deepest lists and maps may nest in a value: the parser recurses, and a `--set` of
/// 100 000 `[` must be an error, not a stack overflow.
const MAX_NESTING: usize = 64;

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).map(|(_, c)| *c)
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    fn error(&self, what: &str) -> String {
        let column = self.at + 1;
        format!("cannot read the value '{}': {what} at character {column}", self.text)
    }

    fn value(&mut self) -> Result<Value, String> {
        self.skip_space();
        if matches!(self.peek(), Some('[' | '{')) {
            if self.depth >= MAX_NESTING {
                return Err(self.error(&format!("lists and maps are nested more than {MAX_NESTING} deep")));
            }
            self.depth += 1;
            let value = if self.peek() == Some('[') { self.list() } else { self.map() };
            self.depth -= 1;
            return value;
        }
        match self.peek() {
            Some(quote @ ('"' | '\'')) => self.quoted(quote).map(Value::String),
            Some(_) => Ok(scalar(&self.bare(&[',', ']', '}']))),
            None => Err(self.error("a value is missing")),
        }
    }

    fn bare(&mut self, stops: &[char]) -> String {
        let mut word = String::new();
        while let Some(c) = self.peek().filter(|c| !stops.contains(c)) {
            word.push(c);
            self.at += 1;
        }
        word.trim().to_owned()
    }

    fn quoted(&mut self, quote: char) -> Result<String, String> {
        self.at += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(self.error(&format!("a string is missing its closing {quote}"))),
                Some('\\') => {
                    self.at += 1;
                    match self.peek() {
                        Some(c) => out.push(c),
                        None => return Err(self.error("a backslash ends the text")),
                    }
                    self.at += 1;
                }
                Some(c) if c == quote => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(c) => {
                    out.push(c);
                    self.at += 1;
                }
            }
        }
    }

    fn list(&mut self) -> Result<Value, String> {
        self.at += 1;
        let mut items = Vec::new();
        self.skip_space();
        if self.peek() == Some(']') {
            self.at += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.skip_space();
            match self.peek() {
                Some(',') => self.at += 1,
                Some(']') => {
                    self.at += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.error("expected ',' or ']'")),
            }
        }
    }

    fn map(&mut self) -> Result<Value, String> {
        self.at += 1;
        let mut map = Map::new();
        self.skip_space();
        if self.peek() == Some('}') {
            self.at += 1;
            return Ok(Value::Object(map));
        }
        loop {
            self.skip_space();
            // A quoted key may be empty (`{"": 1}`); a bare one may not.
            let (key, quoted) = match self.peek() {
                Some(quote @ ('"' | '\'')) => (self.quoted(quote)?, true),
                _ => (self.bare(&[':', ',', '}']), false),
            };
            if key.is_empty() && !quoted {
                return Err(self.error("a key is missing"));
            }
            self.skip_space();
            if self.peek() != Some(':') {
                return Err(self.error("expected ':' after a key"));
            }
            self.at += 1;
            let value = self.value()?;
            map.insert(key, value);
            self.skip_space();
            match self.peek() {
                Some(',') => self.at += 1,
                Some('}') => {
                    self.at += 1;
                    return Ok(Value::Object(map));
                }
                _ => return Err(self.error("expected ',' or '}'")),
            }
        }
    }
}

/// Every path a document has, containers included (`players`, `players[0]`,
/// `players[0].model`, ...), in document order: the candidates of "did you mean".
pub fn all_paths(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk_paths(String::new(), value, &mut out, false);
    out
}

/// The keys a user can set, with list indices written as ranges (`players[0..6].model`) so
/// that a long list does not drown the message, and a list of scalars as one key (`models`);
/// document order, no repeats.
pub fn settable_keys(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk_paths(String::new(), value, &mut out, true);
    let mut seen = std::collections::HashSet::new();
    out.retain(|path| seen.insert(path.clone()));
    out
}

fn walk_paths(path: String, value: &Value, out: &mut Vec<String>, leaves_collapsed: bool) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            if !leaves_collapsed && !path.is_empty() {
                out.push(path.clone());
            }
            for (key, child) in map {
                walk_paths(join_field(&path, key), child, out, leaves_collapsed);
            }
        }
        Value::Array(items) if leaves_collapsed && !items.iter().any(|i| i.is_object() || i.is_array()) => {
            out.push(path)
        }
        Value::Array(items) if !items.is_empty() => {
            if leaves_collapsed {
                let range = if items.len() == 1 { "[0]".to_owned() } else { format!("[0..{}]", items.len()) };
                for child in items {
                    walk_paths(format!("{path}{range}"), child, out, true);
                }
            } else {
                out.push(path.clone());
                for (index, child) in items.iter().enumerate() {
                    walk_paths(format!("{path}[{index}]"), child, out, false);
                }
            }
        }
        _ if !path.is_empty() => out.push(path),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_key_paths() {
        let path = KeyPath::parse("players[2].model").unwrap();
        assert_eq!(
            path.segments,
            vec![Segment::Key("players".into()), Segment::Index(2), Segment::Key("model".into())]
        );
        assert_eq!(path.to_string(), "players[2].model");
        assert_eq!(KeyPath::parse("a.b.2").unwrap().to_string(), "a.b.2");
        assert_eq!(KeyPath::parse("grid[1][0]").unwrap().segments.len(), 3);
        for bad in ["", ".a", "a.", "a..b", "[0]", "a[x]", "a[1", "a[0]b", "a b"] {
            assert!(KeyPath::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn parses_the_value_grammar() {
        assert_eq!(parse_value("null").unwrap(), Value::Null);
        assert_eq!(parse_value("True").unwrap(), json!(true));
        assert_eq!(parse_value(" 5 ").unwrap(), json!(5));
        assert_eq!(parse_value("-3").unwrap(), json!(-3));
        assert_eq!(parse_value("1_000").unwrap(), json!(1000));
        assert_eq!(parse_value("0.5").unwrap(), json!(0.5));
        assert_eq!(parse_value("1e-3").unwrap(), json!(0.001));
        assert_eq!(parse_value("fast").unwrap(), json!("fast"));
        assert_eq!(parse_value("hello world").unwrap(), json!("hello world"));
        assert_eq!(parse_value("").unwrap(), json!(""));
        assert_eq!(parse_value("'5'").unwrap(), json!("5"));
        assert_eq!(parse_value(r#""say \"hi\"""#).unwrap(), json!("say \"hi\""));
        assert_eq!(parse_value("[1, 2]").unwrap(), json!([1, 2]));
        assert_eq!(parse_value("[]").unwrap(), json!([]));
        assert_eq!(parse_value("[a b, 'c,d', [null]]").unwrap(), json!(["a b", "c,d", [null]]));
        assert_eq!(parse_value("{model: x, 'n': 2}").unwrap(), json!({"model": "x", "n": 2}));
        assert_eq!(parse_value("nan").unwrap(), json!("nan"));
        for bad in ["[1, 2", "'open", "{a 1}", "[1] x", "{: 1}"] {
            let error = parse_value(bad).unwrap_err();
            assert!(error.contains("cannot read the value"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn bare_text_stays_a_string_where_a_string_is() {
        let text = |t: &str| OverrideValue::Text(t.into());
        assert_eq!(text("5").to_json(Some(&json!("x"))).unwrap(), json!("5"));
        assert_eq!(text("5").to_json(Some(&json!(1))).unwrap(), json!(5));
        assert_eq!(text("null").to_json(Some(&json!("x"))).unwrap(), Value::Null);
        assert_eq!(text("'5'").to_json(Some(&json!(1))).unwrap(), json!("5"));
    }

    #[test]
    fn sets_values_at_paths() {
        let mut doc = json!({"players": [{"model": "a"}, {"model": "b"}], "rounds": 8});
        let spelled = KeyPath::parse("players.1.model").unwrap().set(&mut doc, json!("z"), false).unwrap();
        assert_eq!(spelled, "players[1].model");
        assert_eq!(doc["players"][1]["model"], "z");
        let error = KeyPath::parse("players[5].model").unwrap().set(&mut doc, json!(1), false).unwrap_err();
        assert_eq!(error.to_string(), "index 5 is out of range: 'players' has 2 items");
        let error = KeyPath::parse("players[0].modl").unwrap().set(&mut doc, json!(1), false).unwrap_err();
        assert_eq!(error.to_string(), "'players[0]' has no field 'modl'");
        let error = KeyPath::parse("rounds.max").unwrap().set(&mut doc, json!(1), false).unwrap_err();
        assert_eq!(error.to_string(), "'rounds' is a number, which has no fields or items");
        KeyPath::parse("extra").unwrap().set(&mut doc, json!(1), true).unwrap();
        assert_eq!(doc["extra"], 1);
        assert_eq!(KeyPath::parse("players[0].model").unwrap().get(&doc), Some(&json!("a")));
    }

    #[test]
    fn lists_keys_for_messages_and_suggestions() {
        let doc = json!({"players": [{"model": "a", "name": "p"}, {"model": "b", "name": "q"}], "spoilers": false});
        assert_eq!(settable_keys(&doc), ["players[0..2].model", "players[0..2].name", "spoilers"]);
        assert_eq!(settable_keys(&json!({"models": ["a", "b"], "one": [{"x": 1}]})), ["models", "one[0].x"]);
        assert_eq!(
            all_paths(&doc),
            [
                "players",
                "players[0]",
                "players[0].model",
                "players[0].name",
                "players[1]",
                "players[1].model",
                "players[1].name",
                "spoilers"
            ]
        );
    }
}

/// When an input override applies, relative to the treatment's mutation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Before the mutation (the config file's `[params]`, which act like new defaults).
    BeforeMutation,
    /// After the mutation (per-treatment config and `--set`).
    AfterMutation,
}

/// An override of a field of the input.
#[derive(Clone, Debug)]
pub struct InputOverride {
    /// The key as written (for messages).
    pub key: String,
    /// The path into the input.
    pub path: KeyPath,
    /// Whether the last field may be new (`+key=value`).
    pub add: bool,
    /// The value.
    pub value: OverrideValue,
    /// Where it came from.
    pub origin: Origin,
    /// When it applies.
    pub stage: Stage,
}

impl InputOverride {
    /// An override of the input at `key` (already known not to be a param).
    pub fn new(key: &str, add: bool, value: OverrideValue, origin: Origin, stage: Stage) -> Result<Self, Error> {
        let path = KeyPath::parse(key).map_err(|problem| Error::BadKey {
            key: key.to_owned(),
            origin: origin.to_string(),
            problem,
        })?;
        Ok(InputOverride { key: key.to_owned(), path, add, value, origin, stage })
    }
}

/// Why an input could not be built.
#[derive(Clone, Debug)]
pub enum BuildError {
    /// An override does not fit the input.
    Override {
        /// The key as written.
        key: String,
        /// Where the override came from.
        origin: Origin,
        /// What is wrong.
        problem: OverrideProblem,
    },
    /// The datasource or the mutation failed.
    Failed(String),
}

/// What is wrong with an input override.
#[derive(Clone, Debug)]
pub enum OverrideProblem {
    /// The input has no such field.
    UnknownField {
        /// Every path of the input, for "did you mean".
        paths: Vec<String>,
        /// The settable keys, for the message.
        settable: Vec<String>,
    },
    /// The input cannot round-trip through JSON.
    NotSettable(&'static str),
    /// The value does not fit the field.
    BadValue(String),
}

impl BuildError {
    /// A one-line description, for a unit that fails with it.
    pub fn message(&self) -> String {
        match self {
            BuildError::Failed(message) => message.clone(),
            BuildError::Override { key, origin, problem } => {
                let problem = match problem {
                    OverrideProblem::UnknownField { .. } => "the input has no such field".to_owned(),
                    OverrideProblem::NotSettable(why) => (*why).to_owned(),
                    OverrideProblem::BadValue(why) => why.clone(),
                };
                format!("cannot apply '{key}' from {origin}: {problem}")
            }
        }
    }
}

/// The stages of one input as an override-aware build saw them.
#[derive(Clone, Debug)]
pub struct Traced {
    /// The final input.
    pub view: InputView,
    /// JSON before the treatment's mutation (after the overrides that precede it).
    pub before_mutation: Option<Value>,
    /// JSON after the treatment's mutation.
    pub after_mutation: Option<Value>,
    /// Each applied override: the path as the input spells it, its origin and stage.
    pub marks: Vec<(String, Origin, Stage)>,
}
