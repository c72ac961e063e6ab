//! Params: named, typed values an experiment declares with defaults, that treatments, the
//! command line and `crystallize.toml` override.
//!
//! An experiment declares them with a `#[derive(Params)]` struct (or the `params(...)` sugar,
//! which generates one) and takes `params: &MyParams`. The struct's [`TypedParams`] impl gives
//! the runtime its [`ParamDecl`]s; every override goes through the one resolution of
//! [`crate::plan::resolve_condition`], and each unit gets the struct built from its condition's
//! resolved values ([`TypedParams::from_params`]).

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A param's value. Every value of a declared param has that param's [`ParamKind`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// `true` or `false`.
    Bool(bool),
    /// A signed or unsigned integer (unsigned params hold non-negative values).
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(Cow<'static, str>),
    /// No value: the default of an `Option<T>` param (`null` in JSON).
    None,
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) => write!(f, "{x:?}"),
            ParamValue::Str(s) => write!(f, "{s:?}"),
            ParamValue::None => write!(f, "none"),
        }
    }
}

/// The kind of values a param holds, fixed by its declared Rust type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamKind {
    /// `bool`.
    Bool,
    /// A signed integer type.
    Int,
    /// An unsigned integer type.
    UInt,
    /// `f32` or `f64`.
    Float,
    /// `String`.
    Str,
}

impl ParamKind {
    /// What a user should type for this kind, for error messages.
    pub fn expected(self) -> &'static str {
        match self {
            ParamKind::Bool => "a boolean (true or false)",
            ParamKind::Int => "an integer",
            ParamKind::UInt => "a non-negative integer",
            ParamKind::Float => "a number",
            ParamKind::Str => "a string",
        }
    }

    /// Whether `value` is a valid value of this kind.
    pub fn accepts(self, value: &ParamValue) -> bool {
        matches!(
            (self, value),
            (ParamKind::Bool, ParamValue::Bool(_))
                | (ParamKind::Int, ParamValue::Int(_))
                | (ParamKind::Float, ParamValue::Float(_))
                | (ParamKind::Str, ParamValue::Str(_))
        ) || matches!((self, value), (ParamKind::UInt, ParamValue::Int(i)) if *i >= 0)
    }

    /// Parses command-line text (`--set think_ms=5`) as a value of this kind. Strings may be
    /// quoted with `"` or `'`; an integer is accepted where a number is expected.
    pub fn parse(self, text: &str) -> Result<ParamValue, String> {
        let text = text.trim();
        let fail = || format!("expected {}, got '{text}'", self.expected());
        match self {
            ParamKind::Bool => match text {
                "true" => Ok(ParamValue::Bool(true)),
                "false" => Ok(ParamValue::Bool(false)),
                _ => Err(fail()),
            },
            ParamKind::Int => text.parse::<i64>().map(ParamValue::Int).map_err(|_| fail()),
            ParamKind::UInt => match text.parse::<i64>() {
                Ok(i) if i >= 0 => Ok(ParamValue::Int(i)),
                _ => Err(fail()),
            },
            ParamKind::Float => match text.parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(ParamValue::Float(x)),
                _ => Err(fail()),
            },
            ParamKind::Str => {
                let unquoted = ['"', '\'']
                    .iter()
                    .find_map(|q| text.strip_prefix(*q).and_then(|rest| rest.strip_suffix(*q)))
                    .unwrap_or(text);
                Ok(ParamValue::Str(Cow::Owned(unquoted.to_owned())))
            }
        }
    }
}

impl ParamKind {
    /// Converts a typed value (from `crystallize.toml`) to a value of this kind; an integer is
    /// accepted where a number is expected.
    pub fn from_json(self, value: &serde_json::Value) -> Result<ParamValue, String> {
        use serde_json::Value as Json;
        let fail = || format!("expected {}, got {value}", self.expected());
        match (self, value) {
            (ParamKind::Bool, Json::Bool(b)) => Ok(ParamValue::Bool(*b)),
            (ParamKind::Int, Json::Number(n)) => n.as_i64().map(ParamValue::Int).ok_or_else(fail),
            (ParamKind::UInt, Json::Number(n)) => n.as_i64().filter(|i| *i >= 0).map(ParamValue::Int).ok_or_else(fail),
            (ParamKind::Float, Json::Number(n)) => {
                n.as_f64().filter(|x| x.is_finite()).map(ParamValue::Float).ok_or_else(fail)
            }
            (ParamKind::Str, Json::String(s)) => Ok(ParamValue::Str(Cow::Owned(s.clone()))),
            _ => Err(fail()),
        }
    }
}

/// A param as the experiment declares it.
#[derive(Debug)]
pub struct ParamDecl {
    /// Its name.
    pub name: &'static str,
    /// The kind of values it takes.
    pub kind: ParamKind,
    /// The Rust type written in the attribute (or implied by the literal).
    pub rust_type: &'static str,
    /// The value when nothing overrides it.
    pub default: ParamValue,
}

/// Where a param's value in a condition came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum Origin {
    /// The experiment's declared default.
    Default,
    /// Set by the named treatment.
    Treatment(String),
    /// Set with `--set` on the command line.
    CommandLine,
    /// Set in the config file, at this `path:line`.
    ConfigFile(String),
    /// An input field as the named datasource produced it.
    Datasource(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => write!(f, "default"),
            Origin::Treatment(name) => write!(f, "treatment {name}"),
            Origin::CommandLine => write!(f, "--set"),
            Origin::ConfigFile(location) => write!(f, "{location}"),
            Origin::Datasource(name) => write!(f, "datasource {name}"),
        }
    }
}

/// One resolved param of a condition.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResolvedParam {
    /// Its name.
    pub name: &'static str,
    /// Its kind.
    pub kind: ParamKind,
    /// Its value in this condition.
    pub value: ParamValue,
    /// Where the value came from.
    pub origin: Origin,
}

/// The resolved params of one condition, in declaration order.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Params(pub Vec<ResolvedParam>);

impl Params {
    /// The param called `name`, if declared.
    pub fn get(&self, name: &str) -> Option<&ResolvedParam> {
        self.0.iter().find(|param| param.name == name)
    }

    /// The names of every param, for "valid params are ..." messages.
    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|param| param.name).collect()
    }
}

/// A Rust type a param can be read as with [`Ctx::param`](crate::Ctx::param).
pub trait FromParam: Sized {
    /// The type's name, for error messages.
    const TYPE_NAME: &'static str;
    /// Converts, or `None` when the value does not fit this type.
    fn from_param(value: &ParamValue) -> Option<Self>;
}

macro_rules! integer_from_param {
    ($($ty:ty),*) => {$(
        impl FromParam for $ty {
            const TYPE_NAME: &'static str = stringify!($ty);
            fn from_param(value: &ParamValue) -> Option<Self> {
                match value {
                    ParamValue::Int(i) => <$ty>::try_from(*i).ok(),
                    _ => None,
                }
            }
        }
    )*};
}
integer_from_param!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

impl FromParam for f64 {
    const TYPE_NAME: &'static str = "f64";
    fn from_param(value: &ParamValue) -> Option<Self> {
        match value {
            ParamValue::Float(x) => Some(*x),
            ParamValue::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
}

impl FromParam for f32 {
    const TYPE_NAME: &'static str = "f32";
    fn from_param(value: &ParamValue) -> Option<Self> {
        f64::from_param(value).map(|x| x as f32)
    }
}

impl FromParam for bool {
    const TYPE_NAME: &'static str = "bool";
    fn from_param(value: &ParamValue) -> Option<Self> {
        match value {
            ParamValue::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

impl FromParam for String {
    const TYPE_NAME: &'static str = "String";
    fn from_param(value: &ParamValue) -> Option<Self> {
        match value {
            ParamValue::Str(s) => Some(s.to_string()),
            _ => None,
        }
    }
}

/// An optional param: `None` when nothing set it, else its value read as `T`.
impl<T: FromParam> FromParam for Option<T> {
    const TYPE_NAME: &'static str = T::TYPE_NAME;
    fn from_param(value: &ParamValue) -> Option<Self> {
        match value {
            ParamValue::None => Some(None),
            other => T::from_param(other).map(Some),
        }
    }
}

/// A struct of typed params, implemented by `#[derive(Params)]` (and by the struct the
/// `params(...)` sugar of `#[experiment]` generates).
///
/// The runtime knows params only through [`TypedParams::DECLS`]: resolution (defaults, config
/// file, treatments' `set(...)`, `--set`) is the same for every experiment, and each unit gets
/// the struct built from the resolved values.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a params struct",
    label = "an experiment takes its params as `params: &MyParams`, where `MyParams` derives `Params`",
    note = "add `#[derive(Params)]` to the struct (`use crystallize::prelude::*;` brings the derive)"
)]
pub trait TypedParams: Sized + 'static {
    /// One declaration per field, in field order: name, kind, Rust type, default.
    const DECLS: &'static [ParamDecl];

    /// The struct built from a condition's resolved values; an error names the param whose
    /// value does not fit its field (`--set ratio=300` for a `u8`).
    fn from_params(params: &Params) -> Result<Self, String>;
}

/// The params of an experiment that declares none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoParams {}

impl TypedParams for NoParams {
    const DECLS: &'static [ParamDecl] = &[];

    fn from_params(_: &Params) -> Result<Self, String> {
        Ok(NoParams {})
    }
}

/// Reads one field of a [`TypedParams`] struct from resolved values (used by the derive).
pub fn read_field<T: FromParam>(params: &Params, name: &str) -> Result<T, String> {
    let Some(param) = params.get(name) else {
        return Err(format!("param '{name}' has no resolved value; params: {}", params.names().join(", ")));
    };
    T::from_param(&param.value).ok_or_else(|| format!("param '{name}' = {} does not fit {}", param.value, T::TYPE_NAME))
}

/// The Rust type of a field of a params struct, and the type of a literal that sets it: what a
/// treatment's `set(name = literal)` is checked against at compile time (a `String` param is set
/// with a string literal, an `Option<T>` param with a literal of `T`).
pub trait ParamField {
    /// The type of a literal that sets this field.
    type Literal;
}

macro_rules! param_field_is_its_literal {
    ($($ty:ty),*) => {$(
        impl ParamField for $ty {
            type Literal = $ty;
        }
    )*};
}
param_field_is_its_literal!(bool, i8, i16, i32, i64, isize, u8, u16, u32, u64, usize, f32, f64);

impl ParamField for String {
    type Literal = &'static str;
}

impl<T: ParamField> ParamField for Option<T> {
    type Literal = T::Literal;
}

/// The place a treatment's `set(name = literal)` is assigned to, for the compiler only: generated
/// code writes `*literal_slot(&mut params.name) = literal;` in a function that is never called, so
/// that a literal of the wrong type is rustc's own error at the user's literal ("expected `f64`,
/// found `&str`", "cannot apply unary operator `-` to type `u64`"), as the same assignment in
/// their own code would be.
pub fn literal_slot<T: ParamField>(field: &mut T) -> &mut T::Literal {
    let _ = field;
    unreachable!("literal_slot is only type-checked: generated code never calls it")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_command_line_values_by_kind() {
        assert_eq!(ParamKind::UInt.parse("5"), Ok(ParamValue::Int(5)));
        assert_eq!(ParamKind::Float.parse("1"), Ok(ParamValue::Float(1.0)));
        assert_eq!(ParamKind::Bool.parse("true"), Ok(ParamValue::Bool(true)));
        assert_eq!(ParamKind::Str.parse("'a b'"), Ok(ParamValue::Str("a b".into())));
        let error = ParamKind::UInt.parse("fast").unwrap_err();
        assert_eq!(error, "expected a non-negative integer, got 'fast'");
        assert!(ParamKind::UInt.parse("-1").is_err());
        assert!(ParamKind::Float.parse("NaN").is_err());
    }

    #[test]
    fn converts_typed_values_by_kind() {
        use serde_json::json;
        assert_eq!(ParamKind::Float.from_json(&json!(1)), Ok(ParamValue::Float(1.0)));
        assert_eq!(ParamKind::UInt.from_json(&json!(5)), Ok(ParamValue::Int(5)));
        assert_eq!(ParamKind::Str.from_json(&json!("x")), Ok(ParamValue::Str("x".into())));
        assert_eq!(ParamKind::UInt.from_json(&json!(-1)).unwrap_err(), "expected a non-negative integer, got -1");
        assert_eq!(
            ParamKind::Bool.from_json(&json!("yes")).unwrap_err(),
            "expected a boolean (true or false), got \"yes\""
        );
    }

    #[test]
    fn kinds_accept_only_their_values() {
        assert!(ParamKind::UInt.accepts(&ParamValue::Int(0)));
        assert!(!ParamKind::UInt.accepts(&ParamValue::Int(-1)));
        assert!(!ParamKind::Float.accepts(&ParamValue::Int(1)));
        assert!(!ParamKind::Str.accepts(&ParamValue::Bool(true)));
    }

    #[test]
    fn typed_reads_check_ranges() {
        assert_eq!(u8::from_param(&ParamValue::Int(255)), Some(255));
        assert_eq!(u8::from_param(&ParamValue::Int(256)), None);
        assert_eq!(u64::from_param(&ParamValue::Int(-1)), None);
        assert_eq!(f64::from_param(&ParamValue::Int(2)), Some(2.0));
        assert_eq!(String::from_param(&ParamValue::Float(1.0)), None);
        assert_eq!(Option::<u64>::from_param(&ParamValue::None), Some(None));
        assert_eq!(Option::<u64>::from_param(&ParamValue::Int(3)), Some(Some(3)));
        assert_eq!(Option::<u64>::from_param(&ParamValue::Int(-3)), None);
    }

    #[test]
    fn an_absent_optional_value_is_none_in_text_and_null_in_json() {
        assert_eq!(ParamValue::None.to_string(), "none");
        assert_eq!(serde_json::to_string(&ParamValue::None).unwrap(), "null");
        assert_eq!(serde_json::from_str::<ParamValue>("null").unwrap(), ParamValue::None);
    }

    #[test]
    fn fields_are_read_by_name_and_checked_against_their_type() {
        let params = Params(vec![ResolvedParam {
            name: "ratio",
            kind: ParamKind::UInt,
            value: ParamValue::Int(300),
            origin: Origin::CommandLine,
        }]);
        assert_eq!(read_field::<u64>(&params, "ratio"), Ok(300));
        assert_eq!(read_field::<u8>(&params, "ratio").unwrap_err(), "param 'ratio' = 300 does not fit u8");
        assert!(read_field::<u8>(&params, "other").unwrap_err().contains("params: ratio"));
    }
}
