//! `#[datasource]`: a function of the context (or of nothing) that produces a condition's input.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned, ToTokens};
use syn::{ItemFn, ReturnType};

use crate::args::Errors;
use crate::fingerprint;
use crate::signature::{self, is_ctx, location, marker_struct, with_errors};

/// Expands `#[datasource]` on `item`.
pub fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(error) => return with_errors(item, syn::Error::new(error.span(), "#[datasource] goes on a function")),
    };
    match validate(attr, &function) {
        Ok(takes_ctx) => render(&function, takes_ctx),
        Err(error) => with_errors(item, error),
    }
}

/// Checks the signature; returns whether the function takes the context.
fn validate(attr: TokenStream, function: &ItemFn) -> syn::Result<bool> {
    let mut errors = Errors::default();
    if !attr.is_empty() {
        errors.spanned(&attr, "#[datasource] takes no arguments: write `#[datasource]`");
    }
    signature::reject_unsupported(function, "a datasource", Some(signature::SYNC_ONLY), &mut errors);
    let args = signature::typed_args(function, "a datasource", &mut errors);
    let takes_ctx = match args.as_slice() {
        [] => false,
        [only] if is_ctx(&only.ty) && signature::shape(&only.ty).by_ref && !signature::shape(&only.ty).mutable_ref => {
            true
        }
        [only] if is_ctx(&only.ty) => {
            errors.spanned(&only.ty, "a datasource takes the context by shared reference: `ctx: &Ctx`");
            false
        }
        _ => {
            errors.spanned(
                &function.sig.inputs,
                "a datasource takes the context or nothing: `fn name(ctx: &Ctx) -> Input` or `fn name() -> Input`; \
                 read params with `ctx.typed_params::<MyParams>()`",
            );
            false
        }
    };
    if let ReturnType::Default = function.sig.output {
        errors.at(
            function.sig.ident.span(),
            "a datasource must return the input it produces: `fn name(ctx: &Ctx) -> Input`",
        );
    }
    errors.finish(takes_ctx)
}

fn render(function: &ItemFn, takes_ctx: bool) -> TokenStream {
    let ident = &function.sig.ident;
    let name = ident.to_string();
    let ReturnType::Type(_, output) = &function.sig.output else {
        unreachable!("validate rejects a datasource without a return type")
    };
    let marker = marker_struct(&function.vis, ident);
    let location = location(ident.span());
    let fingerprint = fingerprint::of_tokens(&function.to_token_stream());
    let call = if takes_ctx { quote!(#ident(ctx)) } else { quote!({ let _ = ctx; #ident() }) };
    let output_spanned = quote_spanned!(syn::spanned::Spanned::span(output)=> #output);
    quote! {
        #function
        #marker
        impl ::crystallize::__private::Datasource for #ident {
            type Output = #output_spanned;
            const INFO: ::crystallize::__private::DatasourceInfo = ::crystallize::__private::DatasourceInfo {
                name: #name,
                location: #location,
                fingerprint: #fingerprint,
            };
            fn produce(ctx: &::crystallize::__private::Ctx) -> Self::Output {
                #call
            }
        }
        ::crystallize::__private::inventory::submit! {
            ::crystallize::__private::DatasourceEntry(&<#ident as ::crystallize::__private::Datasource>::INFO)
        }
    }
}
