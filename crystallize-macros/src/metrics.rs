//! `#[derive(Metrics)]`: the struct of metrics an experiment returns. Each named field is one
//! metric (a bool, an integer or a float), recorded as `ctx.record` records it; the field names
//! are the experiment's declared metrics. Each metric also has bounds: a bool lies in [0, 1], an
//! unsigned integer in [0, ∞), and `#[crystallize(bounds = LOW..=HIGH)]` on a field declares
//! them; intervals of a bounded metric never leave its bounds.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::{DeriveInput, Expr, Ident, Path};

use crate::args::{self, Errors};
use crate::params::named_fields;

/// Expands `#[derive(Metrics)]`. On error only the errors are emitted; the struct stays.
pub fn expand(item: TokenStream) -> TokenStream {
    args::derive(item, parse, |krate, ident, fields: &Vec<_>| render(krate, ident, fields))
}

/// One metric: its field and its bounds (`None` for an unbounded end).
pub struct Field {
    ident: Ident,
    low: Option<f64>,
    high: Option<f64>,
}

/// The fields, each checked to be a bool, an integer or a float, with their bounds.
pub fn parse(input: &DeriveInput) -> syn::Result<Vec<Field>> {
    let mut errors = Errors::default();
    let mut fields = Vec::new();
    for field in named_fields(input, "Metrics", "metric", &mut errors) {
        let Some(name) = field.ident.clone() else { continue };
        let text = field.ty.to_token_stream().to_string().replace(' ', "");
        let numeric = matches!(
            text.as_str(),
            "bool" | "i8" | "i16" | "i32" | "i64" | "isize" | "u8" | "u16" | "u32" | "u64" | "usize" | "f32" | "f64"
        );
        if !numeric {
            errors.spanned(
                &field.ty,
                format!(
                    "a metric is a bool (recorded as 0 or 1), an integer or a float, not `{text}`; \
                     record anything else with `ctx.record` or `ctx.write_artifact`"
                ),
            );
            continue;
        }
        let (mut low, mut high) = match text.as_str() {
            "bool" => (Some(0.0), Some(1.0)),
            "u8" | "u16" | "u32" | "u64" | "usize" => (Some(0.0), None),
            _ => (None, None),
        };
        if let Some((l, h)) = field_bounds(&field.attrs, &mut errors) {
            (low, high) = (Some(l), Some(h));
        }
        fields.push(Field { ident: name, low, high });
    }
    errors.finish(fields)
}

/// Reads `#[crystallize(bounds = LOW..=HIGH)]` on a field (number literals, LOW < HIGH).
fn field_bounds(attrs: &[syn::Attribute], errors: &mut Errors) -> Option<(f64, f64)> {
    const USAGE: &str = "write `#[crystallize(bounds = LOW..=HIGH)]` with two numbers, e.g. `bounds = 0..=1`";
    let mut found = None;
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("crystallize")) {
        let Ok(list) = attr.meta.require_list() else {
            errors.spanned(attr, USAGE);
            continue;
        };
        let args = match args::parse_args(list.tokens.clone()) {
            Ok(args) => args,
            Err(error) => {
                errors.push(error);
                continue;
            }
        };
        for arg in args {
            match arg {
                args::Arg::KeyValue { key, value } if key == "bounds" => match range(&value) {
                    Some((low, high)) if low < high => found = Some((low, high)),
                    Some(_) => errors.spanned(&value, "the bounds of a metric need LOW < HIGH, e.g. `bounds = 0..=1`"),
                    None => errors.spanned(&value, USAGE),
                },
                args::Arg::KeyValue { key, .. } | args::Arg::List { key, .. } => {
                    errors.spanned(&key, format!("unknown key '{key}' on a metric; the one key is `bounds`: {USAGE}"))
                }
                args::Arg::Positional(path) => errors.spanned(&path, USAGE),
            }
        }
    }
    found
}

/// `LOW..=HIGH` with number literals (a leading `-` allowed).
fn range(value: &Expr) -> Option<(f64, f64)> {
    let Expr::Range(range) = value else { return None };
    if !matches!(range.limits, syn::RangeLimits::Closed(_)) {
        return None;
    }
    Some((number(range.start.as_deref()?)?, number(range.end.as_deref()?)?))
}

fn number(expr: &Expr) -> Option<f64> {
    match expr {
        Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(int), .. }) => int.base10_parse::<f64>().ok(),
        Expr::Lit(syn::ExprLit { lit: syn::Lit::Float(float), .. }) => float.base10_parse::<f64>().ok(),
        Expr::Unary(syn::ExprUnary { op: syn::UnOp::Neg(_), expr, .. }) => number(expr).map(|v| -v),
        Expr::Group(group) => number(&group.expr),
        _ => None,
    }
    .filter(|v| v.is_finite())
}

/// The `DeclaredMetrics` impl of the struct `ident`, and what `expect(...)` checks against.
pub fn render(krate: &Path, ident: &Ident, fields: &[Field]) -> TokenStream {
    let names: Vec<String> = fields.iter().map(|f| f.ident.to_string()).collect();
    let end = |v: Option<f64>, infinite: TokenStream| match v {
        Some(v) => quote!(#v),
        None => infinite,
    };
    let bounds = fields.iter().map(|f| {
        let low = end(f.low, quote!(f64::NEG_INFINITY));
        let high = end(f.high, quote!(f64::INFINITY));
        quote!((#low, #high))
    });
    // Each record call is spanned at its field, so a problem with one names that field.
    let records = fields.iter().zip(&names).map(|(f, name)| {
        let field = &f.ident;
        crate::args::krate_spanned!(krate, field.span()=> #krate::__private::Ctx::record(ctx, #name, self.#field);)
    });
    quote! {
        impl #krate::__private::DeclaredMetrics for #ident {
            const NAMES: &'static [&'static str] = &[#(#names),*];
            const BOUNDS: &'static [(f64, f64)] = &[#(#bounds),*];

            fn record(self, ctx: &#krate::__private::Ctx) {
                let _ = ctx;
                #(#records)*
            }
        }

        impl #krate::__private::ExpectsMetrics for #ident {
            type Declared = #ident;
        }
    }
}
