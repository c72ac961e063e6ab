//! The parsing core shared by every attribute: a comma-separated list of `key = value`,
//! `key(...)` and positional paths, plus the `name [: Type] = literal` lists of `params(...)`
//! and `set(...)`. Pure functions over `proc_macro2` tokens, so they are unit-tested without a
//! compile.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, ExprUnary, Ident, Lit, Path, Token, Type, UnOp};

/// One entry of an attribute's argument list.
pub enum Arg {
    /// A bare path, like the experiment named first in `#[treatment(social_deception, ...)]`.
    Positional(Path),
    /// `key = value`.
    KeyValue { key: Ident, value: Expr },
    /// `key(...)`, like `params(temperature = 0.7)`.
    List { key: Ident, content: TokenStream },
}

impl Arg {
    fn span(&self) -> Span {
        match self {
            Arg::Positional(path) => syn::spanned::Spanned::span(path),
            Arg::KeyValue { key, .. } | Arg::List { key, .. } => key.span(),
        }
    }
}

impl Parse for Arg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        // `crate` is a keyword, so it is not an `Ident` to syn: `crate = path` is read here.
        if input.peek(Token![crate]) && input.peek2(Token![=]) && !input.peek2(Token![==]) {
            let token: Token![crate] = input.parse()?;
            input.parse::<Token![=]>()?;
            let value: Expr = input.parse()?;
            return Ok(Arg::KeyValue { key: Ident::new("crate", token.span), value });
        }
        if input.peek(Ident) && input.peek2(Token![=]) && !input.peek2(Token![==]) {
            let key: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            let value: Expr = input.parse()?;
            return Ok(Arg::KeyValue { key, value });
        }
        if input.peek(Ident) && input.peek2(syn::token::Paren) {
            let key: Ident = input.parse()?;
            let content;
            syn::parenthesized!(content in input);
            return Ok(Arg::List { key, content: content.parse()? });
        }
        let path: Path = input
            .parse()
            .map_err(|error| syn::Error::new(error.span(), "expected `key = value`, `key(...)` or a path"))?;
        Ok(Arg::Positional(path))
    }
}

/// Parses an attribute's arguments.
pub fn parse_args(attr: TokenStream) -> syn::Result<Vec<Arg>> {
    let list = Punctuated::<Arg, Token![,]>::parse_terminated.parse2(attr)?;
    Ok(list.into_iter().collect())
}

/// Collects errors so that every mistake in an attribute is reported at once, each at its tokens.
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    /// Records an error at `span`.
    pub fn at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    /// Records an error covering all of `tokens` (a whole type or argument, not just its first token).
    pub fn spanned(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Whether no error was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Records an error.
    pub fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(existing) => existing.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// `Err` with every recorded error, or `Ok(value)` if there were none.
    pub fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.0 {
            Some(error) => Err(error),
            None => Ok(value),
        }
    }
}

/// Rejects a key seen twice and a key outside `valid`; returns whether the key is new and valid.
pub fn check_key(key: &Ident, valid: &[&str], seen: &mut Vec<String>, errors: &mut Errors) -> bool {
    let name = key.to_string();
    if !valid.contains(&name.as_str()) {
        let hint = suggestion(&name, valid).map(|best| format!("did you mean `{best}`? ")).unwrap_or_default();
        errors.at(key.span(), format!("unknown key `{name}`; {hint}valid keys: {}", valid.join(", ")));
        return false;
    }
    if seen.contains(&name) {
        errors.at(key.span(), format!("`{name}` is given twice"));
        return false;
    }
    seen.push(name);
    true
}

/// Reports an argument that is well-formed but not the shape `key` takes.
pub fn wrong_shape(arg: &Arg, expected: &str, errors: &mut Errors) {
    match arg {
        Arg::KeyValue { key, .. } | Arg::List { key, .. } => {
            errors.at(key.span(), format!("`{key}` is written {expected}"))
        }
        Arg::Positional(_) => errors.at(arg.span(), format!("expected {expected}")),
    }
}

/// The closest of `candidates` to `name`, if it is close enough to be a plausible typo.
pub fn suggestion<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|candidate| (edit_distance(name, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= (candidate.len().max(3) / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

/// A literal value of a param, as the runtime stores it.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamLiteral {
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
}

/// The kind of a param, derived from its declared type (or its literal when no type is given).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamKind {
    Bool,
    Int,
    UInt,
    Float,
    Str,
}

impl ParamKind {
    /// What a value of this kind looks like, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            ParamKind::Bool => "`true` or `false`",
            ParamKind::Int => "an integer literal, like `-3`",
            ParamKind::UInt => "a non-negative integer literal, like `0`",
            ParamKind::Float => "a number with a decimal point, like `0.5`",
            ParamKind::Str => "a string literal, like `\"llama3:8b\"`",
        }
    }

    /// Whether `value` is a valid literal for a param of this kind.
    pub fn accepts(self, value: &ParamLiteral) -> bool {
        matches!(
            (self, value),
            (ParamKind::Bool, ParamLiteral::Bool(_))
                | (ParamKind::Int, ParamLiteral::Int(_))
                | (ParamKind::Float, ParamLiteral::Float(_))
                | (ParamKind::Str, ParamLiteral::Str(_))
        ) || matches!((self, value), (ParamKind::UInt, ParamLiteral::Int(i)) if *i >= 0)
    }

    /// The runtime's name of this kind.
    pub fn variant(self) -> &'static str {
        match self {
            ParamKind::Bool => "Bool",
            ParamKind::Int => "Int",
            ParamKind::UInt => "UInt",
            ParamKind::Float => "Float",
            ParamKind::Str => "Str",
        }
    }

    pub fn of_type(ty: &Type) -> Option<ParamKind> {
        let text = ty.to_token_stream().to_string().replace(' ', "");
        Some(match text.as_str() {
            "bool" => ParamKind::Bool,
            "i8" | "i16" | "i32" | "i64" | "isize" => ParamKind::Int,
            "u8" | "u16" | "u32" | "u64" | "usize" => ParamKind::UInt,
            "f32" | "f64" => ParamKind::Float,
            "String" | "&'staticstr" => ParamKind::Str,
            _ => return None,
        })
    }
}

/// One `name [: Type] = literal` entry of `params(...)` or `set(...)`.
pub struct ParamEntry {
    pub name: Ident,
    /// The declared type, or the one the literal implies (`f64`, `i64`, `bool`, `String`).
    pub ty: Type,
    pub kind: ParamKind,
    pub value: ParamLiteral,
    /// The literal as written, for the compile-time type check and error spans.
    pub value_expr: Expr,
}

struct RawParam {
    name: Ident,
    ty: Option<Type>,
    value: Expr,
}

impl Parse for RawParam {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name: Ident = input.parse()?;
        let ty = if input.peek(Token![:]) {
            input.parse::<Token![:]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        input.parse::<Token![=]>()?;
        Ok(RawParam { name, ty, value: input.parse()? })
    }
}

/// Parses `name [: Type] = literal, ...`. With `allow_types = false` (as in `set(...)`, where the
/// experiment already declared each type) a type annotation is an error.
pub fn parse_params(content: TokenStream, allow_types: bool, errors: &mut Errors) -> Vec<ParamEntry> {
    let raw = match Punctuated::<RawParam, Token![,]>::parse_terminated.parse2(content) {
        Ok(raw) => raw,
        Err(error) => {
            errors.push(error);
            return Vec::new();
        }
    };
    let mut entries: Vec<ParamEntry> = Vec::new();
    for param in raw {
        if entries.iter().any(|entry| entry.name == param.name) {
            errors.at(param.name.span(), format!("param `{}` is given twice", param.name));
            continue;
        }
        if let (false, Some(ty)) = (allow_types, &param.ty) {
            errors
                .spanned(ty, format!("the experiment declares each param's type; write `{} = value` here", param.name));
            continue;
        }
        let Some(value) = literal_value(&param.value) else {
            errors.spanned(
                &param.value,
                "a param value must be a literal: a number, a string or `true`/`false` (not a constant or expression)",
            );
            continue;
        };
        if let ParamLiteral::Int(i) = value {
            if i64::try_from(i).is_err() {
                errors.spanned(
                    &param.value,
                    format!("an integer param must fit in an `i64`: {} to {}", i64::MIN, i64::MAX),
                );
                continue;
            }
        }
        let implied_kind = match &value {
            ParamLiteral::Bool(_) => ParamKind::Bool,
            ParamLiteral::Int(_) => ParamKind::Int,
            ParamLiteral::Float(_) => ParamKind::Float,
            ParamLiteral::Str(_) => ParamKind::Str,
        };
        let (ty, kind) = match param.ty {
            Some(ty) => match ParamKind::of_type(&ty) {
                Some(kind) if kind.accepts(&value) => (ty, kind),
                Some(kind) => {
                    errors.spanned(
                        &param.value,
                        format!(
                            "`{}` is declared `{}`: its value must be {}",
                            param.name,
                            ty.to_token_stream().to_string().replace(' ', ""),
                            kind.describe()
                        ),
                    );
                    continue;
                }
                None => {
                    errors.spanned(
                        &ty,
                        "a param's type must be one of bool, i8..i64, isize, u8..u64, usize, f32, f64, String",
                    );
                    continue;
                }
            },
            None => {
                let ty: Type = match implied_kind {
                    ParamKind::Bool => syn::parse_quote!(bool),
                    ParamKind::Int | ParamKind::UInt => syn::parse_quote!(i64),
                    ParamKind::Float => syn::parse_quote!(f64),
                    ParamKind::Str => syn::parse_quote!(String),
                };
                (ty, implied_kind)
            }
        };
        entries.push(ParamEntry { name: param.name, ty, kind, value, value_expr: param.value });
    }
    entries
}

pub fn literal_value(expr: &Expr) -> Option<ParamLiteral> {
    match expr {
        Expr::Lit(ExprLit { lit, .. }) => match lit {
            Lit::Bool(b) => Some(ParamLiteral::Bool(b.value)),
            Lit::Int(i) => i.base10_parse::<i128>().ok().map(ParamLiteral::Int),
            Lit::Float(f) => f.base10_parse::<f64>().ok().map(ParamLiteral::Float),
            Lit::Str(s) => Some(ParamLiteral::Str(s.value())),
            _ => None,
        },
        Expr::Unary(ExprUnary { op: UnOp::Neg(_), expr, .. }) => match literal_value(expr)? {
            ParamLiteral::Int(i) => Some(ParamLiteral::Int(-i)),
            ParamLiteral::Float(f) => Some(ParamLiteral::Float(-f)),
            _ => None,
        },
        Expr::Group(group) => literal_value(&group.expr),
        _ => None,
    }
}

/// Reads a non-negative integer literal (`replicates = 10`).
pub fn parse_u64(expr: &Expr, what: &str, example: u64, errors: &mut Errors) -> Option<u64> {
    if let Expr::Lit(ExprLit { lit: Lit::Int(int), .. }) = expr {
        if let Ok(value) = int.base10_parse::<u64>() {
            return Some(value);
        }
    }
    errors.spanned(expr, format!("`{what}` takes a non-negative integer literal, like `{what} = {example}`"));
    None
}

/// Reads an integer literal within `min..=max` (`jobs = 16`, `retries = 3`); anything else, a
/// negative number included, is an error at the value naming the valid range.
pub fn parse_bounded(expr: &Expr, what: &str, min: u64, max: u64, example: u64, errors: &mut Errors) -> Option<u64> {
    let valid = format!("`{what}` takes an integer literal from {min} to {max}, like `{what} = {example}`");
    match expr {
        Expr::Lit(ExprLit { lit: Lit::Int(int), .. }) => match int.base10_parse::<u64>() {
            Ok(value) if (min..=max).contains(&value) => Some(value),
            _ => {
                errors.spanned(expr, format!("{valid}, not {}", int.base10_digits()));
                None
            }
        },
        _ => {
            errors.spanned(expr, valid);
            None
        }
    }
}

/// What a limit's name may be: a non-empty string of ASCII letters, digits, `_` and `-`.
pub const LIMIT_NAME_RULE: &str = "a limit's name is a non-empty string of ASCII letters, digits, `_` and `-`, \
                                    like `\"ollama\"`";

/// Whether `name` is a valid limit name (see [`LIMIT_NAME_RULE`]).
pub fn is_limit_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Reads a limit's name written as a string literal (`limit = "ollama"`).
pub fn parse_limit_name(expr: &Expr, what: &str, errors: &mut Errors) -> Option<String> {
    match expr {
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) if is_limit_name(&s.value()) => Some(s.value()),
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => {
            errors.spanned(expr, format!("`{what}` = {:?} is not a valid name: {LIMIT_NAME_RULE}", s.value()));
            None
        }
        _ => {
            errors.spanned(
                expr,
                format!("`{what}` takes the limit's name as a string literal, like `{what} = \"ollama\"`"),
            );
            None
        }
    }
}

/// One `name = capacity` entry of `limits(...)`; the name is a word or a string literal (for
/// names with `-`).
struct RawLimit {
    name: Expr,
    capacity: Expr,
}

impl Parse for RawLimit {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name: Expr = if input.peek(Ident) {
            let ident: Ident = input.parse()?;
            syn::parse_quote_spanned!(ident.span()=> #ident)
        } else {
            input.parse::<Lit>().map(|lit| Expr::Lit(ExprLit { attrs: Vec::new(), lit }))?
        };
        input.parse::<Token![=]>()?;
        Ok(RawLimit { name, capacity: input.parse()? })
    }
}

/// The largest capacity `limits(...)` takes: more permits than units in flight limit nothing.
pub const MAX_CAPACITY: u64 = 1 << 20;

/// Parses `limits(ollama = 2, "judge-1" = 1)`: each name valid and given once, each capacity at
/// least 1.
pub fn parse_limits(content: TokenStream, errors: &mut Errors) -> Vec<(String, u64)> {
    const SHAPE: &str = "`limits` lists `name = capacity`, like `limits(ollama = 2, judge = 1)`";
    let raw = match Punctuated::<RawLimit, Token![,]>::parse_terminated.parse2(content) {
        Ok(raw) => raw,
        Err(error) => {
            errors.push(syn::Error::new(error.span(), format!("{error}: {SHAPE}")));
            return Vec::new();
        }
    };
    let mut limits: Vec<(String, u64)> = Vec::new();
    for entry in raw {
        let name = match &entry.name {
            Expr::Path(path) => path.path.get_ident().map(Ident::to_string),
            Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => Some(s.value()),
            _ => None,
        };
        let Some(name) = name.filter(|name| is_limit_name(name)) else {
            errors.spanned(&entry.name, LIMIT_NAME_RULE);
            continue;
        };
        if limits.iter().any(|(existing, _)| *existing == name) {
            errors.spanned(&entry.name, format!("limit `{name}` is given twice"));
            continue;
        }
        let what = format!("the capacity of `{name}`");
        let valid =
            format!("{what} is an integer literal from 1 to {MAX_CAPACITY}: the units that may hold it at once");
        let capacity = match &entry.capacity {
            Expr::Lit(ExprLit { lit: Lit::Int(int), .. }) => int.base10_parse::<u64>().ok(),
            _ => None,
        };
        match capacity {
            Some(capacity) if (1..=MAX_CAPACITY).contains(&capacity) => limits.push((name, capacity)),
            Some(0) => errors.spanned(&entry.capacity, format!("{valid}; 0 would never let a unit hold it")),
            _ => errors.spanned(&entry.capacity, valid),
        }
    }
    limits
}

/// The units `timeout` accepts, with their length in milliseconds.
const DURATION_UNITS: &[(&str, u64)] = &[("ms", 1), ("s", 1_000), ("min", 60_000), ("h", 3_600_000)];

/// Parses a duration written as a whole number and a unit (`500ms`, `120s`, `2min`, `1h`) into
/// milliseconds; the message says what is wrong and what would be valid.
pub fn duration_ms(text: &str) -> Result<u64, String> {
    const VALID: &str = "a whole number followed by a unit, `ms`, `s`, `min` or `h`, like \"120s\" or \"2min\"";
    let digits = text.chars().take_while(char::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let Some((_, factor)) = DURATION_UNITS.iter().find(|(name, _)| *name == unit) else {
        let problem = if number.is_empty() {
            "does not start with a whole number".to_owned()
        } else if unit.is_empty() {
            "has no unit".to_owned()
        } else {
            format!("has unknown unit `{unit}`")
        };
        return Err(format!("{text:?} {problem}: a timeout is {VALID}"));
    };
    if number.is_empty() {
        return Err(format!("{text:?} does not start with a whole number: a timeout is {VALID}"));
    }
    let value: u64 = number.parse().map_err(|_| format!("{text:?} is too long a timeout"))?;
    let ms = value.checked_mul(*factor).ok_or_else(|| format!("{text:?} is too long a timeout"))?;
    if ms == 0 {
        return Err(format!("{text:?} is no time at all: a timeout must be longer than 0, like \"120s\""));
    }
    Ok(ms)
}

/// Reads `timeout = "120s"` into milliseconds; anything else is an error at the value.
pub fn parse_timeout(value: &Expr, errors: &mut Errors) -> Option<u64> {
    match value {
        Expr::Lit(ExprLit { lit: Lit::Str(text), .. }) => match duration_ms(&text.value()) {
            Ok(ms) => Some(ms),
            Err(problem) => {
                errors.spanned(value, format!("`timeout` = {problem}"));
                None
            }
        },
        other => {
            errors.spanned(
                other,
                "`timeout` takes a string literal: a whole number and a unit (`ms`, `s`, `min`, `h`), \
                 like `timeout = \"120s\"`",
            );
            None
        }
    }
}

/// The most retries `retries = N` may ask for, of a unit or of a step.
pub const MAX_RETRIES: u64 = 100;

/// Reads a path (`datasource = llama_table`).
pub fn parse_path(expr: &Expr, what: &str, errors: &mut Errors) -> Option<Path> {
    if let Expr::Path(path) = expr {
        if path.qself.is_none() {
            return Some(path.path.clone());
        }
    }
    errors.spanned(expr, format!("`{what}` takes the name of a `#[{what}]` function, like `{what} = my_table`"));
    None
}

/// The path generated code reaches the runtime through when no `crate = ...` is given.
pub fn default_crate() -> Path {
    syn::parse_quote!(::crystallize)
}

/// `krate`'s tokens at `span`, for generated code spanned at the user's tokens: a path into the
/// runtime that kept the macro's call-site span would widen rustc's diagnostics to the whole
/// attribute. The default `::crystallize` takes `span` entirely, exactly as the tokens written
/// in the macro did; a path the user gave keeps its own name resolution (a `$crate` in it must
/// still resolve where it was written) and only moves to `span`.
pub fn krate_at(krate: &Path, span: Span) -> TokenStream {
    let is_default = *krate == default_crate();
    krate
        .to_token_stream()
        .into_iter()
        .map(|mut token| {
            token.set_span(if is_default { span } else { token.span().located_at(span) });
            token
        })
        .collect()
}

/// `quote_spanned!` for code that names the runtime: `#krate` in the body is the crate path
/// located at the same span (see [`krate_at`]). `krate_spanned!(krate, span=> ...)`.
macro_rules! krate_spanned {
    ($krate:ident, $span:expr=> $($tt:tt)*) => {{
        let __span: ::proc_macro2::Span = $span;
        let $krate = $crate::args::krate_at($krate, __span);
        ::quote::quote_spanned!(__span=> $($tt)*)
    }};
}
pub(crate) use krate_spanned;

/// Reads `crate = path`: the path of the crystallize crate, as the user's crate names it
/// (`crate = my_reexport::crystallize`, or the same path in a string literal).
pub fn parse_crate(expr: &Expr, errors: &mut Errors) -> Option<Path> {
    match expr {
        Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => return Some(path.path.clone()),
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => {
            if let Ok(path) = s.parse::<Path>() {
                return Some(path);
            }
        }
        _ => {}
    }
    errors.spanned(
        expr,
        "`crate` takes the path of the crystallize crate as your crate names it, like `crate = my_reexport::crystallize`",
    );
    None
}

/// The skeleton both derives share: parse the item, read its `#[crystallize(crate = path)]`,
/// then render the fields `parse` found, or emit every error (a derive cannot change its item,
/// so the struct stays as the user wrote it).
pub fn derive<T>(
    item: TokenStream,
    parse: impl FnOnce(&syn::DeriveInput) -> syn::Result<T>,
    render: impl FnOnce(&Path, &syn::Ident, &T) -> TokenStream,
) -> TokenStream {
    let input: syn::DeriveInput = match syn::parse2(item) {
        Ok(input) => input,
        Err(error) => return error.to_compile_error(),
    };
    let mut errors = Errors::default();
    let krate = container_crate(&input.attrs, &mut errors);
    match (parse(&input), errors.finish(())) {
        (Ok(fields), Ok(())) => render(&krate, &input.ident, &fields),
        (Err(mut error), Err(more)) => {
            error.combine(more);
            error.to_compile_error()
        }
        (Err(error), _) | (_, Err(error)) => error.to_compile_error(),
    }
}

/// Reads the `#[crystallize(crate = path)]` attributes of a derive's container; the default
/// path when there are none.
pub fn container_crate(attrs: &[syn::Attribute], errors: &mut Errors) -> Path {
    const KEYS: &[&str] = &["crate"];
    let mut krate = None;
    let mut seen = Vec::new();
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("crystallize")) {
        let tokens = match attr.meta.require_list() {
            Ok(list) => list.tokens.clone(),
            Err(_) => {
                errors.spanned(attr, "write `#[crystallize(crate = path)]`");
                continue;
            }
        };
        let args = match parse_args(tokens) {
            Ok(args) => args,
            Err(error) => {
                errors.push(error);
                continue;
            }
        };
        for arg in &args {
            match arg {
                Arg::KeyValue { key, value } => {
                    if check_key(key, KEYS, &mut seen, errors) {
                        krate = parse_crate(value, errors);
                    }
                }
                Arg::List { key, .. } => {
                    if check_key(key, KEYS, &mut seen, errors) {
                        wrong_shape(arg, "with a value: `crate = path`", errors);
                    }
                }
                Arg::Positional(_) => wrong_shape(arg, "`crate = path`", errors),
            }
        }
    }
    krate.unwrap_or_else(default_crate)
}

/// Reads a list of string literals (`hypotheses = ["a.x > b.x"]`).
pub fn parse_strings(expr: &Expr, what: &str, errors: &mut Errors) -> Vec<syn::LitStr> {
    let mut out = Vec::new();
    if let Expr::Array(array) = expr {
        for element in &array.elems {
            match element {
                Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => out.push(s.clone()),
                other => errors.spanned(other, format!("`{what}` takes string literals: write this one in quotes")),
            }
        }
    } else {
        errors.spanned(expr, format!("`{what}` takes a list of strings: `{what} = [\"...\", ...]`"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn params(tokens: TokenStream, allow_types: bool) -> (Vec<ParamEntry>, Option<String>) {
        let mut errors = Errors::default();
        let entries = parse_params(tokens, allow_types, &mut errors);
        (entries, errors.finish(()).err().map(|e| e.to_string()))
    }

    #[test]
    fn parses_positional_key_value_and_list_arguments() {
        let args = parse_args(quote!(social_deception, datasource = dolphin_table, set(t = 1.2))).unwrap();
        assert!(matches!(&args[0], Arg::Positional(p) if p.is_ident("social_deception")));
        assert!(matches!(&args[1], Arg::KeyValue { key, .. } if key == "datasource"));
        assert!(matches!(&args[2], Arg::List { key, .. } if key == "set"));
    }

    #[test]
    fn infers_param_kinds_from_literals_and_declared_types() {
        let (entries, error) = params(quote!(t = 0.7, n = -3, name = "x", on = true, ms: u64 = 0), true);
        assert!(error.is_none());
        let kinds: Vec<_> = entries.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [ParamKind::Float, ParamKind::Int, ParamKind::Str, ParamKind::Bool, ParamKind::UInt]);
        assert_eq!(entries[1].value, ParamLiteral::Int(-3));
        assert_eq!(entries[2].value, ParamLiteral::Str("x".into()));
    }

    #[test]
    fn rejects_non_literal_values_duplicates_and_unknown_types() {
        let mut errors = Errors::default();
        parse_params(quote!(t = some_fn(), t2 = 1, t2 = 2, v: Vec<u8> = 3), true, &mut errors);
        let messages: Vec<String> = errors.finish(()).unwrap_err().into_iter().map(|error| error.to_string()).collect();
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(messages[0].contains("must be a literal"), "{messages:?}");
        assert!(messages[1].contains("`t2` is given twice"), "{messages:?}");
        assert!(messages[2].contains("a param's type must be one of"), "{messages:?}");
    }

    #[test]
    fn a_declared_type_must_match_its_literal() {
        let (_, error) = params(quote!(think_ms: u64 = -1), true);
        let error = error.unwrap();
        assert!(error.contains("`think_ms` is declared `u64`: its value must be a non-negative integer"), "{error}");
        let (_, error) = params(quote!(ratio: f32 = 1), true);
        assert!(error.unwrap().contains("a number with a decimal point"));
        let (_, error) = params(quote!(label: String = 3), true);
        assert!(error.unwrap().contains("a string literal"));
        let (entries, error) = params(quote!(label: String = "x", name: &'static str = "y", n: i8 = -1), true);
        assert!(error.is_none(), "{error:?}");
        let kinds: Vec<ParamKind> = entries.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [ParamKind::Str, ParamKind::Str, ParamKind::Int]);
    }

    #[test]
    fn integers_must_fit_the_runtime_value() {
        let (_, error) = params(quote!(big: u64 = 18446744073709551615), true);
        assert!(error.unwrap().contains("must fit in an `i64`"));
        let (entries, error) = params(quote!(big: u64 = 9223372036854775807), true);
        assert!(error.is_none());
        assert_eq!(entries[0].value, ParamLiteral::Int(i128::from(i64::MAX)));
    }

    #[test]
    fn set_lists_may_not_declare_types() {
        let (_, error) = params(quote!(t: f64 = 1.0), false);
        assert!(error.unwrap().contains("declares each param's type"));
    }

    #[test]
    fn durations_take_a_whole_number_and_a_unit() {
        assert_eq!(duration_ms("500ms"), Ok(500));
        assert_eq!(duration_ms("120s"), Ok(120_000));
        assert_eq!(duration_ms("2min"), Ok(120_000));
        assert_eq!(duration_ms("1h"), Ok(3_600_000));
        assert!(duration_ms("5x").unwrap_err().contains("unknown unit `x`"));
        assert!(duration_ms("0s").unwrap_err().contains("longer than 0"));
        assert!(duration_ms("120").unwrap_err().contains("has no unit"));
        assert!(duration_ms("1.5h").unwrap_err().contains("unknown unit `.5h`"));
        assert!(duration_ms("s").unwrap_err().contains("does not start with a whole number"));
        assert!(duration_ms("99999999999999999999h").unwrap_err().contains("too long"));
    }

    #[test]
    fn limit_names_are_ascii_words_with_dashes() {
        assert!(is_limit_name("ollama"));
        assert!(is_limit_name("gpu-0_a"));
        assert!(!is_limit_name(""));
        assert!(!is_limit_name("a b"));
        assert!(!is_limit_name("é"));
    }

    #[test]
    fn limits_take_names_and_positive_capacities() {
        let mut errors = Errors::default();
        let limits = parse_limits(quote!(ollama = 2, "judge-1" = 1), &mut errors);
        assert!(errors.is_empty());
        assert_eq!(limits, [("ollama".to_owned(), 2), ("judge-1".to_owned(), 1)]);
        parse_limits(quote!(a = 0, b = x, "" = 1, a = 1, a = 2), &mut errors);
        let messages: Vec<String> = errors.finish(()).unwrap_err().into_iter().map(|e| e.to_string()).collect();
        assert_eq!(messages.len(), 4, "{messages:?}");
        assert!(messages[0].contains("never let a unit hold it"), "{messages:?}");
        assert!(messages[1].contains("from 1 to"), "{messages:?}");
        assert!(messages[2].contains("non-empty string"), "{messages:?}");
        assert!(messages[3].contains("`a` is given twice"), "{messages:?}");
    }

    #[test]
    fn bounded_integers_name_their_range() {
        let mut errors = Errors::default();
        assert_eq!(parse_bounded(&syn::parse_quote!(16), "jobs", 1, 1024, 16, &mut errors), Some(16));
        assert_eq!(parse_bounded(&syn::parse_quote!(0), "jobs", 1, 1024, 16, &mut errors), None);
        assert_eq!(parse_bounded(&syn::parse_quote!(-1), "retries", 0, 100, 3, &mut errors), None);
        let messages: Vec<String> = errors.finish(()).unwrap_err().into_iter().map(|e| e.to_string()).collect();
        assert!(messages[0].contains("from 1 to 1024") && messages[0].contains("not 0"), "{messages:?}");
        assert!(messages[1].contains("from 0 to 100"), "{messages:?}");
    }

    #[test]
    fn unknown_keys_get_a_suggestion() {
        let mut errors = Errors::default();
        let key: Ident = syn::parse_quote!(replicats);
        assert!(!check_key(&key, &["datasource", "replicates"], &mut Vec::new(), &mut errors));
        let message = errors.finish(()).unwrap_err().to_string();
        assert!(message.contains("did you mean `replicates`"), "{message}");
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let mut errors = Errors::default();
        let mut seen = Vec::new();
        let key: Ident = syn::parse_quote!(seed);
        assert!(check_key(&key, &["seed"], &mut seen, &mut errors));
        assert!(!check_key(&key, &["seed"], &mut seen, &mut errors));
        assert!(errors.finish(()).unwrap_err().to_string().contains("given twice"));
    }

    #[test]
    fn crate_is_a_key_with_a_path() {
        let args = parse_args(quote!(crate = my_reexport::crystallize, seed = 1)).unwrap();
        let Arg::KeyValue { key, value } = &args[0] else { panic!("not a key-value") };
        assert_eq!(key, "crate");
        let mut errors = Errors::default();
        let path = parse_crate(value, &mut errors).unwrap();
        assert_eq!(path.to_token_stream().to_string(), "my_reexport :: crystallize");
        let quoted = parse_crate(&syn::parse_quote!("::other::cr"), &mut errors).unwrap();
        assert_eq!(quoted.to_token_stream().to_string(), ":: other :: cr");
        assert!(errors.is_empty());
        assert!(parse_crate(&syn::parse_quote!(5), &mut errors).is_none());
        assert!(errors.finish(()).unwrap_err().to_string().contains("`crate` takes the path"));
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        assert_eq!(suggestion("dolphn", &["dolphin", "baseline"]), Some("dolphin"));
        assert_eq!(suggestion("zebra", &["dolphin", "baseline"]), None);
    }
}
