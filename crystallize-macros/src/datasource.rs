//! `#[datasource]`: a function of the context (or of nothing) that produces a condition's input.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned, ToTokens};
use syn::{ItemFn, Path, ReturnType};

use crate::args::{self, Arg, Errors};

const KEYS: &[&str] = &["crate"];
use crate::fingerprint;
use crate::signature::{self, is_ctx, location, marker_struct, with_errors};

/// Expands `#[datasource]` on `item`.
pub fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(error) => return with_errors(item, syn::Error::new(error.span(), "#[datasource] goes on a function")),
    };
    match validate(attr, &function) {
        Ok((takes_ctx, krate)) => render(&function, takes_ctx, &krate),
        Err(error) => with_errors(item, error),
    }
}

/// Checks the attribute and the signature; returns whether the function takes the context, and
/// the path of the crystallize crate.
fn validate(attr: TokenStream, function: &ItemFn) -> syn::Result<(bool, Path)> {
    let mut errors = Errors::default();
    let mut krate = None;
    let mut seen = Vec::new();
    for arg in args::parse_args(attr)? {
        match &arg {
            Arg::KeyValue { key, value } => {
                if args::check_key(key, KEYS, &mut seen, &mut errors) {
                    krate = args::parse_crate(value, &mut errors);
                }
            }
            Arg::List { key, .. } => {
                if args::check_key(key, KEYS, &mut seen, &mut errors) {
                    args::wrong_shape(&arg, "with a value: `crate = path`", &mut errors);
                }
            }
            Arg::Positional(path) => errors.spanned(
                path,
                "#[datasource] takes no name (it is named after its function); its one key is `crate = path`",
            ),
        }
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
    errors.finish((takes_ctx, krate.unwrap_or_else(args::default_crate)))
}

fn render(function: &ItemFn, takes_ctx: bool, krate: &Path) -> TokenStream {
    let ident = &function.sig.ident;
    let name = ident.to_string();
    let ReturnType::Type(_, output) = &function.sig.output else {
        unreachable!("validate rejects a datasource without a return type")
    };
    let marker = marker_struct(&function.vis, ident);
    let location = location(ident.span(), krate);
    let fingerprint = fingerprint::of_tokens(&function.to_token_stream());
    let call = if takes_ctx { quote!(#ident(ctx)) } else { quote!({ let _ = ctx; #ident() }) };
    let output_spanned = quote_spanned!(syn::spanned::Spanned::span(output)=> #output);
    quote! {
        #function
        #marker
        impl #krate::__private::Datasource for #ident {
            type Output = #output_spanned;
            const INFO: #krate::__private::DatasourceInfo = #krate::__private::DatasourceInfo {
                name: #name,
                location: #location,
                fingerprint: #fingerprint,
            };
            fn produce(ctx: &#krate::__private::Ctx) -> Self::Output {
                #call
            }
        }
        #krate::__private::inventory::submit! {
            #krate::__private::DatasourceEntry(&<#ident as #krate::__private::Datasource>::INFO)
        }
    }
}
