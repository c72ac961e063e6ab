//! `#[experiment(...)]`: a function that runs one replicate on the input its datasource produces.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::{Ident, ItemFn, LitStr, Path, Type};

use crate::args::{self, Arg, Errors, ParamEntry, ParamLiteral};
use crate::fingerprint;
use crate::signature::{self, is_ctx, location, marker_struct, with_errors};

const KEYS: &[&str] = &["datasource", "replicates", "seed", "params", "hypotheses", "observers"];

/// What an `#[experiment]` says, after parsing and validation.
pub struct Model {
    pub function: ItemFn,
    pub datasource: Option<Path>,
    pub replicates: u64,
    pub seed: u64,
    pub params: Vec<ParamEntry>,
    pub hypotheses: Vec<LitStr>,
    /// Expressions building the observers attached to every run of this experiment.
    pub observers: Vec<syn::Expr>,
    /// The input's type, and how the function takes it.
    pub input: Option<(Type, bool)>,
    pub takes_ctx: bool,
}

/// Expands `#[experiment(...)]` on `item`.
pub fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(error) => return with_errors(item, syn::Error::new(error.span(), "#[experiment] goes on a function")),
    };
    match parse(attr, function) {
        Ok(model) => render(&model),
        Err(error) => with_errors(item, error),
    }
}

/// Parses and validates the attribute and the function together, reporting every error at once.
pub fn parse(attr: TokenStream, function: ItemFn) -> syn::Result<Model> {
    let mut errors = Errors::default();
    let mut model = Model {
        function,
        datasource: None,
        replicates: 10,
        seed: 0,
        params: Vec::new(),
        hypotheses: Vec::new(),
        observers: Vec::new(),
        input: None,
        takes_ctx: false,
    };
    let mut seen = Vec::new();
    for arg in args::parse_args(attr)? {
        match &arg {
            Arg::KeyValue { key, value } => {
                if !args::check_key(key, KEYS, &mut seen, &mut errors) {
                    continue;
                }
                match key.to_string().as_str() {
                    "datasource" => model.datasource = args::parse_path(value, "datasource", &mut errors),
                    "replicates" => {
                        if let Some(n) = args::parse_u64(value, "replicates", &mut errors) {
                            if n == 0 {
                                errors.at(syn::spanned::Spanned::span(value), "`replicates` must be at least 1");
                            }
                            model.replicates = n;
                        }
                    }
                    "seed" => model.seed = args::parse_u64(value, "seed", &mut errors).unwrap_or(0),
                    "hypotheses" => model.hypotheses = args::parse_strings(value, "hypotheses", &mut errors),
                    "observers" => match value {
                        syn::Expr::Array(array) => model.observers = array.elems.iter().cloned().collect(),
                        other => errors.at(
                            syn::spanned::Spanned::span(other),
                            "`observers` takes a list of observers: `observers = [MyObserver::new(), ...]`",
                        ),
                    },
                    _ => args::wrong_shape(&arg, "`params(name = value, ...)`", &mut errors),
                }
            }
            Arg::List { key, content } => {
                if !args::check_key(key, KEYS, &mut seen, &mut errors) {
                    continue;
                }
                if key == "params" {
                    model.params = args::parse_params(content.clone(), true, &mut errors);
                } else {
                    args::wrong_shape(&arg, &format!("`{key} = ...`"), &mut errors);
                }
            }
            Arg::Positional(path) => errors.at(
                syn::spanned::Spanned::span(path),
                format!("expected `key = value`; valid keys: {}", KEYS.join(", ")),
            ),
        }
    }
    validate_signature(&mut model, &mut errors);
    errors.finish(model)
}

/// The function takes the input (by value or by reference) when there is a datasource, and
/// optionally the context after it.
fn validate_signature(model: &mut Model, errors: &mut Errors) {
    signature::reject_unsupported(&model.function, "an experiment", errors);
    let args = signature::typed_args(&model.function, "an experiment", errors);
    let mut rest = args.as_slice();
    if model.datasource.is_some() {
        match rest.split_first() {
            Some((first, tail)) if !is_ctx(&first.ty) => {
                let shape = signature::shape(&first.ty);
                if shape.mutable_ref {
                    errors.at(
                        syn::spanned::Spanned::span(&first.ty),
                        "take the input by value or by shared reference; each unit gets its own input",
                    );
                }
                model.input = Some((shape.ty.clone(), shape.by_ref));
                rest = tail;
            }
            _ => errors.at(
                model.function.sig.ident.span(),
                "an experiment with a datasource takes the input first: `fn name(input: Input, ctx: &mut Ctx)`",
            ),
        }
    }
    match rest {
        [] => {}
        [ctx] if is_ctx(&ctx.ty) => model.takes_ctx = true,
        [other, ..] => {
            let hint = if model.datasource.is_none() && !is_ctx(&other.ty) {
                "an experiment without `datasource = ...` takes only the context: `fn name(ctx: &mut Ctx)`"
            } else {
                "an experiment takes its input and then the context, nothing else"
            };
            errors.at(syn::spanned::Spanned::span(&other.ty), hint);
        }
    }
}

fn params_struct_ident(ident: &Ident) -> Ident {
    format_ident!("__CrystallizeParams_{}", ident)
}

/// The runtime's `ParamValue` for a literal.
pub fn param_value(value: &ParamLiteral, span: Span) -> TokenStream {
    let value = match value {
        ParamLiteral::Bool(b) => quote!(Bool(#b)),
        ParamLiteral::Int(i) => {
            let i = *i as i64;
            quote!(Int(#i))
        }
        ParamLiteral::Float(f) => quote!(Float(#f)),
        ParamLiteral::Str(s) => quote!(Str(::std::borrow::Cow::Borrowed(#s))),
    };
    quote_spanned!(span=> ::crystallize::__private::ParamValue::#value)
}

fn render(model: &Model) -> TokenStream {
    let function = &model.function;
    let ident = &function.sig.ident;
    let vis = &function.vis;
    let name = ident.to_string();
    let marker = marker_struct(vis, ident);
    let params_ident = params_struct_ident(ident);
    let location = location(ident.span());
    let fingerprint = fingerprint::of_tokens(&function.to_token_stream());
    let replicates = model.replicates;
    let seed = model.seed;
    let hypotheses = &model.hypotheses;
    let attached_observers = attached_observers(model, &name);

    let field_names: Vec<&Ident> = model.params.iter().map(|p| &p.name).collect();
    let field_types: Vec<&Type> = model.params.iter().map(|p| &p.ty).collect();
    // The defaults are assigned to the typed fields so that `think_ms: u64 = -1` fails to compile
    // at the user's literal, exactly as the same assignment would in their own code.
    let default_checks = model.params.iter().map(|p| {
        let field = &p.name;
        let value = &p.value_expr;
        quote_spanned!(syn::spanned::Spanned::span(value)=> params.#field = #value;)
    });
    let param_decls = model.params.iter().map(|p| {
        let param_name = p.name.to_string();
        let kind = format_ident!("{}", p.kind.variant());
        let rust_type = p.ty.to_token_stream().to_string().replace(' ', "");
        let default = param_value(&p.value, syn::spanned::Spanned::span(&p.value_expr));
        quote! {
            ::crystallize::__private::ParamDecl {
                name: #param_name,
                kind: ::crystallize::__private::ParamKind::#kind,
                rust_type: #rust_type,
                default: #default,
            }
        }
    });

    let (input_type, produce, datasource_info) = match (&model.datasource, &model.input) {
        (Some(path), Some((ty, _))) => {
            let span = syn::spanned::Spanned::span(path);
            (
                quote!(#ty),
                quote_spanned!(span=> <#path as ::crystallize::__private::Datasource>::produce(ctx)),
                quote_spanned!(span=> ::core::option::Option::Some(&<#path as ::crystallize::__private::Datasource>::INFO)),
            )
        }
        _ => (
            quote!(()),
            quote!({
                let _ = ctx;
            }),
            quote!(::core::option::Option::None),
        ),
    };
    let input_arg = match &model.input {
        Some((_, true)) => quote!(&input,),
        Some((_, false)) => quote!(input,),
        None => quote!(),
    };
    let ctx_arg = if model.takes_ctx { quote!(ctx) } else { quote!() };
    let unused_input = if model.input.is_none() { quote!(let _ = input;) } else { quote!() };
    let unused_ctx = if model.takes_ctx { quote!() } else { quote!(let _ = &ctx;) };

    quote! {
        #function
        #marker

        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code)]
        #[derive(Default)]
        #vis struct #params_ident {
            #(pub #field_names: #field_types,)*
        }

        const _: () = {
            #[allow(dead_code, unused_assignments)]
            fn __crystallize_check_defaults(params: &mut #params_ident) {
                #(#default_checks)*
            }
        };

        impl ::crystallize::__private::Experiment for #ident {
            type Input = #input_type;
            type Params = #params_ident;
            const NAME: &'static str = #name;

            fn produce_input(ctx: &::crystallize::Ctx) -> Self::Input {
                #produce
            }

            fn run(input: Self::Input, ctx: &mut ::crystallize::Ctx) -> ::crystallize::__private::UnitOutcome {
                #unused_input
                #unused_ctx
                ::crystallize::__private::IntoUnitOutcome::into_unit_outcome(#ident(#input_arg #ctx_arg))
            }

            fn describe_input(input: &Self::Input) -> ::crystallize::__private::InputView {
                #[allow(unused_imports)]
                use ::crystallize::__private::describe::{DescribeDebug as _, DescribeJson as _, DescribeOpaque as _};
                (&&&::crystallize::__private::describe::Probe(input)).describe()
            }
        }

        ::crystallize::__private::inventory::submit! {
            ::crystallize::__private::ExperimentEntry {
                name: #name,
                location: #location,
                datasource: #datasource_info,
                replicates: #replicates,
                seed: #seed,
                params: &[#(#param_decls),*],
                hypotheses: &[#(#hypotheses),*],
                fingerprint: #fingerprint,
                vtable: ::crystallize::__private::ExperimentVTable::of::<#ident>(),
            }
        }

        #attached_observers
    }
}

/// The registration of the observers in `observers = [...]`, built afresh for every run; each
/// expression is type-checked as an `Observer` at its own tokens.
fn attached_observers(model: &Model, name: &str) -> TokenStream {
    if model.observers.is_empty() {
        return TokenStream::new();
    }
    let boxed = model.observers.iter().map(
        |expr| quote_spanned!(syn::spanned::Spanned::span(expr)=> ::crystallize::__private::boxed_observer(#expr)),
    );
    quote! {
        const _: () = {
            fn __crystallize_observers() -> ::std::vec::Vec<::std::boxed::Box<dyn ::crystallize::events::Observer>> {
                ::std::vec![#(#boxed),*]
            }
            ::crystallize::__private::inventory::submit! {
                ::crystallize::__private::AttachedObservers { experiment: #name, make: __crystallize_observers }
            }
        };
    }
}
