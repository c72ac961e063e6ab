//! `#[treatment(EXPERIMENT, datasource = g, set(name = value))]`: a variation of an experiment.
//!
//! Everything a treatment names is checked by rustc at the user's tokens: the experiment must exist
//! (it is a type path), the datasource must produce the experiment's input type, every `set` key
//! must be a declared param and every value must have the param's type, and a mutating function
//! must take `&mut` of the experiment's input.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned, ToTokens};
use syn::{ItemFn, Path};

use crate::args::{self, Arg, Errors, ParamEntry};
use crate::experiment::param_value;
use crate::fingerprint;
use crate::signature::{self, is_ctx, location, with_errors};

const KEYS: &[&str] = &["datasource", "set"];

/// What a `#[treatment]` says, after parsing and validation.
pub struct Model {
    pub function: ItemFn,
    pub experiment: Path,
    pub datasource: Option<Path>,
    pub sets: Vec<ParamEntry>,
    /// Whether the function mutates the input (`fn f(input: &mut Input [, ctx: &Ctx])`).
    pub mutates: bool,
    pub takes_ctx: bool,
}

/// Expands `#[treatment(...)]` on `item`.
pub fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(error) => return with_errors(item, syn::Error::new(error.span(), "#[treatment] goes on a function")),
    };
    match parse(attr, function) {
        Ok(model) => render(&model),
        Err(error) => with_errors(item, error),
    }
}

/// Parses and validates the attribute and the function together, reporting every error at once.
pub fn parse(attr: TokenStream, function: ItemFn) -> syn::Result<Model> {
    let mut errors = Errors::default();
    let mut experiment = None;
    let mut datasource = None;
    let mut sets = Vec::new();
    let mut seen = Vec::new();
    for (index, arg) in args::parse_args(attr.clone())?.into_iter().enumerate() {
        match &arg {
            Arg::Positional(path) if index == 0 => experiment = Some(path.clone()),
            Arg::Positional(path) => errors.at(
                syn::spanned::Spanned::span(path),
                "only the experiment is named without a key, and it comes first",
            ),
            Arg::KeyValue { key, value } => {
                if args::check_key(key, KEYS, &mut seen, &mut errors) {
                    if key == "datasource" {
                        datasource = args::parse_path(value, "datasource", &mut errors);
                    } else {
                        args::wrong_shape(&arg, "`set(name = value, ...)`", &mut errors);
                    }
                }
            }
            Arg::List { key, content } => {
                if args::check_key(key, KEYS, &mut seen, &mut errors) {
                    if key == "set" {
                        sets = args::parse_params(content.clone(), false, &mut errors);
                    } else {
                        args::wrong_shape(&arg, &format!("`{key} = ...`"), &mut errors);
                    }
                }
            }
        }
    }
    let Some(experiment) = experiment else {
        let span = if attr.is_empty() { function.sig.ident.span() } else { syn::spanned::Spanned::span(&attr) };
        errors.at(span, "name the experiment this treatment varies first: `#[treatment(my_experiment, ...)]`");
        return errors.finish(unreachable_model());
    };

    signature::reject_unsupported(&function, "a treatment", &mut errors);
    let typed = signature::typed_args(&function, "a treatment", &mut errors);
    let (mutates, takes_ctx) = match typed.as_slice() {
        [] => (false, false),
        [input] if signature::shape(&input.ty).mutable_ref && !is_ctx(&input.ty) => (true, false),
        [input, ctx]
            if signature::shape(&input.ty).mutable_ref && is_ctx(&ctx.ty) && !signature::shape(&ctx.ty).mutable_ref =>
        {
            (true, true)
        }
        _ => {
            errors.at(
                syn::spanned::Spanned::span(&function.sig.inputs),
                "a treatment takes nothing, or mutates the input in place: `fn name(input: &mut Input)` or `fn name(input: &mut Input, ctx: &Ctx)`",
            );
            (false, false)
        }
    };
    if !mutates && !function.block.stmts.is_empty() {
        errors.at(
            syn::spanned::Spanned::span(&function.block),
            "this body would never run: a treatment without an input parameter has nothing to mutate; take `input: &mut Input` or leave the body empty",
        );
    }
    if !function.sig.output.to_token_stream().is_empty() {
        errors.at(
            syn::spanned::Spanned::span(&function.sig.output),
            "a treatment mutates its input in place and returns nothing",
        );
    }
    if datasource.is_none() && sets.is_empty() && !mutates {
        errors.at(
            function.sig.ident.span(),
            "this treatment changes nothing: give it `datasource = ...`, `set(...)`, or an `input: &mut Input` parameter",
        );
    }
    errors.finish(Model { function, experiment, datasource, sets, mutates, takes_ctx })
}

// `Errors::finish` never returns the value when an error was recorded; this only satisfies the type.
fn unreachable_model() -> Model {
    Model {
        function: syn::parse_quote!(
            fn unreachable() {}
        ),
        experiment: syn::parse_quote!(unreachable),
        datasource: None,
        sets: Vec::new(),
        mutates: false,
        takes_ctx: false,
    }
}

fn render(model: &Model) -> TokenStream {
    let function = &model.function;
    let ident = &function.sig.ident;
    let name = ident.to_string();
    let experiment = &model.experiment;
    let experiment_span = syn::spanned::Spanned::span(experiment);
    let experiment_type = quote_spanned!(experiment_span=> <#experiment as ::crystallize::__private::Experiment>);
    let location = location(ident.span());
    let fingerprint = fingerprint::of_tokens(&function.to_token_stream());

    let (produce_fn, datasource_slot) = match &model.datasource {
        Some(path) => {
            let span = syn::spanned::Spanned::span(path);
            let produced = quote_spanned! {span=>
                let input: #experiment_type::Input = <#path as ::crystallize::__private::Datasource>::produce(ctx);
            };
            (
                quote! {
                    fn __crystallize_produce(ctx: &::crystallize::Ctx) -> ::std::boxed::Box<dyn ::core::any::Any> {
                        #produced
                        ::std::boxed::Box::new(input)
                    }
                },
                quote_spanned! {span=>
                    ::core::option::Option::Some(::crystallize::__private::TreatmentDatasource {
                        info: &<#path as ::crystallize::__private::Datasource>::INFO,
                        produce: __crystallize_produce,
                    })
                },
            )
        }
        None => (quote!(), quote!(::core::option::Option::None)),
    };

    let (mutate_fn, mutate_slot) = if model.mutates {
        let ctx_arg = if model.takes_ctx { quote!(, ctx) } else { quote!() };
        let input_span = function.sig.inputs.first().map(syn::spanned::Spanned::span).unwrap_or_else(|| ident.span());
        let call = quote_spanned!(input_span=> #ident(typed #ctx_arg));
        (
            quote! {
                fn __crystallize_mutate(input: &mut dyn ::core::any::Any, ctx: &::crystallize::Ctx) -> bool {
                    let _ = ctx;
                    match input.downcast_mut::<#experiment_type::Input>() {
                        ::core::option::Option::Some(typed) => { #call; true }
                        ::core::option::Option::None => false,
                    }
                }
            },
            quote!(::core::option::Option::Some(
                __crystallize_mutate as fn(&mut dyn ::core::any::Any, &::crystallize::Ctx) -> bool
            )),
        )
    } else {
        (quote!(), quote!(::core::option::Option::None))
    };

    let set_checks = model.sets.iter().map(|p| {
        let field = &p.name;
        let value = &p.value_expr;
        let span = syn::spanned::Spanned::span(value);
        let field_span = field.span();
        let target = quote_spanned!(field_span=> params.#field);
        quote_spanned!(span=> #target = #value;)
    });
    let set_entries = model.sets.iter().map(|p| {
        let key = p.name.to_string();
        let value = param_value(&p.value, syn::spanned::Spanned::span(&p.value_expr));
        quote!((#key, #value))
    });

    // A treatment without an input parameter is a declaration: nothing calls its (empty) body.
    let allow_unused = if model.mutates { quote!() } else { quote!(#[allow(dead_code)]) };
    quote! {
        #allow_unused
        #function

        const _: () = {
            #[allow(dead_code, unused_assignments)]
            fn __crystallize_check_set(params: &mut #experiment_type::Params) {
                #(#set_checks)*
            }
            #produce_fn
            #mutate_fn
            ::crystallize::__private::inventory::submit! {
                ::crystallize::__private::TreatmentEntry {
                    experiment: #experiment_type::NAME,
                    name: #name,
                    location: #location,
                    datasource: #datasource_slot,
                    mutate: #mutate_slot,
                    sets: &[#(#set_entries),*],
                    fingerprint: #fingerprint,
                }
            }
        };
    }
}
