//! The hypothesis language: `COND.METRIC OP COND.METRIC [± MARGIN]`.
//!
//! ```text
//! hypothesis := operand op operand [ ("+" | "-") number ]
//! operand    := condition "." metric
//! condition  := ident [ "/" ident ]          (EXPERIMENT/CONDITION when names collide)
//! metric     := ident | '"' any text but '"' '"'
//! ident      := [A-Za-z_][A-Za-z0-9_]*
//! op         := ">" | ">=" | "<" | "<=" | "!="
//! number     := digits [ "." digits ] [ ("e" | "E") [ "+" | "-" ] digits ]  (or ".5")
//! ```
//!
//! Whitespace is free between tokens. Anything left after the hypothesis is an error — the
//! Python ancestor silently dropped `- 0.05` from `a.x >= b.x - 0.05`; here every error points
//! a caret at the offending character.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::stats::Alternative;

/// A comparison between two condition metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Op {
    /// `>`: the left side is larger.
    #[serde(rename = ">")]
    Greater,
    /// `>=`: tested like `>` (a test can only show a strict difference; with a negative margin
    /// this is the usual non-inferiority claim).
    #[serde(rename = ">=")]
    GreaterEq,
    /// `<`: the left side is smaller.
    #[serde(rename = "<")]
    Less,
    /// `<=`: tested like `<`.
    #[serde(rename = "<=")]
    LessEq,
    /// `!=`: the sides differ, in either direction (two-sided).
    #[serde(rename = "!=")]
    NotEqual,
}

impl Op {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Greater => ">",
            Op::GreaterEq => ">=",
            Op::Less => "<",
            Op::LessEq => "<=",
            Op::NotEqual => "!=",
        }
    }

    /// The alternative hypothesis about `left − right − margin`.
    pub fn alternative(self) -> Alternative {
        match self {
            Op::Greater | Op::GreaterEq => Alternative::Greater,
            Op::Less | Op::LessEq => Alternative::Less,
            Op::NotEqual => Alternative::TwoSided,
        }
    }
}

/// One side of a hypothesis: a metric of a condition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Operand {
    /// The condition (`baseline`, a treatment, or `experiment/condition`).
    pub condition: String,
    /// The metric as recorded with `ctx.record`.
    pub metric: String,
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plain = is_ident(&self.metric);
        if plain {
            write!(f, "{}.{}", self.condition, self.metric)
        } else {
            write!(f, "{}.\"{}\"", self.condition, self.metric)
        }
    }
}

fn is_ident(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A parsed hypothesis: `left OP right + margin`, claiming that
/// `mean(left) − mean(right)` compares to `margin` as `op` says.
///
/// `new.acc >= old.acc - 0.05` has margin −0.05 (non-inferiority: new is at most 0.05 worse);
/// `new.acc > old.acc + 0.02` has margin 0.02 (superiority by at least 0.02).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Hypothesis {
    /// The left side.
    pub left: Operand,
    /// The comparison.
    pub op: Op,
    /// The right side.
    pub right: Operand,
    /// The signed offset added to the right side (0 when none is written).
    pub margin: f64,
}

impl fmt::Display for Hypothesis {
    /// The canonical spelling: `left OP right`, then ` + m` or ` - m` when there is a margin.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.left, self.op.symbol(), self.right)?;
        if self.margin > 0.0 {
            write!(f, " + {}", self.margin)?;
        } else if self.margin < 0.0 {
            write!(f, " - {}", -self.margin)?;
        }
        Ok(())
    }
}

impl FromStr for Hypothesis {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Hypothesis, ParseError> {
        parse(text)
    }
}

impl Hypothesis {
    /// Parses `text`; see the module documentation for the grammar.
    pub fn parse(text: &str) -> Result<Hypothesis, ParseError> {
        parse(text)
    }

    /// The conditions named, left first.
    pub fn conditions(&self) -> [&str; 2] {
        [&self.left.condition, &self.right.condition]
    }
}

/// A hypothesis that does not parse. Its `Display` shows the message, the text, and a caret
/// under the offending character:
///
/// ```text
/// unexpected text after the hypothesis: 'and'
///   a.x > b.x and c
///             ^
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The text that was parsed.
    pub input: String,
    /// The offending character's position, in characters from 0 (`input`'s length at the end).
    pub position: usize,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Tabs and other control characters are shown as spaces so the caret lines up.
        let shown: String = self.input.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        write!(f, "{}\n  {}\n  {}^", self.message, shown, " ".repeat(self.position))
    }
}

impl std::error::Error for ParseError {}

struct Parser<'a> {
    input: &'a str,
    chars: Vec<char>,
    at: usize,
}

/// Parses a hypothesis; see the module documentation for the grammar.
pub fn parse(text: &str) -> Result<Hypothesis, ParseError> {
    let mut parser = Parser { input: text, chars: text.chars().collect(), at: 0 };
    parser.hypothesis()
}

impl Parser<'_> {
    fn error<T>(&self, position: usize, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError { input: self.input.to_owned(), position, message: message.into() })
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    fn describe(&self) -> String {
        match self.peek() {
            None => "the end".to_owned(),
            Some(c) => format!("'{c}'"),
        }
    }

    fn hypothesis(&mut self) -> Result<Hypothesis, ParseError> {
        self.skip_space();
        if self.peek().is_none() {
            return self.error(
                self.at,
                "empty hypothesis: write CONDITION.METRIC OP CONDITION.METRIC, e.g. treated.acc > baseline.acc",
            );
        }
        let left = self.operand("the left side")?;
        self.skip_space();
        if matches!(self.peek(), Some('+' | '-')) {
            return self.error(
                self.at,
                format!(
                    "a margin goes on the right-hand side: write {left} OP CONDITION.METRIC {} NUMBER",
                    self.peek().unwrap_or('+')
                ),
            );
        }
        let op = self.op()?;
        self.skip_space();
        let right_at = self.at;
        let right = self.operand("the right side")?;
        if right == left {
            return self.error(right_at, format!("{left} is compared with itself; name another condition or metric"));
        }
        self.skip_space();
        let margin = match self.peek() {
            Some(sign @ ('+' | '-')) => {
                self.at += 1;
                self.skip_space();
                let value = self.number()?;
                if sign == '-' {
                    -value
                } else {
                    value
                }
            }
            _ => 0.0,
        };
        self.skip_space();
        if self.peek().is_some() {
            let rest: String = self.chars[self.at..].iter().collect();
            let hint = if margin == 0.0 && !rest.trim_start().starts_with(['+', '-']) {
                "; after the right side only a margin (+ NUMBER or - NUMBER) may follow"
            } else {
                ""
            };
            return self.error(self.at, format!("unexpected text after the hypothesis: '{}'{hint}", rest.trim_end()));
        }
        Ok(Hypothesis { left, op, right, margin })
    }

    fn operand(&mut self, side: &str) -> Result<Operand, ParseError> {
        let mut condition = self.ident(&format!("a condition name for {side}"))?;
        if self.peek() == Some('/') {
            self.at += 1;
            let name = self.ident("a condition name after 'EXPERIMENT/'")?;
            condition = format!("{condition}/{name}");
        }
        if self.peek() != Some('.') {
            return self.error(
                self.at,
                format!(
                    "expected '.' and a metric after condition '{condition}' (CONDITION.METRIC), found {}",
                    self.describe()
                ),
            );
        }
        self.at += 1;
        let metric = if self.peek() == Some('"') {
            let open = self.at;
            self.at += 1;
            let start = self.at;
            while self.peek().is_some_and(|c| c != '"') {
                self.at += 1;
            }
            if self.peek().is_none() {
                return self.error(open, "unclosed quote in a metric name");
            }
            let name: String = self.chars[start..self.at].iter().collect();
            self.at += 1;
            if name.is_empty() {
                return self.error(open, "empty metric name");
            }
            name
        } else {
            self.ident(&format!(
                "a metric name after '{condition}.' (quote it, \"like/this\", if it has other characters)"
            ))?
        };
        Ok(Operand { condition, metric })
    }

    fn ident(&mut self, what: &str) -> Result<String, ParseError> {
        let start = self.at;
        match self.peek() {
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
            _ => return self.error(self.at, format!("expected {what}, found {}", self.describe())),
        }
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            self.at += 1;
        }
        Ok(self.chars[start..self.at].iter().collect())
    }

    fn op(&mut self) -> Result<Op, ParseError> {
        let start = self.at;
        let first = self.peek();
        self.at += 1;
        let equals = self.peek() == Some('=');
        let op = match (first, equals) {
            (Some('>'), true) => Op::GreaterEq,
            (Some('>'), false) => Op::Greater,
            (Some('<'), true) => Op::LessEq,
            (Some('<'), false) => Op::Less,
            (Some('!'), true) => Op::NotEqual,
            (Some('='), _) => {
                return self.error(
                    start,
                    "equality cannot be shown by a test (only a difference can); use != for a two-sided test, or \
                     a minimum effect to learn whether a difference is within noise",
                )
            }
            _ => {
                self.at = start;
                return self
                    .error(start, format!("expected a comparison (>, >=, <, <=, !=), found {}", self.describe()));
            }
        };
        if equals {
            self.at += 1;
        }
        Ok(op)
    }

    fn number(&mut self) -> Result<f64, ParseError> {
        let start = self.at;
        let digits = |p: &mut Self| {
            let from = p.at;
            while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                p.at += 1;
            }
            p.at > from
        };
        let whole = digits(self);
        let mut fraction = false;
        if self.peek() == Some('.') {
            self.at += 1;
            fraction = digits(self);
            if !fraction {
                return self
                    .error(self.at, format!("expected digits after the decimal point, found {}", self.describe()));
            }
        }
        if !whole && !fraction {
            return self.error(start, format!("expected a number for the margin, found {}", self.describe()));
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            self.at += 1;
            if matches!(self.peek(), Some('+' | '-')) {
                self.at += 1;
            }
            if !digits(self) {
                return self.error(self.at, format!("expected the exponent's digits, found {}", self.describe()));
            }
        }
        let text: String = self.chars[start..self.at].iter().collect();
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(value),
            _ => self.error(start, format!("the margin {text} is not a finite number")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caret(text: &str) -> (usize, String) {
        let error = parse(text).unwrap_err();
        (error.position, error.to_string())
    }

    #[test]
    fn parses_the_forms_of_the_issue() {
        let h = parse("new.acc >= old.acc - 0.05").unwrap();
        assert_eq!(h.left, Operand { condition: "new".into(), metric: "acc".into() });
        assert_eq!((h.op, h.margin), (Op::GreaterEq, -0.05));
        assert_eq!(h.to_string(), "new.acc >= old.acc - 0.05");
        let h = parse("  dolphin.win!=baseline.win  ").unwrap();
        assert_eq!((h.op, h.margin, h.to_string().as_str()), (Op::NotEqual, 0.0, "dolphin.win != baseline.win"));
        let h = parse("social/dolphin.\"loss/val\" < social/baseline.\"loss/val\" + 1e-3").unwrap();
        assert_eq!(h.left.condition, "social/dolphin");
        assert_eq!(h.left.metric, "loss/val");
        assert_eq!(h.margin, 0.001);
        assert_eq!(h.to_string().parse::<Hypothesis>().unwrap(), h);
        assert_eq!(parse("a.x<b.x+.5").unwrap().margin, 0.5);
    }

    #[test]
    fn trailing_text_is_an_error_with_a_caret() {
        let (position, shown) = caret("a.x > b.x and c");
        assert_eq!(position, 10);
        assert_eq!(
            shown,
            "unexpected text after the hypothesis: 'and c'; after the right side only a margin (+ NUMBER or - NUMBER) \
             may follow\n  a.x > b.x and c\n            ^"
        );
        // The ancestor's bug: a margin after a margin, or junk after it, must not vanish.
        assert_eq!(caret("a.x >= b.x - 0.05 0.1").0, 18);
        assert_eq!(caret("a.x >= b.x - 0.05x").0, 17);
    }

    #[test]
    fn every_error_points_at_its_character() {
        assert_eq!(caret("a.x = b.x").0, 4);
        assert_eq!(caret("a.x == b.x").0, 4);
        assert_eq!(caret("a.x b.x").0, 4);
        assert_eq!(caret("a x > b.x").0, 1);
        assert_eq!(caret("a. > b.x").0, 2);
        assert_eq!(caret("a.x > 3").0, 6);
        assert_eq!(caret("a.x > b.x -").0, 11);
        assert_eq!(caret("a.x > b.x - abc").0, 12);
        assert_eq!(caret("a.x > b.x - 1.").0, 14);
        assert_eq!(caret("a.x + 1 > b.x").0, 4);
        assert_eq!(caret("a.x > a.x").0, 6);
        assert_eq!(caret("").0, 0);
        assert_eq!(caret("a.\"unclosed > b.x").0, 2);
        let (position, shown) = caret("é.x > b.x");
        assert_eq!(position, 0);
        assert!(shown.ends_with("\n  é.x > b.x\n  ^"), "{shown}");
        assert!(caret("a.x = b.x").1.contains("use != for a two-sided test"));
    }

    #[test]
    fn operators_map_to_alternatives() {
        assert_eq!(parse("a.x >= b.x").unwrap().op.alternative(), Alternative::Greater);
        assert_eq!(parse("a.x < b.x").unwrap().op.alternative(), Alternative::Less);
        assert_eq!(parse("a.x != b.x").unwrap().op.alternative(), Alternative::TwoSided);
    }
}
