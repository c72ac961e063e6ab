//! What the macros read from a function's signature, and the pieces of expansion they share.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{FnArg, Ident, ItemFn, PatType, Type, Visibility};

use crate::args::Errors;

/// The type of an argument, and whether it is taken by reference.
pub struct ArgShape<'a> {
    pub ty: &'a Type,
    pub by_ref: bool,
    pub mutable_ref: bool,
}

/// The typed arguments of `item`; `self` receivers are reported as errors.
pub fn typed_args<'a>(item: &'a ItemFn, what: &str, errors: &mut Errors) -> Vec<&'a PatType> {
    item.sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(typed) => Some(typed),
            FnArg::Receiver(receiver) => {
                errors.spanned(receiver, format!("{what} must be a free function, not a method"));
                None
            }
        })
        .collect()
}

/// The shape of an argument's type.
pub fn shape(ty: &Type) -> ArgShape<'_> {
    match ty {
        Type::Reference(reference) => {
            ArgShape { ty: &reference.elem, by_ref: true, mutable_ref: reference.mutability.is_some() }
        }
        Type::Group(group) => shape(&group.elem),
        other => ArgShape { ty: other, by_ref: false, mutable_ref: false },
    }
}

/// Whether `ty` is the context (`Ctx`, `&Ctx`, `&mut Ctx`, or a path ending in `Ctx`).
pub fn is_ctx(ty: &Type) -> bool {
    match shape(ty).ty {
        Type::Path(path) => path.path.segments.last().is_some_and(|segment| segment.ident == "Ctx"),
        _ => false,
    }
}

/// What to do instead of an `async fn` datasource or treatment: they run before the unit's
/// future exists (the runner builds every input synchronously), so there is nothing to await on.
pub const SYNC_ONLY: &str = "it runs synchronously before the unit starts; produce the input synchronously \
                             and do async work in the experiment (`#[experiment] async fn ...`)";

/// Rejects what none of the attributes support: generics, `const`, C-variadics; and `async`
/// unless the part may be async (`async_hint` is `None`; else it says what to do instead).
pub fn reject_unsupported(item: &ItemFn, what: &str, async_hint: Option<&str>, errors: &mut Errors) {
    if let (Some(token), Some(hint)) = (&item.sig.asyncness, async_hint) {
        errors.at(token.span, format!("{what} cannot be `async`: {hint}"));
    }
    if let Some(token) = &item.sig.constness {
        errors.at(token.span, format!("{what} cannot be `const`"));
    }
    if !item.sig.generics.params.is_empty() {
        errors
            .spanned(&item.sig.generics, format!("{what} cannot be generic: the runtime must know its concrete types"));
    }
    if let Some(variadic) = &item.sig.variadic {
        errors.spanned(variadic, format!("{what} cannot be variadic"));
    }
}

/// `Location { module_path, file, line }` of the tokens at `span` (usually the function's name).
pub fn location(span: Span, krate: &syn::Path) -> TokenStream {
    crate::args::krate_spanned! {krate, span=>
        #krate::__private::Location {
            module_path: ::core::module_path!(),
            file: ::core::file!(),
            line: ::core::line!(),
        }
    }
}

/// The marker type that shares the function's name in the type namespace. It lets other
/// attributes name the part (`datasource = llama_table`, `#[treatment(social_deception)]`) and
/// reach its types through a trait, so mismatches are compile errors at the user's tokens.
pub fn marker_struct(vis: &Visibility, ident: &Ident) -> TokenStream {
    quote! {
        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code)]
        #vis struct #ident {}
    }
}

/// The user's item followed by the errors, so that the item still exists for the rest of the crate.
/// Unused-code lints are silenced on it: nothing registers or calls it until the errors are fixed,
/// and warnings about that would only bury the errors.
pub fn with_errors(item: TokenStream, error: syn::Error) -> TokenStream {
    let errors = error.to_compile_error();
    quote! { #[allow(unused)] #item #errors }
}
