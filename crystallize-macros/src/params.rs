//! `#[derive(Params)]`: a struct of typed params. Each named field is one param: its name, its
//! kind (from the field's type), its Rust type and its default (`#[param(default = 0.7)]`; an
//! `Option<T>` field defaults to `None`). The expansion gives the runtime the declarations it
//! resolves overrides against, builds the struct from a condition's resolved values, and
//! implements `Default` from the declared defaults. `#[experiment(params(...))]` generates such a
//! struct and renders it with the same code ([`render`]).

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::{Data, DeriveInput, Expr, Fields, Ident, Path, Type};

use crate::args::{self, Arg, Errors, ParamKind, ParamLiteral};

const KEYS: &[&str] = &["default"];

/// The runtime's `ParamValue` for a literal.
pub fn param_value(value: &ParamLiteral, span: Span, krate: &Path) -> TokenStream {
    let value = match value {
        ParamLiteral::Bool(b) => quote!(Bool(#b)),
        ParamLiteral::Int(i) => {
            let i = *i as i64;
            quote!(Int(#i))
        }
        ParamLiteral::Float(f) => quote!(Float(#f)),
        ParamLiteral::Str(s) => quote!(Str(::std::borrow::Cow::Borrowed(#s))),
    };
    crate::args::krate_spanned!(krate, span=> #krate::__private::ParamValue::#value)
}

/// One field of a params struct.
pub struct Field {
    pub name: Ident,
    /// The field's type as written (`Option<u64>`).
    pub ty: Type,
    pub kind: ParamKind,
    /// Whether the field is `Option<T>`; its kind is then `T`'s.
    pub optional: bool,
    /// The default literal, checked against the kind; `None` only for an optional field.
    pub default: Option<(ParamLiteral, Expr)>,
}

/// Expands `#[derive(Params)]`. A derive cannot change its item, so on error only the errors are
/// emitted; the struct itself stays as the user wrote it.
pub fn expand(item: TokenStream) -> TokenStream {
    args::derive(item, parse, |krate, ident, fields: &Vec<_>| render(krate, ident, fields))
}

/// Reads the fields of a struct that derives `Params` or `Metrics`, rejecting everything else at
/// its tokens: enums, unions, tuple and unit structs, generics.
pub fn named_fields<'a>(input: &'a DeriveInput, derive: &str, what: &str, errors: &mut Errors) -> Vec<&'a syn::Field> {
    if !input.generics.params.is_empty() {
        errors.spanned(
            &input.generics,
            format!("#[derive({derive})] cannot be generic: the runtime must know each {what}'s type"),
        );
    }
    let (keyword_span, kind) = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => return named.named.iter().collect(),
            Fields::Unnamed(unnamed) => {
                errors.spanned(
                    unnamed,
                    format!(
                        "#[derive({derive})] needs named fields, one per {what}: `struct {} {{ name: Type, ... }}`",
                        input.ident
                    ),
                );
                return Vec::new();
            }
            Fields::Unit => (data.struct_token.span, "a unit struct"),
        },
        Data::Enum(data) => (data.enum_token.span, "an enum"),
        Data::Union(data) => (data.union_token.span, "a union"),
    };
    errors.at(
        keyword_span,
        format!(
            "#[derive({derive})] goes on a struct with named fields, one per {what}, not on {kind}: \
             `struct {} {{ name: Type, ... }}`",
            input.ident
        ),
    );
    Vec::new()
}

/// Parses and validates every field, reporting every error at once.
pub fn parse(input: &DeriveInput) -> syn::Result<Vec<Field>> {
    let mut errors = Errors::default();
    let mut fields = Vec::new();
    for field in named_fields(input, "Params", "param", &mut errors) {
        let Some(name) = field.ident.clone() else { continue };
        if let Some(parsed) = parse_field(name, field, &mut errors) {
            fields.push(parsed);
        }
    }
    errors.finish(fields)
}

fn parse_field(name: Ident, field: &syn::Field, all_errors: &mut Errors) -> Option<Field> {
    let mut default = None;
    let mut seen = Vec::new();
    // The attribute's own errors are collected apart: when it is wrong (`defualt = 0.7`), "this
    // field has no default" would only repeat them.
    let mut attr_errors = Errors::default();
    let errors = &mut attr_errors;
    for attr in field.attrs.iter().filter(|attr| attr.path().is_ident("param")) {
        let content = match &attr.meta {
            syn::Meta::List(list) => list.tokens.clone(),
            other => {
                errors.spanned(other, "write `#[param(default = value)]`");
                continue;
            }
        };
        let parsed = match args::parse_args(content) {
            Ok(parsed) => parsed,
            Err(error) => {
                errors.push(error);
                continue;
            }
        };
        for arg in parsed {
            match &arg {
                Arg::KeyValue { key, value } => {
                    if args::check_key(key, KEYS, &mut seen, errors) {
                        default = Some(value.clone());
                    }
                }
                Arg::List { key, .. } => {
                    if args::check_key(key, KEYS, &mut seen, errors) {
                        args::wrong_shape(&arg, "with a value: `default = ...`", errors);
                    }
                }
                Arg::Positional(path) => {
                    errors.spanned(path, format!("expected `key = value`; valid keys: {}", KEYS.join(", ")))
                }
            }
        }
    }
    let attribute_ok = attr_errors.is_empty();
    if let Err(error) = attr_errors.finish(()) {
        all_errors.push(error);
    }
    let errors = all_errors;
    let (inner, optional) = match option_inner(&field.ty) {
        Some(inner) => (inner, true),
        None => (&field.ty, false),
    };
    let is_str_ref = inner.to_token_stream().to_string().replace(' ', "") == "&'staticstr";
    let kind = match ParamKind::of_type(inner) {
        Some(kind) if !is_str_ref => kind,
        _ => {
            errors.spanned(
                &field.ty,
                "a param's type must be one of bool, i8..i64, isize, u8..u64, usize, f32, f64, String, \
                 or `Option` of one of these",
            );
            return None;
        }
    };
    let default = match default {
        Some(expr) => Some((checked_literal(&name, &field.ty, kind, &expr, errors)?, expr)),
        None if optional || !attribute_ok => None,
        None => {
            errors.at(
                name.span(),
                format!(
                    "param `{name}` has no default: give it one with `#[param(default = {})]`, or make it \
                     `Option<{}>`, which defaults to `None`",
                    example(kind),
                    field.ty.to_token_stream().to_string().replace(' ', "")
                ),
            );
            return None;
        }
    };
    Some(Field { name, ty: field.ty.clone(), kind, optional, default })
}

/// A default literal that fits `kind`, or an error at it.
fn checked_literal(name: &Ident, ty: &Type, kind: ParamKind, expr: &Expr, errors: &mut Errors) -> Option<ParamLiteral> {
    let Some(value) = args::literal_value(expr) else {
        errors.spanned(
            expr,
            "a param's default must be a literal: a number, a string or `true`/`false` (not a constant or expression)",
        );
        return None;
    };
    if let ParamLiteral::Int(i) = value {
        if i64::try_from(i).is_err() {
            errors.spanned(expr, format!("an integer param must fit in an `i64`: {} to {}", i64::MIN, i64::MAX));
            return None;
        }
    }
    if !kind.accepts(&value) {
        errors.spanned(
            expr,
            format!(
                "`{name}` is `{}`: its default must be {}",
                ty.to_token_stream().to_string().replace(' ', ""),
                kind.describe()
            ),
        );
        return None;
    }
    Some(value)
}

fn example(kind: ParamKind) -> &'static str {
    match kind {
        ParamKind::Bool => "false",
        ParamKind::Int | ParamKind::UInt => "0",
        ParamKind::Float => "0.5",
        ParamKind::Str => "\"...\"",
    }
}

/// `T` of `Option<T>` (or `std::option::Option<T>`), by the last path segment.
pub fn option_inner(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    if last.ident != "Option" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(arguments) = &last.arguments else { return None };
    match arguments.args.iter().collect::<Vec<_>>().as_slice() {
        [syn::GenericArgument::Type(inner)] => Some(inner),
        _ => None,
    }
}

/// The `TypedParams` and `Default` impls of the params struct `ident`.
pub fn render(krate: &syn::Path, ident: &Ident, fields: &[Field]) -> TokenStream {
    let decls = fields.iter().map(|field| {
        let name = field.name.to_string();
        let kind = format_ident!("{}", field.kind.variant());
        let rust_type = field.ty.to_token_stream().to_string().replace(' ', "");
        let default = match &field.default {
            Some((value, expr)) => param_value(value, syn::spanned::Spanned::span(expr), krate),
            None => quote!(#krate::__private::ParamValue::None),
        };
        quote! {
            #krate::__private::ParamDecl {
                name: #name,
                kind: #krate::__private::ParamKind::#kind,
                rust_type: #rust_type,
                default: #default,
            }
        }
    });
    let reads = fields.iter().map(|field| {
        let member = &field.name;
        let name = field.name.to_string();
        quote!(#member: #krate::__private::read_field(params, #name)?)
    });
    // The defaults are written as the user's literals, at their spans, into the typed fields:
    // `#[param(default = 300)] ratio: u8` fails to compile there, as the same code of their own would.
    let defaults = fields.iter().map(|field| {
        let member = &field.name;
        let value = match &field.default {
            None => quote!(::core::option::Option::None),
            Some((_, expr)) => {
                let span = syn::spanned::Spanned::span(expr);
                let value = match field.kind {
                    ParamKind::Str => quote_spanned!(span=> ::std::string::String::from(#expr)),
                    _ => quote_spanned!(span=> #expr),
                };
                if field.optional {
                    quote_spanned!(span=> ::core::option::Option::Some(#value))
                } else {
                    value
                }
            }
        };
        quote!(#member: #value)
    });
    let span = Span::call_site();
    let params = Ident::new("params", span);
    quote! {
        impl #krate::__private::TypedParams for #ident {
            const DECLS: &'static [#krate::__private::ParamDecl] = &[#(#decls),*];

            fn from_params(
                #params: &#krate::__private::Params,
            ) -> ::core::result::Result<Self, ::std::string::String> {
                let _ = #params;
                ::core::result::Result::Ok(#ident { #(#reads,)* })
            }
        }

        /// Every param at its declared default.
        impl ::core::default::Default for #ident {
            fn default() -> Self {
                #ident { #(#defaults,)* }
            }
        }
    }
}
