//! `#[step]` and `#[step(limit = "ollama")]`: wraps an existing function's body, signature
//! untouched, so that inside a unit the step's start, end and duration reach the unit's
//! observers. Outside a unit the guard finds no current unit and the call is a plain call.
//!
//! On an `async fn` the original body becomes an inner `async move` block awaited through
//! `__private::step_async`, so the timing spans the future's polls, not the call that creates it.
//! The arguments are already owned by the outer future, so moving them into the inner block
//! changes nothing the caller sees, references included. With `limit = "NAME"` the body first
//! takes a permit of the run's limit `NAME` and holds it until the step ends: the step's duration
//! includes the wait for it.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::{ItemFn, Path};

use crate::args::{self, Arg, Errors};
use crate::fingerprint;
use crate::signature::{location, with_errors};

const KEYS: &[&str] = &["limit", "crate"];

/// What `#[step(...)]` says.
struct Model {
    function: ItemFn,
    /// `limit = "ollama"`: the limit the step holds while it runs.
    limit: Option<String>,
    /// `crate = path`: the crystallize crate as the user's crate names it.
    krate: Path,
}

/// Expands `#[step]` on `item`. Works on free functions and on methods, sync and async.
pub fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    // `ItemFn` also parses methods (`fn f(&self)`), which is what a step inside `impl` looks like.
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(error) => return with_errors(item, syn::Error::new(error.span(), "#[step] goes on a function")),
    };
    match parse(attr, function) {
        Ok(model) => render(&model),
        Err(error) => with_errors(item, error),
    }
}

fn parse(attr: TokenStream, function: ItemFn) -> syn::Result<Model> {
    let mut errors = Errors::default();
    let mut limit = None;
    let mut krate = None;
    let mut seen = Vec::new();
    for arg in args::parse_args(attr)? {
        match &arg {
            // The one name a user is likely to try, answered with where a step's name comes from.
            Arg::KeyValue { key, .. } if key == "name" => errors.at(
                key.span(),
                "#[step] takes no `name`: the step is named after its function; valid keys: limit, crate",
            ),
            Arg::KeyValue { key, value } => {
                if args::check_key(key, KEYS, &mut seen, &mut errors) {
                    if key == "crate" {
                        krate = args::parse_crate(value, &mut errors);
                    } else {
                        limit = args::parse_limit_name(value, "limit", &mut errors);
                    }
                }
            }
            Arg::List { key, .. } => {
                if args::check_key(key, KEYS, &mut seen, &mut errors) {
                    args::wrong_shape(&arg, &format!("with a value: `{key} = ...`"), &mut errors);
                }
            }
            Arg::Positional(path) => errors.spanned(
                path,
                "#[step] takes no name (the step is named after its function); its keys are \
                 `limit = \"name\"`, the run's limit it holds while it runs, and `crate = path`",
            ),
        }
    }
    if let Some(token) = &function.sig.constness {
        errors.at(token.span, "#[step] cannot wrap a `const fn`: a step reports to the running unit");
    }
    errors.finish(Model { function, limit, krate: krate.unwrap_or_else(args::default_crate) })
}

fn render(model: &Model) -> TokenStream {
    let function = &model.function;
    let krate = &model.krate;
    let ItemFn { attrs, vis, sig, block } = function;
    let ident = &sig.ident;
    let name = ident.to_string();
    let location = location(ident.span(), krate);
    let fingerprint = fingerprint::of_tokens(&function.to_token_stream());
    let is_async = sig.asyncness.is_some();
    let limit_info = match &model.limit {
        Some(limit) => quote!(::core::option::Option::Some(#limit)),
        None => quote!(::core::option::Option::None),
    };
    let info = crate::args::krate_spanned! {krate, ident.span()=>
        static __CRYSTALLIZE_STEP: #krate::__private::StepInfo = #krate::__private::StepInfo {
            name: #name,
            location: #location,
            fingerprint: #fingerprint,
            limit: #limit_info,
        };
        #krate::__private::inventory::submit! {
            #krate::__private::StepEntry(&__CRYSTALLIZE_STEP)
        }
    };
    // Held until the end of the step's body (the binding lives to the end of its block).
    let take_limit = match (&model.limit, is_async) {
        (Some(limit), true) => quote!(let __crystallize_limit = #krate::__private::limit(#limit).await;),
        (Some(limit), false) => quote!(let __crystallize_limit = #krate::__private::limit_blocking(#limit);),
        (None, _) => quote!(),
    };
    let body = if is_async {
        crate::args::krate_spanned! {krate, ident.span()=>
            #krate::__private::step_async(&__CRYSTALLIZE_STEP, async move {
                #take_limit
                #block
            })
            .await
        }
    } else {
        crate::args::krate_spanned! {krate, ident.span()=>
            let __crystallize_step_guard = #krate::__private::StepGuard::enter(&__CRYSTALLIZE_STEP);
            #take_limit
            #block
        }
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            #info
            #body
        }
    }
}
