//! `#[step]`: wraps an existing function's body, signature untouched, so that inside a unit the
//! step's start, end and duration reach the unit's observers. Outside a unit the guard finds no
//! current unit and the call is a plain call.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned, ToTokens};
use syn::ItemFn;

use crate::args::Errors;
use crate::fingerprint;
use crate::signature::{location, with_errors};

/// Expands `#[step]` on `item`. Works on free functions and on methods.
pub fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    // `ItemFn` also parses methods (`fn f(&self)`), which is what a step inside `impl` looks like.
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(error) => return with_errors(item, syn::Error::new(error.span(), "#[step] goes on a function")),
    };
    let mut errors = Errors::default();
    if !attr.is_empty() {
        errors.spanned(&attr, "#[step] takes no arguments: write `#[step]`; the step is named after its function");
    }
    if let Some(token) = &function.sig.asyncness {
        errors.at(token.span, "#[step] cannot wrap an `async fn` yet: its timing would end before the future runs");
    }
    if let Some(token) = &function.sig.constness {
        errors.at(token.span, "#[step] cannot wrap a `const fn`: a step reports to the running unit");
    }
    match errors.finish(()) {
        Ok(()) => render(function),
        Err(error) => with_errors(item, error),
    }
}

fn render(function: ItemFn) -> TokenStream {
    let ItemFn { attrs, vis, sig, block } = &function;
    let ident = &sig.ident;
    let name = ident.to_string();
    let location = location(ident.span());
    let fingerprint = fingerprint::of_tokens(&function.to_token_stream());
    let guard = quote_spanned! {ident.span()=>
        static __CRYSTALLIZE_STEP: ::crystallize::__private::StepInfo = ::crystallize::__private::StepInfo {
            name: #name,
            location: #location,
            fingerprint: #fingerprint,
            limit: ::core::option::Option::None,
        };
        ::crystallize::__private::inventory::submit! {
            ::crystallize::__private::StepEntry(&__CRYSTALLIZE_STEP)
        }
        let __crystallize_step_guard = ::crystallize::__private::StepGuard::enter(&__CRYSTALLIZE_STEP);
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            #guard
            #block
        }
    }
}
