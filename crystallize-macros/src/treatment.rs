//! `#[treatment(EXPERIMENT, datasource = g, set(name = value))]`: a variation of an experiment.
//!
//! Everything a treatment names is checked by rustc at the user's tokens: the experiment must exist
//! (it is a type path), the datasource must produce the experiment's input type, every `set` key
//! must be a declared param and every value must have the param's type, a mutating function
//! must take `&mut` of the experiment's input, and every metric `expect(...)` names must be a
//! field of the experiment's `#[derive(Metrics)]` struct.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::{ItemFn, Path};

use crate::args::{self, Arg, Errors, ParamEntry};
use crate::expect::{self, Expectation};
use crate::fingerprint;
use crate::params::param_value;
use crate::signature::{self, is_ctx, location, with_errors};

const KEYS: &[&str] = &["datasource", "set", "expect", "crate"];

/// What a `#[treatment]` says, after parsing and validation.
pub struct Model {
    pub function: ItemFn,
    pub experiment: Path,
    pub datasource: Option<Path>,
    pub sets: Vec<ParamEntry>,
    /// `expect(...)`: hypotheses about this treatment, and the key's token.
    pub expects: Vec<Expectation>,
    pub expect_key: Option<syn::Ident>,
    /// Whether the function mutates the input (`fn f(input: &mut Input [, ctx: &Ctx])`).
    pub mutates: bool,
    pub takes_ctx: bool,
    /// `crate = path`: the crystallize crate as the user's crate names it.
    pub krate: Path,
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
    let mut expects = Vec::new();
    let mut expect_key = None;
    let mut krate = None;
    let mut seen = Vec::new();
    for (index, arg) in args::parse_args(attr.clone())?.into_iter().enumerate() {
        match &arg {
            Arg::Positional(path) if index == 0 => experiment = Some(path.clone()),
            Arg::Positional(path) if experiment.is_none() => {
                let name = path.to_token_stream().to_string().replace(' ', "");
                errors.spanned(path, format!("name the experiment first: `#[treatment({name}, ...)]`"));
                experiment = Some(path.clone());
            }
            Arg::Positional(path) => errors.spanned(
                path,
                "a treatment varies one experiment, named first; every other argument is `key = value` or `set(...)`",
            ),
            Arg::KeyValue { key, value } => {
                if args::check_key(key, KEYS, &mut seen, &mut errors) {
                    if key == "datasource" {
                        datasource = args::parse_path(value, "datasource", &mut errors);
                    } else if key == "crate" {
                        krate = args::parse_crate(value, &mut errors);
                    } else if key == "expect" {
                        args::wrong_shape(&arg, "as a list: `expect(win > baseline.win)`", &mut errors);
                    } else {
                        args::wrong_shape(&arg, "as a list: `set(name = value, ...)`", &mut errors);
                    }
                }
            }
            Arg::List { key, content } => {
                if args::check_key(key, KEYS, &mut seen, &mut errors) {
                    if key == "set" {
                        sets = args::parse_params(content.clone(), false, &mut errors);
                    } else if key == "expect" {
                        expects = expect::parse(content.clone(), true, &mut errors);
                        expect_key = Some(key.clone());
                    } else {
                        args::wrong_shape(&arg, &format!("with a value: `{key} = ...`"), &mut errors);
                    }
                }
            }
        }
    }
    // Whether the attribute itself is fine; if not, "this treatment changes nothing" would only
    // repeat the real error (a misspelt `datasource`, a `set` that did not parse).
    let attribute_ok = errors.is_empty();
    let Some(experiment) = experiment else {
        let span = if attr.is_empty() { function.sig.ident.span() } else { syn::spanned::Spanned::span(&attr) };
        errors.at(span, "name the experiment this treatment varies first: `#[treatment(my_experiment, ...)]`");
        return errors.finish(unreachable_model());
    };

    signature::reject_unsupported(&function, "a treatment", Some(signature::SYNC_ONLY), &mut errors);
    let typed = signature::typed_args(&function, "a treatment", &mut errors);
    let (mutates, takes_ctx, signature_ok) = validate_inputs(&typed, &mut errors);
    if signature_ok && !mutates && !function.block.stmts.is_empty() {
        errors.spanned(
            &function.block,
            "this body would never run: a treatment without an input parameter has nothing to mutate; \
             take `input: &mut Input` or leave the body empty",
        );
    }
    if let syn::ReturnType::Type(..) = &function.sig.output {
        errors.spanned(&function.sig.output, "a treatment mutates its input in place and returns nothing");
    }
    if attribute_ok && signature_ok && datasource.is_none() && sets.is_empty() && !mutates {
        errors.at(
            function.sig.ident.span(),
            "this treatment changes nothing: give it `datasource = ...`, `set(...)`, or an `input: &mut Input` parameter",
        );
    }
    let krate = krate.unwrap_or_else(args::default_crate);
    errors.finish(Model { function, experiment, datasource, sets, expects, expect_key, mutates, takes_ctx, krate })
}

/// A treatment takes nothing, `input: &mut Input`, or `input: &mut Input, ctx: &Ctx`. Returns
/// whether it mutates, whether it takes the context, and whether the inputs were valid.
fn validate_inputs(typed: &[&syn::PatType], errors: &mut Errors) -> (bool, bool, bool) {
    let is_input = |arg: &syn::PatType| !is_ctx(&arg.ty);
    let is_shared_ctx = |arg: &syn::PatType| {
        let shape = signature::shape(&arg.ty);
        is_ctx(&arg.ty) && shape.by_ref && !shape.mutable_ref
    };
    let (input, rest) = match typed {
        [] => return (false, false, true),
        [input, rest @ ..] if is_input(input) => (input, rest),
        [first, ..] => {
            errors.spanned(
                first,
                "a treatment takes the input to mutate first: `fn name(input: &mut Input)` or \
                 `fn name(input: &mut Input, ctx: &Ctx)`",
            );
            return (false, false, false);
        }
    };
    let mut ok = true;
    let shape = signature::shape(&input.ty);
    if !shape.mutable_ref {
        let ty = shape.ty.to_token_stream().to_string();
        errors
            .spanned(&input.ty, format!("a treatment mutates the experiment's input in place: take it as `&mut {ty}`"));
        ok = false;
    }
    let takes_ctx = match rest {
        [] => false,
        [ctx] if is_shared_ctx(ctx) => true,
        [ctx] if is_ctx(&ctx.ty) => {
            errors.spanned(&ctx.ty, "a treatment reads the context by shared reference: `ctx: &Ctx`");
            ok = false;
            false
        }
        [other, ..] => {
            errors.spanned(
                other,
                "a treatment takes the input to mutate and, optionally, the context: \
                 `fn name(input: &mut Input, ctx: &Ctx)`",
            );
            ok = false;
            false
        }
    };
    (ok, takes_ctx, ok)
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
        expects: Vec::new(),
        expect_key: None,
        mutates: false,
        takes_ctx: false,
        krate: args::default_crate(),
    }
}

fn render(model: &Model) -> TokenStream {
    let function = &model.function;
    let krate = &model.krate;
    let ident = &function.sig.ident;
    let name = ident.to_string();
    let experiment = &model.experiment;
    let experiment_span = syn::spanned::Spanned::span(experiment);
    // Every use of the experiment's types is spanned entirely at the user's path, so that naming
    // something that is not an experiment is one error there (rustc merges identical errors).
    let experiment_type =
        crate::args::krate_spanned!(krate, experiment_span=> <#experiment as #krate::__private::Experiment>);
    let experiment_input = quote_spanned!(experiment_span=> #experiment_type::Input);
    let experiment_params = quote_spanned!(experiment_span=> &mut #experiment_type::Params);
    let experiment_name = quote_spanned!(experiment_span=> #experiment_type::NAME);
    let location = location(ident.span(), krate);
    let fingerprint = fingerprint::of_tokens(&function.to_token_stream());

    let (produce_fn, datasource_slot) = match &model.datasource {
        Some(path) => {
            let span = syn::spanned::Spanned::span(path);
            // The binding's type is spanned at the experiment and the call at the datasource, so a
            // datasource of the wrong type is reported at `datasource = ...`, "expected due to" the
            // experiment.
            let call =
                crate::args::krate_spanned!(krate, span=> <#path as #krate::__private::Datasource>::produce(ctx));
            let produced = quote! {
                let input: #experiment_input = #call;
            };
            (
                quote! {
                    fn __crystallize_produce(ctx: &#krate::__private::Ctx) -> ::std::boxed::Box<dyn ::core::any::Any> {
                        #produced
                        ::std::boxed::Box::new(input)
                    }
                },
                crate::args::krate_spanned! {krate, span=>
                    ::core::option::Option::Some(#krate::__private::TreatmentDatasource {
                        info: &<#path as #krate::__private::Datasource>::INFO,
                        produce: __crystallize_produce,
                    })
                },
            )
        }
        None => (quote!(), quote!(::core::option::Option::None)),
    };

    let (mutate_fn, mutate_slot) = if let (true, Some(mutated)) = (model.mutates, mutated_type(function)) {
        let ctx_arg = if model.takes_ctx { quote!(, ctx) } else { quote!() };
        let input_span = function.sig.inputs.first().map(syn::spanned::Spanned::span).unwrap_or_else(|| ident.span());
        let call = quote_spanned!(input_span=> #ident(typed #ctx_arg));
        // The type the function mutates is checked against the experiment's input by a trait
        // whose message names both, the experiment's input as the expected one; the unit
        // downcasts to the function's own type, so a mismatch is that one error, at the type.
        let mutated_span = syn::spanned::Spanned::span(mutated);
        let check = crate::args::krate_spanned! {krate, mutated_span=>
            #krate::__private::mutates_input_of::<#experiment, #experiment_input, #mutated>()
        };
        (
            quote! {
                #[allow(dead_code)]
                fn __crystallize_check_mutated() {
                    #check;
                }
                fn __crystallize_mutate(input: &mut dyn ::core::any::Any, ctx: &#krate::__private::Ctx) -> bool {
                    let _ = ctx;
                    match input.downcast_mut::<#mutated>() {
                        ::core::option::Option::Some(typed) => { #call; true }
                        ::core::option::Option::None => false,
                    }
                }
            },
            quote!(::core::option::Option::Some(
                __crystallize_mutate as fn(&mut dyn ::core::any::Any, &#krate::__private::Ctx) -> bool
            )),
        )
    } else {
        (quote!(), quote!(::core::option::Option::None))
    };

    // Each `set(name = literal)` names the field at the user's name (an unknown one is "no field"
    // there, with rustc's suggestion) and assigns the literal to a place of the field's literal
    // type (a wrong one is "mismatched types" at the literal).
    let set_checks = model.sets.iter().map(|p| {
        let field = &p.name;
        let value = &p.value_expr;
        let span = syn::spanned::Spanned::span(value);
        let target =
            crate::args::krate_spanned!(krate, field.span()=> *#krate::__private::literal_slot(&mut params.#field));
        quote_spanned!(span=> #target = #value;)
    });
    let expect_texts: Vec<String> = model.expects.iter().map(|e| e.text(&name)).collect();
    let expect_check = match &model.expect_key {
        Some(key) => {
            let metrics = quote_spanned!(experiment_span=> #experiment_type::Metrics);
            expect::render_check(krate, &metrics, key, &model.expects)
        }
        None => quote!(),
    };
    let set_entries = model.sets.iter().map(|p| {
        let key = p.name.to_string();
        let value = param_value(&p.value, syn::spanned::Spanned::span(&p.value_expr), krate);
        quote!((#key, #value))
    });

    // The smoke test of this treatment's condition; the experiment's `smoke_test = false` turns it
    // into a no-op (a treatment cannot see the experiment's attribute, only its trait).
    let experiment_ident = experiment.segments.last().map(|s| s.ident.to_string()).unwrap_or_default();
    let test = format_ident!("crystallize_smoke__{}__{}", experiment_ident, ident);
    let smoke = quote! {
        #[cfg(test)]
        #[test]
        #[allow(non_snake_case)]
        fn #test() {
            if #experiment_type::SMOKE_TEST {
                #krate::__private::smoke(#experiment_name, #name);
            }
        }
    };

    // A treatment without an input parameter is a declaration: nothing calls its (empty) body.
    let allow_unused = if model.mutates { quote!() } else { quote!(#[allow(dead_code)]) };
    quote! {
        #allow_unused
        #function

        const _: () = {
            #[allow(dead_code)]
            fn __crystallize_check_set(params: #experiment_params) {
                let _ = &params;
                #(#set_checks)*
            }
            #produce_fn
            #mutate_fn
            #krate::__private::inventory::submit! {
                #krate::__private::TreatmentEntry {
                    experiment: #experiment_name,
                    name: #name,
                    location: #location,
                    datasource: #datasource_slot,
                    mutate: #mutate_slot,
                    sets: &[#(#set_entries),*],
                    hypotheses: &[#(#expect_texts),*],
                    fingerprint: #fingerprint,
                }
            }
        };
        #expect_check
        #smoke
    }
}

/// The type behind the `&mut` of a mutating treatment's first argument.
fn mutated_type(function: &ItemFn) -> Option<&syn::Type> {
    match function.sig.inputs.first()? {
        syn::FnArg::Typed(typed) => Some(signature::shape(&typed.ty).ty),
        syn::FnArg::Receiver(_) => None,
    }
}
