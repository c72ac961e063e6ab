//! `#[experiment(...)]`: a function that runs one replicate on the input its datasource produces.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::{Ident, ItemFn, LitStr, Path, Type};

use crate::args::{self, Arg, Errors, ParamEntry, ParamKind, MAX_RETRIES};
use crate::expect::{self, Expectation};
use crate::fingerprint;
use crate::params;
use crate::signature::{self, is_ctx, location, with_errors};

const KEYS: &[&str] = &[
    "datasource",
    "replicates",
    "seed",
    "params",
    "hypotheses",
    "expect",
    "observers",
    "smoke_test",
    "jobs",
    "timeout",
    "retries",
    "limits",
    "crate",
];

/// The most units in flight `jobs = N` may ask for.
const MAX_JOBS: u64 = 1024;

/// What an `#[experiment]` says, after parsing and validation.
pub struct Model {
    pub function: ItemFn,
    pub datasource: Option<Path>,
    pub replicates: u64,
    pub seed: u64,
    /// The `params(...)` sugar's entries (empty without it).
    pub params: Vec<ParamEntry>,
    /// The params struct the function takes (`params: &MyParams`), if it takes one.
    pub params_arg: Option<Type>,
    pub hypotheses: Vec<LitStr>,
    /// `expect(...)`, with the key's token for errors about the experiment's metrics.
    pub expects: Vec<Expectation>,
    pub expect_key: Option<Ident>,
    /// Expressions building the observers attached to every run of this experiment.
    pub observers: Vec<syn::Expr>,
    /// Whether to generate a `#[test]` that runs one replicate of the baseline (treatments
    /// generate their own) under `cargo test`.
    pub smoke_test: bool,
    /// The input's type, and how the function takes it.
    pub input: Option<(Type, bool)>,
    pub takes_ctx: bool,
    /// Whether the function is an `async fn`: its units run as tasks on the async runner.
    pub is_async: bool,
    /// `jobs = 16`: units in flight.
    pub jobs: Option<u64>,
    /// `timeout = "120s"`, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// `retries = 3`.
    pub retries: Option<u64>,
    /// `limits(ollama = 2)`: each limit's name and capacity, in the order written.
    pub limits: Vec<(String, u64)>,
    /// `crate = path`: the crystallize crate as the user's crate names it.
    pub krate: Path,
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
        params_arg: None,
        hypotheses: Vec::new(),
        expects: Vec::new(),
        expect_key: None,
        observers: Vec::new(),
        smoke_test: true,
        input: None,
        takes_ctx: false,
        is_async: false,
        jobs: None,
        timeout_ms: None,
        retries: None,
        limits: Vec::new(),
        krate: args::default_crate(),
    };
    let mut seen = Vec::new();
    // Whether the user meant to give a datasource, even if they wrote it wrong: then the function's
    // input is not reported as well.
    let mut datasource_intended = false;
    for arg in args::parse_args(attr)? {
        match &arg {
            Arg::KeyValue { key, value } => {
                if !args::check_key(key, KEYS, &mut seen, &mut errors) {
                    continue;
                }
                match key.to_string().as_str() {
                    "datasource" => model.datasource = args::parse_path(value, "datasource", &mut errors),
                    "crate" => {
                        if let Some(krate) = args::parse_crate(value, &mut errors) {
                            model.krate = krate;
                        }
                    }
                    "replicates" => {
                        if let Some(n) = args::parse_u64(value, "replicates", 10, &mut errors) {
                            if n == 0 {
                                errors.spanned(value, "`replicates` must be at least 1");
                            }
                            model.replicates = n;
                        }
                    }
                    "seed" => model.seed = args::parse_u64(value, "seed", 42, &mut errors).unwrap_or(0),
                    "hypotheses" => model.hypotheses = args::parse_strings(value, "hypotheses", &mut errors),
                    "smoke_test" => match value {
                        syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Bool(b), .. }) => model.smoke_test = b.value,
                        other => errors.at(syn::spanned::Spanned::span(other), "`smoke_test` takes `true` or `false`"),
                    },
                    "observers" => match value {
                        syn::Expr::Array(array) => model.observers = array.elems.iter().cloned().collect(),
                        other => errors.spanned(
                            other,
                            "`observers` takes a list of observers: `observers = [MyObserver::new(), ...]`",
                        ),
                    },
                    "expect" => args::wrong_shape(&arg, "as a list: `expect(dolphin.win < baseline.win)`", &mut errors),
                    "jobs" => model.jobs = args::parse_bounded(value, "jobs", 1, MAX_JOBS, 16, &mut errors),
                    "retries" => model.retries = args::parse_bounded(value, "retries", 0, MAX_RETRIES, 3, &mut errors),
                    "timeout" => model.timeout_ms = args::parse_timeout(value, &mut errors),
                    "limits" => args::wrong_shape(&arg, "as a list: `limits(ollama = 2, judge = 1)`", &mut errors),
                    // `params = MyParams` is the natural guess for a params struct: say where it goes.
                    _ if matches!(value, syn::Expr::Path(_)) => {
                        let ty = value.to_token_stream().to_string().replace(' ', "");
                        let expected = format!(
                            "as a list: `params(name = value, ...)`; for a `#[derive(Params)]` struct, \
                             take it in the function instead: `params: &{ty}`"
                        );
                        args::wrong_shape(&arg, &expected, &mut errors)
                    }
                    _ => args::wrong_shape(&arg, "as a list: `params(name = value, ...)`", &mut errors),
                }
            }
            Arg::List { key, content } => {
                if !args::check_key(key, KEYS, &mut seen, &mut errors) {
                    continue;
                }
                if key == "params" {
                    model.params = args::parse_params(content.clone(), true, &mut errors);
                } else if key == "limits" {
                    model.limits = args::parse_limits(content.clone(), &mut errors);
                } else if key == "expect" {
                    model.expects = expect::parse(content.clone(), false, &mut errors);
                    model.expect_key = Some(key.clone());
                } else {
                    args::wrong_shape(&arg, &format!("with a value: `{key} = ...`"), &mut errors);
                }
            }
            Arg::Positional(path) => {
                datasource_intended = true;
                let path_text = path.to_token_stream().to_string().replace(' ', "");
                errors.spanned(
                    path,
                    format!(
                        "expected `key = value`; for a datasource write `datasource = {path_text}`; valid keys: {}",
                        KEYS.join(", ")
                    ),
                );
            }
        }
    }
    datasource_intended |= seen.iter().any(|key| key == "datasource");
    validate_signature(&mut model, datasource_intended, &mut errors);
    errors.finish(model)
}

/// The function takes the input (by value or by reference) when there is a datasource, and
/// optionally the context after it.
fn validate_signature(model: &mut Model, datasource_intended: bool, errors: &mut Errors) {
    signature::reject_unsupported(&model.function, "an experiment", None, errors);
    model.is_async = model.function.sig.asyncness.is_some();
    let args = signature::typed_args(&model.function, "an experiment", errors);
    let mut rest = args.as_slice();
    if datasource_intended {
        match rest.split_first() {
            Some((first, tail)) if !is_ctx(&first.ty) => {
                let shape = signature::shape(&first.ty);
                if shape.mutable_ref {
                    let ty = shape.ty.to_token_stream().to_string();
                    errors.spanned(
                        &first.ty,
                        format!(
                            "an experiment takes its input by value (`{ty}`) or by shared reference (`&{ty}`), \
                             not `&mut`: each unit gets its own input"
                        ),
                    );
                }
                model.input = Some((shape.ty.clone(), shape.by_ref));
                rest = tail;
            }
            Some((first, _)) => errors.spanned(
                first,
                "an experiment with a datasource takes the input first: `fn name(input: Input, ctx: &mut Ctx)`",
            ),
            None => errors.at(
                model.function.sig.ident.span(),
                "an experiment with a datasource takes the input it produces: `fn name(input: Input, ctx: &mut Ctx)`",
            ),
        }
    }
    // The params struct comes next, by shared reference: an argument taken by reference that is
    // not the context is the params (by value, it would be an input without a datasource).
    if let Some((first, tail)) = rest.split_first() {
        let shape = signature::shape(&first.ty);
        if !is_ctx(&first.ty) && shape.by_ref {
            if shape.mutable_ref {
                let ty = shape.ty.to_token_stream().to_string();
                errors.spanned(
                    &first.ty,
                    format!("an experiment reads its params: take them by shared reference, `params: &{ty}`"),
                );
            }
            model.params_arg = Some(shape.ty.clone());
            rest = tail;
        }
    }
    const ORDER: &str = "an experiment takes its input, its params (`params: &MyParams`) and the context, \
                         in this order, nothing else";
    match rest {
        [] => {}
        [ctx, extra @ ..] if is_ctx(&ctx.ty) => {
            let shape = signature::shape(&ctx.ty);
            if !shape.by_ref {
                errors.spanned(&ctx.ty, "an experiment takes the context by reference: `ctx: &mut Ctx`");
            } else if model.is_async && !shape.mutable_ref {
                // `Ctx` is `Send` but not `Sync`: a `&Ctx` held across an await would make the
                // unit's future impossible to move between the runtime's threads.
                errors.spanned(
                    &ctx.ty,
                    "an `async fn` experiment takes the context as `ctx: &mut Ctx`: a `&Ctx` is not `Send`, so \
                     its future could not run on the async runner",
                );
            }
            model.takes_ctx = true;
            if let Some(first_extra) = extra.first() {
                errors.spanned(first_extra, ORDER);
            }
        }
        [other, ..] => {
            let message = if datasource_intended {
                ORDER
            } else {
                "an experiment without `datasource = ...` has no input and takes only its params and the context: \
                 `fn name(params: &MyParams, ctx: &mut Ctx)`; to produce an input, add `datasource = my_datasource`"
            };
            errors.spanned(other, message);
        }
    }
}

/// The name of the struct that `params(...)` generates: the function's name in PascalCase, then
/// `Params` (`social_deception` -> `SocialDeceptionParams`).
pub fn sugar_struct_name(function: &Ident) -> Ident {
    let pascal: String = function
        .to_string()
        .trim_start_matches("r#")
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_uppercase().chain(chars).collect::<String>()).unwrap_or_default()
        })
        .collect();
    Ident::new(&format!("{pascal}Params"), function.span())
}

/// The struct `params(...)` generates, with its `Params` impls: the same expansion as
/// `#[derive(Params)]` on the struct a user would write.
fn sugar_struct(model: &Model) -> TokenStream {
    let function = &model.function.sig.ident;
    let ident = sugar_struct_name(function);
    let vis = &model.function.vis;
    let fields: Vec<params::Field> = model
        .params
        .iter()
        .map(|p| {
            // A string param's field is a `String`, whatever the attribute wrote.
            let ty: Type = if p.kind == ParamKind::Str { syn::parse_quote!(String) } else { p.ty.clone() };
            params::Field {
                name: p.name.clone(),
                ty,
                kind: p.kind,
                optional: false,
                default: Some((p.value.clone(), p.value_expr.clone())),
            }
        })
        .collect();
    let doc = format!("The params of experiment `{function}`, declared in its `params(...)`.");
    let members = fields.iter().map(|field| {
        let name = &field.name;
        let ty = &field.ty;
        let doc = format!("Param `{name}`.");
        quote!(#[doc = #doc] pub #name: #ty)
    });
    let impls = params::render(&model.krate, &ident, &fields);
    quote! {
        #[doc = #doc]
        #[derive(Clone, Debug, PartialEq)]
        #vis struct #ident {
            #(#members,)*
        }
        #impls
    }
}

fn render(model: &Model) -> TokenStream {
    let krate = &model.krate;
    let function = &model.function;
    let ident = &function.sig.ident;
    let vis = &function.vis;
    let name = ident.to_string();
    let location = location(ident.span(), krate);
    let fingerprint = fingerprint::of_tokens(&function.to_token_stream());
    let replicates = model.replicates;
    let seed = model.seed;
    let hypotheses = &model.hypotheses;
    let attached_observers = attached_observers(model, &name);
    let smoke = smoke_test(model, &name);
    let smoke_test = model.smoke_test;

    // The params struct: the one `params(...)` generates, else the one the function takes, else
    // none. A treatment's `set(temprature = 1.2)` is checked against its fields, so it fails as
    // "no field `temprature` on type `&mut GameParams`", at the user's tokens, with rustc's own
    // suggestion.
    let (params_type, sugar) = match (&model.params[..], &model.params_arg) {
        ([], Some(ty)) => (quote!(#ty), quote!()),
        ([], None) => (quote!(#krate::__private::NoParams), quote!()),
        _ => {
            let ident = sugar_struct_name(ident);
            (quote!(#ident), sugar_struct(model))
        }
    };
    let build_params = match &model.params_arg {
        Some(ty) => {
            let built = Ident::new("__crystallize_params", syn::spanned::Spanned::span(ty));
            quote! {
                let #built = <#params_type as #krate::__private::TypedParams>::from_params(
                    #krate::__private::Ctx::params(ctx),
                )?;
            }
        }
        None => quote!(),
    };
    let output_type = match &function.sig.output {
        syn::ReturnType::Type(_, ty) => quote!(#ty),
        syn::ReturnType::Default => quote!(()),
    };
    let expect_texts: Vec<String> = model.expects.iter().map(|e| e.text("baseline")).collect();
    let expect_check = match &model.expect_key {
        Some(key) => expect::render_check(
            krate,
            &quote!(<#ident as #krate::__private::Experiment>::Metrics),
            key,
            &model.expects,
        ),
        None => quote!(),
    };

    let (input_type, produce, datasource_info) = match (&model.datasource, &model.input) {
        (Some(path), Some((ty, _))) => {
            let span = syn::spanned::Spanned::span(path);
            // Bound to the user's input type (with its span), so that a datasource producing
            // another type is reported at `datasource = ...`, "expected due to" the input's type.
            let produced =
                crate::args::krate_spanned!(krate, span=> <#path as #krate::__private::Datasource>::produce(ctx));
            (
                quote!(#ty),
                quote! {
                    let input: #ty = #produced;
                    input
                },
                crate::args::krate_spanned!(krate, span=> ::core::option::Option::Some(&<#path as #krate::__private::Datasource>::INFO)),
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
    let unused_input = if model.input.is_none() { quote!(let _ = input;) } else { quote!() };
    let unused_ctx = if model.takes_ctx { quote!() } else { quote!(let _ = &ctx;) };
    // Spanned at the return type, so that returning anything but `()` or `Result<(), E>` is
    // reported there rather than at the attribute.
    let output_span = match &function.sig.output {
        syn::ReturnType::Type(_, ty) => syn::spanned::Spanned::span(ty),
        syn::ReturnType::Default => ident.span(),
    };
    let finish = crate::args::krate_spanned!(krate, output_span=> #krate::__private::ExperimentOutput::finish);
    // Both uses of the return type are spanned at it entirely, so that an experiment returning
    // something else is one error, there.
    let output_metrics = crate::args::krate_spanned!(krate, output_span=> <#output_type as #krate::__private::ExperimentOutput>::Metrics);
    let output_names = crate::args::krate_spanned!(krate, output_span=> <#output_type as #krate::__private::ExperimentOutput>::METRICS);
    let output_bounds = crate::args::krate_spanned!(krate, output_span=> <#output_type as #krate::__private::ExperimentOutput>::METRIC_BOUNDS);
    let outcome = Ident::new("__crystallize_outcome", output_span);
    let marker = signature::marker_struct(vis, ident);
    let call_args = call_args(model, quote!(ctx));
    let run_fns = if model.is_async {
        run_async(model, &params_type, &outcome, &finish)
    } else {
        quote! {
            fn run(input: Self::Input, ctx: &mut #krate::__private::Ctx) -> #krate::__private::UnitOutcome {
                #unused_input
                #unused_ctx
                #build_params
                let #outcome = #ident(#call_args);
                #finish(#outcome, ctx)
            }
        }
    };
    let run_defaults = run_defaults(model);

    quote! {
        #function
        #marker
        #sugar

        impl #krate::__private::Experiment for #ident {
            type Input = #input_type;
            type Params = #params_type;
            type Metrics = #output_metrics;
            const NAME: &'static str = #name;
            const SMOKE_TEST: bool = #smoke_test;

            fn produce_input(ctx: &#krate::__private::Ctx) -> Self::Input {
                #produce
            }

            #run_fns

            fn describe_input(input: &Self::Input) -> #krate::__private::InputView {
                #[allow(unused_imports)]
                use #krate::__private::describe::{DescribeDebug as _, DescribeJson as _, DescribeOpaque as _};
                (&&&#krate::__private::describe::Probe(input)).describe()
            }

            fn input_from_json(
                value: #krate::__private::JsonValue,
            ) -> ::core::option::Option<::core::result::Result<Self::Input, ::std::string::String>> {
                #[allow(unused_imports)]
                use #krate::__private::restore::{RestoreJson as _, RestoreNone as _};
                (&&#krate::__private::restore::Target::<Self::Input>(::core::marker::PhantomData)).restore(value)
            }
        }

        #krate::__private::inventory::submit! {
            #krate::__private::ExperimentEntry {
                name: #name,
                location: #location,
                datasource: #datasource_info,
                replicates: #replicates,
                seed: #seed,
                params: <#params_type as #krate::__private::TypedParams>::DECLS,
                hypotheses: &[#(#hypotheses,)* #(#expect_texts,)*],
                metrics: #output_names,
                metric_bounds: #output_bounds,
                fingerprint: #fingerprint,
                vtable: #krate::__private::ExperimentVTable::of::<#ident>(),
                run: #run_defaults,
            }
        }

        #expect_check
        #attached_observers
        #smoke
    }
}

/// The arguments of the call to the user's function, in its order: `input`, `&params`, `ctx`
/// (each only if the function takes it); `ctx` is the expression passed as the context.
fn call_args(model: &Model, ctx: TokenStream) -> TokenStream {
    let input = match &model.input {
        Some((_, true)) => quote!(&input,),
        Some((_, false)) => quote!(input,),
        None => quote!(),
    };
    let params = match &model.params_arg {
        Some(ty) => {
            let span = syn::spanned::Spanned::span(ty);
            let built = Ident::new("__crystallize_params", span);
            quote_spanned!(span=> &#built,)
        }
        None => quote!(),
    };
    let ctx = if model.takes_ctx { ctx } else { quote!() };
    quote!(#input #params #ctx)
}

/// `run` and `run_async` of an `async fn` experiment. The future owns the input and the context
/// and builds the params inside, exactly as the sync `run` does, then awaits the user's function
/// and records what it returned. The runner never calls `run` when `ASYNC` is true; it answers
/// anyway, with an error rather than a panic, for a caller that asks.
fn run_async(model: &Model, params_type: &TokenStream, outcome: &Ident, finish: &TokenStream) -> TokenStream {
    let krate = &model.krate;
    let ident = &model.function.sig.ident;
    let name = ident.to_string();
    // What a build without crystallize's `async` feature reports for each unit: its runner is sync.
    let not_sync =
        format!("experiment `{name}` is async; it runs on the async runner (crystallize's default `async` feature)");
    let build_params = match &model.params_arg {
        Some(ty) => {
            let built = Ident::new("__crystallize_params", syn::spanned::Spanned::span(ty));
            quote! {
                let #built = match <#params_type as #krate::__private::TypedParams>::from_params(
                    #krate::__private::Ctx::params(&ctx),
                ) {
                    ::core::result::Result::Ok(params) => params,
                    ::core::result::Result::Err(error) => {
                        return (ctx, ::core::result::Result::Err(::core::convert::From::from(error)))
                    }
                };
            }
        }
        None => quote!(),
    };
    let unused_input = if model.input.is_none() { quote!(let _ = input;) } else { quote!() };
    let ctx_binding = if model.takes_ctx { quote!(let mut ctx = ctx;) } else { quote!() };
    let args = call_args(model, quote!(&mut ctx));
    // The `Send` bound is checked on the user's future alone, spanned at the function's name, so
    // that a future holding something like an `Rc` across an await is reported as "future
    // returned by `name` is not `Send`", pointing at the value in the user's code.
    let must_be_send = Ident::new("__crystallize_must_be_send", ident.span());
    let call = quote_spanned!(ident.span()=> #must_be_send(#ident(#args)));
    quote! {
        const ASYNC: bool = true;

        fn run(input: Self::Input, ctx: &mut #krate::__private::Ctx) -> #krate::__private::UnitOutcome {
            let _ = (input, ctx);
            ::core::result::Result::Err(::core::convert::From::from(#not_sync))
        }

        fn run_async(input: Self::Input, ctx: #krate::__private::Ctx) -> #krate::__private::UnitFuture {
            fn #must_be_send<F: ::core::future::Future + ::core::marker::Send>(future: F) -> F {
                future
            }
            ::std::boxed::Box::pin(async move {
                #ctx_binding
                #unused_input
                #build_params
                let #outcome = #call.await;
                let __crystallize_outcome = #finish(#outcome, &ctx);
                (ctx, __crystallize_outcome)
            })
        }
    }
}

/// The `RunDefaults` of the entry: what `jobs`, `timeout`, `retries` and `limits(...)` gave.
fn run_defaults(model: &Model) -> TokenStream {
    let krate = &model.krate;
    fn option<T: ToTokens>(value: Option<T>) -> TokenStream {
        match value {
            Some(value) => quote!(::core::option::Option::Some(#value)),
            None => quote!(::core::option::Option::None),
        }
    }
    if model.jobs.is_none() && model.timeout_ms.is_none() && model.retries.is_none() && model.limits.is_empty() {
        return quote!(#krate::__private::RunDefaults::NONE);
    }
    // The values were range-checked when parsed, so these conversions cannot truncate.
    let jobs = option(model.jobs.map(|jobs| jobs as usize));
    let timeout_ms = option(model.timeout_ms);
    let retries = option(model.retries.map(|retries| retries as u32));
    let limits = model.limits.iter().map(|(name, capacity)| {
        let capacity = *capacity as usize;
        quote!((#name, #capacity))
    });
    quote! {
        #krate::__private::RunDefaults {
            jobs: #jobs,
            timeout_ms: #timeout_ms,
            retries: #retries,
            limits: &[#(#limits),*],
        }
    }
}

/// The `#[test]` that runs one replicate of the baseline under `cargo test` and `cargo nextest`
/// (each treatment generates the test of its own condition).
fn smoke_test(model: &Model, name: &str) -> TokenStream {
    let krate = &model.krate;
    if !model.smoke_test {
        return quote!();
    }
    let test = format_ident!("crystallize_smoke__{}__baseline", model.function.sig.ident);
    quote! {
        #[cfg(test)]
        #[test]
        #[allow(non_snake_case)]
        fn #test() {
            #krate::__private::smoke(#name, "baseline");
        }
    }
}

/// The registration of the observers in `observers = [...]`, built afresh for every run; each
/// expression is type-checked as an `Observer` at its own tokens.
fn attached_observers(model: &Model, name: &str) -> TokenStream {
    let krate = &model.krate;
    if model.observers.is_empty() {
        return TokenStream::new();
    }
    let boxed = model
        .observers
        .iter()
        .map(|expr| crate::args::krate_spanned!(krate, syn::spanned::Spanned::span(expr)=> #krate::__private::boxed_observer(#expr)));
    quote! {
        const _: () = {
            fn __crystallize_observers() -> ::std::vec::Vec<::std::boxed::Box<dyn #krate::__private::Observer>> {
                ::std::vec![#(#boxed),*]
            }
            #krate::__private::inventory::submit! {
                #krate::__private::AttachedObservers { experiment: #name, make: __crystallize_observers }
            }
        };
    }
}
