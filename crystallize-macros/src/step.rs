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
use quote::{quote, quote_spanned, ToTokens};
use syn::ItemFn;

use crate::args::{self, Arg, Errors};
use crate::fingerprint;
use crate::signature::{location, with_errors};

const KEYS: &[&str] = &["limit"];

/// What `#[step(...)]` says.
struct Model {
    function: ItemFn,
    /// `limit = "ollama"`: the limit the step holds while it runs.
    limit: Option<String>,
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
    let mut seen = Vec::new();
    for arg in args::parse_args(attr)? {
        match &arg {
            // The one name a user is likely to try, answered with where a step's name comes from.
            Arg::KeyValue { key, .. } if key == "name" => errors
                .at(key.span(), "#[step] takes no `name`: the step is named after its function; valid keys: limit"),
            Arg::KeyValue { key, value } => {
                if args::check_key(key, KEYS, &mut seen, &mut errors) {
                    limit = args::parse_limit_name(value, "limit", &mut errors);
                }
            }
            Arg::List { key, .. } => {
                if args::check_key(key, KEYS, &mut seen, &mut errors) {
                    args::wrong_shape(&arg, "with a value: `limit = \"ollama\"`", &mut errors);
                }
            }
            Arg::Positional(path) => errors.spanned(
                path,
                "#[step] takes no name (the step is named after its function); its one key is \
                 `limit = \"name\"`, the run's limit it holds while it runs",
            ),
        }
    }
    if let Some(token) = &function.sig.constness {
        errors.at(token.span, "#[step] cannot wrap a `const fn`: a step reports to the running unit");
    }
    errors.finish(Model { function, limit })
}

fn render(model: &Model) -> TokenStream {
    let function = &model.function;
    let ItemFn { attrs, vis, sig, block } = function;
    let ident = &sig.ident;
    let name = ident.to_string();
    let location = location(ident.span());
    let fingerprint = fingerprint::of_tokens(&function.to_token_stream());
    let is_async = sig.asyncness.is_some();
    let limit_info = match &model.limit {
        Some(limit) => quote!(::core::option::Option::Some(#limit)),
        None => quote!(::core::option::Option::None),
    };
    let info = quote_spanned! {ident.span()=>
        static __CRYSTALLIZE_STEP: ::crystallize::__private::StepInfo = ::crystallize::__private::StepInfo {
            name: #name,
            location: #location,
            fingerprint: #fingerprint,
            limit: #limit_info,
        };
        ::crystallize::__private::inventory::submit! {
            ::crystallize::__private::StepEntry(&__CRYSTALLIZE_STEP)
        }
    };
    // Held until the end of the step's body (the binding lives to the end of its block).
    let take_limit = match (&model.limit, is_async) {
        (Some(limit), true) => quote!(let __crystallize_limit = ::crystallize::__private::limit(#limit).await;),
        (Some(limit), false) => quote!(let __crystallize_limit = ::crystallize::__private::limit_blocking(#limit);),
        (None, _) => quote!(),
    };
    let body = if is_async {
        quote_spanned! {ident.span()=>
            ::crystallize::__private::step_async(&__CRYSTALLIZE_STEP, async move {
                #take_limit
                #block
            })
            .await
        }
    } else {
        quote_spanned! {ident.span()=>
            let __crystallize_step_guard = ::crystallize::__private::StepGuard::enter(&__CRYSTALLIZE_STEP);
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
