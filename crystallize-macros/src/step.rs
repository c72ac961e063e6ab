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
//!
//! With `cache` (`cache(shared, version = N, skip(client))`), the body first builds the call's
//! key from the arguments not skipped (each checked to be `Serialize` at its own tokens, the
//! output or its `Ok` type checked to be `Serialize + DeserializeOwned` at the return type) and
//! returns the stored output on a hit; on a miss the original body runs (a sync one in a `move`
//! closure, so that its `return`s give the output) and its output is stored. A hit takes no
//! limit's permit: the limit is taken after the lookup.
//!
//! With `timeout = "30s"` (async steps only: a sync step cannot be interrupted) each attempt of the
//! step races a deadline; with `retries = N` an attempt that timed out or returned an error marked
//! `Failure::retryable` is made again, up to N more times. The body then runs as a closure (an
//! async closure for an async step) called once per attempt: its `return` and `?` mean what they
//! meant, arguments the step owns are cloned for each attempt, and each attempt starts from the
//! same place in the unit's random streams (see `crystallize::runner::steps`). A cached step's
//! attempts run on a miss, and only the attempt that succeeded is stored.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, Ident, ItemFn, Pat, Path, PathArguments, ReturnType, Type};

use crate::args::{self, Arg, Errors};
use crate::fingerprint;
use crate::signature::{location, with_errors};

const KEYS: &[&str] = &["limit", "timeout", "retries", "cache", "crate"];
const CACHE_KEYS: &[&str] = &["shared", "version", "skip"];

/// What `#[step(...)]` says.
struct Model {
    function: ItemFn,
    /// `limit = "ollama"`: the limit the step holds while it runs.
    limit: Option<String>,
    /// `timeout = "30s"`, in milliseconds: the deadline of each attempt.
    timeout_ms: Option<u64>,
    /// `retries = 2`: attempts after the first.
    retries: Option<u64>,
    /// `cache` or `cache(...)`: the step's outputs are cached.
    cache: Option<CacheModel>,
    /// `crate = path`: the crystallize crate as the user's crate names it.
    krate: Path,
}

/// What `cache(...)` says, and what the key is made of.
struct CacheModel {
    shared: bool,
    version: u32,
    /// The arguments in the key, in order: their names (`self` for a receiver) and the span of
    /// their type, where a type that is not `Serialize` is reported.
    keyed: Vec<(Ident, Span)>,
    /// How the output is stored: whole, or only its `Ok` value (a `Result`).
    ok_only: bool,
    /// The type that must be `Serialize + DeserializeOwned` (the output, or its `Ok` type).
    value: Type,
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
    let mut timeout_ms = None;
    let mut retries = None;
    let mut krate = None;
    let mut cache = None;
    let mut seen = Vec::new();
    for arg in args::parse_args(attr)? {
        match &arg {
            Arg::Positional(path) if path.is_ident("cache") => {
                if args::check_key(path.get_ident().expect("checked by is_ident"), KEYS, &mut seen, &mut errors) {
                    cache = Some(CacheArgs::default());
                }
            }
            Arg::List { key, content } if key == "cache" => {
                if args::check_key(key, KEYS, &mut seen, &mut errors) {
                    cache = Some(parse_cache(content.clone(), &mut errors));
                }
            }
            Arg::KeyValue { key, .. } if key == "version" || key == "shared" || key == "skip" => {
                errors.at(key.span(), format!("`{key}` belongs inside `cache(...)`: `#[step(cache({key} ...))]`"))
            }
            // The one name a user is likely to try, answered with where a step's name comes from.
            Arg::KeyValue { key, .. } if key == "name" => errors.at(
                key.span(),
                "#[step] takes no `name`: the step is named after its function; valid keys: limit, timeout, retries, cache, \
                 crate",
            ),
            Arg::KeyValue { key, value } => {
                if args::check_key(key, KEYS, &mut seen, &mut errors) {
                    match key.to_string().as_str() {
                        "crate" => krate = args::parse_crate(value, &mut errors),
                        "timeout" => {
                            timeout_ms = args::parse_timeout(value, &mut errors);
                            if function.sig.asyncness.is_none() {
                                errors.spanned(
                                    value,
                                    "a `timeout` needs an `async fn` step: a sync step cannot be stopped midway; \
                                     give the experiment a `timeout` (or `--timeout`) instead, which abandons the \
                                     unit's thread",
                                );
                            }
                        }
                        "retries" => {
                            retries = args::parse_bounded(value, "retries", 0, args::MAX_RETRIES, 2, &mut errors)
                        }
                        _ => limit = args::parse_limit_name(value, "limit", &mut errors),
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
                 `limit = \"name\"`, the run's limit it holds while it runs, `timeout = \"30s\"`, \
                 `retries = N`, `cache` (or `cache(shared, version = N, skip(arg))`), and `crate = path`",
            ),
        }
    }
    if let Some(token) = &function.sig.constness {
        errors.at(token.span, "#[step] cannot wrap a `const fn`: a step reports to the running unit");
    }
    let cache = cache.map(|args| cache_model(&function, args, &mut errors));
    if retries.is_some_and(|n| n > 0) {
        check_retryable(&function, &mut errors);
    }
    let krate = krate.unwrap_or_else(args::default_crate);
    errors.finish(Model { function, limit, timeout_ms, retries, cache, krate })
}

/// A step with retries must say how it fails (a `Result`), and its body must be callable once
/// per attempt: no argument taken by value that is not a plain name (it is cloned per attempt),
/// no `self` by value, no `impl Trait` in the return type (the attempt closure names it).
fn check_retryable(function: &ItemFn, errors: &mut Errors) {
    match &function.sig.output {
        syn::ReturnType::Default => errors.spanned(
            &function.sig.ident,
            "a step with `retries` must return a `Result`: an attempt is retried when it returns \
             `Err(Failure::retryable(...))` (or times out)",
        ),
        syn::ReturnType::Type(_, ty) => {
            let is_result = matches!(&**ty, syn::Type::Path(path)
                if path.path.segments.last().is_some_and(|segment| segment.ident == "Result"));
            if !is_result {
                errors.spanned(
                    ty,
                    "a step with `retries` must return a `Result`: an attempt is retried when it returns \
                     `Err(Failure::retryable(...))` (or times out)",
                );
            } else if ty
                .to_token_stream()
                .into_iter()
                .any(|t| matches!(&t, proc_macro2::TokenTree::Ident(i) if i == "impl"))
            {
                errors.spanned(ty, "a step with `retries` cannot return `impl Trait`: name the type");
            }
        }
    }
    for input in &function.sig.inputs {
        match input {
            syn::FnArg::Receiver(receiver) if receiver.reference.is_none() => errors.spanned(
                receiver,
                "a step with `retries` runs its body once per attempt: take `&self` or `&mut self`, not `self`",
            ),
            syn::FnArg::Typed(typed)
                if !matches!(&*typed.ty, syn::Type::Reference(_)) && !matches!(&*typed.pat, syn::Pat::Ident(_)) =>
            {
                errors.spanned(
                    &typed.pat,
                    "a step with `retries` clones each argument it owns for every attempt: give this \
                     argument a plain name",
                )
            }
            _ => {}
        }
    }
}

/// `cache(...)` as written.
#[derive(Default)]
struct CacheArgs {
    shared: bool,
    version: u32,
    skip: Vec<Ident>,
}

fn parse_cache(content: TokenStream, errors: &mut Errors) -> CacheArgs {
    let mut cache = CacheArgs::default();
    let parsed = match args::parse_args(content) {
        Ok(parsed) => parsed,
        Err(error) => {
            errors.push(error);
            return cache;
        }
    };
    let mut seen = Vec::new();
    for arg in parsed {
        match &arg {
            Arg::Positional(path) if path.is_ident("shared") => {
                if args::check_key(path.get_ident().expect("checked by is_ident"), CACHE_KEYS, &mut seen, errors) {
                    cache.shared = true;
                }
            }
            Arg::KeyValue { key, value } if key == "version" => {
                if args::check_key(key, CACHE_KEYS, &mut seen, errors) {
                    let version = args::parse_bounded(value, "version", 0, u64::from(u32::MAX), 2, errors);
                    cache.version = version.and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
                }
            }
            Arg::List { key, content } if key == "skip" => {
                if args::check_key(key, CACHE_KEYS, &mut seen, errors) {
                    // `parse_any`: `self` is a keyword, and a receiver may be skipped too.
                    let names = syn::parse::Parser::parse2(
                        |input: syn::parse::ParseStream| {
                            syn::punctuated::Punctuated::<Ident, syn::Token![,]>::parse_terminated_with(
                                input,
                                syn::ext::IdentExt::parse_any,
                            )
                        },
                        content.clone(),
                    );
                    match names {
                        Ok(names) => cache.skip.extend(names),
                        Err(error) => errors.at(error.span(), "`skip(...)` takes argument names: `skip(client, log)`"),
                    }
                }
            }
            Arg::Positional(path) => {
                let name = path.to_token_stream().to_string();
                let hint =
                    args::suggestion(&name, CACHE_KEYS).map(|s| format!("; did you mean `{s}`?")).unwrap_or_default();
                errors.spanned(
                    path,
                    format!("unknown cache option `{name}`{hint} valid: shared, version = N, skip(arg, ...)"),
                );
            }
            Arg::KeyValue { key, .. } | Arg::List { key, .. } => {
                if args::check_key(key, CACHE_KEYS, &mut seen, errors) {
                    let expected = match key.to_string().as_str() {
                        "shared" => "as a bare word: `cache(shared)`",
                        "version" => "with a value: `cache(version = 2)`",
                        _ => "with argument names: `cache(skip(client))`",
                    };
                    args::wrong_shape(&arg, expected, errors);
                }
            }
        }
    }
    cache
}

/// The key's arguments and the stored type of a cached step, checking what can be checked here.
fn cache_model(function: &ItemFn, args: CacheArgs, errors: &mut Errors) -> CacheModel {
    let mut keyed = Vec::new();
    let mut names = Vec::new();
    for input in &function.sig.inputs {
        match input {
            FnArg::Receiver(receiver) => {
                let ident = Ident::new("self", receiver.self_token.span);
                names.push(ident.clone());
                if !args.skip.iter().any(|s| s == "self") {
                    keyed.push((ident, receiver.span()));
                }
            }
            FnArg::Typed(typed) => {
                if crate::signature::is_ctx(&typed.ty) {
                    errors.spanned(
                        &typed.ty,
                        "a `#[step(cache)]` cannot take the context: on a hit its body does not run, so what it \
                         would record, emit or draw from the context would be missing; pass what it needs \
                         (`ctx.seed()`, a param) as arguments and record metrics in the caller",
                    );
                    continue;
                }
                let ident = match &*typed.pat {
                    Pat::Ident(pat) if pat.subpat.is_none() => pat.ident.clone(),
                    other => {
                        errors.spanned(
                            other,
                            "an argument of a `#[step(cache)]` needs a plain name, to be part of the key (or to \
                             be left out of it with `cache(skip(name))`)",
                        );
                        continue;
                    }
                };
                names.push(ident.clone());
                if !args.skip.contains(&ident) {
                    keyed.push((ident, typed.ty.span()));
                }
            }
        }
    }
    for skipped in &args.skip {
        if !names.contains(skipped) {
            let valid: Vec<String> = names.iter().map(ToString::to_string).collect();
            errors.at(
                skipped.span(),
                format!("`skip({skipped})`: the step has no argument `{skipped}`; its arguments: {}", valid.join(", ")),
            );
        }
    }
    let output = match &function.sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    if let Type::ImplTrait(ty) = &output {
        errors.spanned(ty, "a `#[step(cache)]` cannot return `impl Trait`: its output is stored, so name its type");
    }
    let (ok_only, value) = match ok_type(&output) {
        Some(ok) => (true, ok.clone()),
        None => (false, output),
    };
    CacheModel { shared: args.shared, version: args.version, keyed, ok_only, value }
}

/// The `Ok` type of a `Result<T, E>` (or of an alias `Result<T>`), by its name: only the `Ok`
/// value of a fallible step is stored.
fn ok_type(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(generics) = &last.arguments else { return None };
    generics.args.iter().find_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    })
}

fn render(model: &Model) -> TokenStream {
    let function = &model.function;
    let krate = &model.krate;
    let ItemFn { attrs, vis, sig, block: _ } = function;
    let ident = &sig.ident;
    let name = ident.to_string();
    let location = location(ident.span(), krate);
    let fingerprint = fingerprint::of_tokens(&function.to_token_stream());
    let is_async = sig.asyncness.is_some();
    let limit_info = match &model.limit {
        Some(limit) => quote!(::core::option::Option::Some(#limit)),
        None => quote!(::core::option::Option::None),
    };
    let cache_info = match &model.cache {
        Some(cache) => {
            let (shared, version) = (cache.shared, cache.version);
            crate::args::krate_spanned! {krate, ident.span()=>
                ::core::option::Option::Some(&#krate::__private::cache::CacheSpec { shared: #shared, version: #version })
            }
        }
        None => quote!(::core::option::Option::None),
    };
    let info = crate::args::krate_spanned! {krate, ident.span()=>
        static __CRYSTALLIZE_STEP: #krate::__private::StepInfo = #krate::__private::StepInfo {
            name: #name,
            location: #location,
            fingerprint: #fingerprint,
            limit: #limit_info,
            cache: #cache_info,
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
    let attempts = attempt_loop(model, is_async);
    if let Some(cache) = &model.cache {
        let body = render_cached(model, cache, &take_limit, &attempts);
        return quote! {
            #(#attrs)*
            #vis #sig {
                #info
                #body
            }
        };
    }
    let body = if is_async {
        crate::args::krate_spanned! {krate, ident.span()=>
            #krate::__private::step_async(&__CRYSTALLIZE_STEP, async move {
                #take_limit
                #attempts
            })
            .await
        }
    } else {
        crate::args::krate_spanned! {krate, ident.span()=>
            let __crystallize_step_guard = #krate::__private::StepGuard::enter(&__CRYSTALLIZE_STEP);
            #take_limit
            #attempts
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

/// The body of a cached step (see the module's documentation).
fn render_cached(model: &Model, cache: &CacheModel, take_limit: &TokenStream, attempts: &TokenStream) -> TokenStream {
    let krate = &model.krate;
    let ItemFn { sig, .. } = &model.function;
    let ident = &sig.ident;
    let value = &cache.value;
    let check_value = crate::args::krate_spanned! {krate, value.span()=>
        #krate::__private::cache::check_value::<#value>();
    };
    let keyed = cache.keyed.iter().map(|(name, span)| {
        let text = name.to_string();
        quote_spanned! {*span=>
            __crystallize_key.arg(#text, &#name);
        }
    });
    let codec = if cache.ok_only { quote!(OkOnly) } else { quote!(Whole) };
    let key = crate::args::krate_spanned! {krate, ident.span()=>
        let mut __crystallize_key = #krate::__private::cache::KeyBuilder::new(&__CRYSTALLIZE_STEP);
    };
    let finish = quote_spanned! {ident.span()=>
        let __crystallize_call = __crystallize_key.finish();
    };
    if sig.asyncness.is_some() {
        let run = crate::args::krate_spanned! {krate, ident.span()=>
            #krate::__private::cache::step_async(
                &__CRYSTALLIZE_STEP,
                __crystallize_call,
                #krate::__private::cache::#codec,
                async move {
                    #take_limit
                    #attempts
                },
            )
            .await
        };
        quote! {
            #check_value
            #key
            #(#keyed)*
            #finish
            #run
        }
    } else {
        let output = match &sig.output {
            ReturnType::Default => quote!(()),
            ReturnType::Type(_, ty) => ty.to_token_stream(),
        };
        crate::args::krate_spanned! {krate, ident.span()=>
            let __crystallize_step_guard = #krate::__private::StepGuard::enter(&__CRYSTALLIZE_STEP);
            #check_value
            #key
            #(#keyed)*
            #finish
            if let ::core::option::Option::Some(__crystallize_hit) =
                __crystallize_call.lookup(#krate::__private::cache::#codec)
            {
                return __crystallize_hit;
            }
            #take_limit
            // A closure, so that the body's `return`s give the output to store.
            #[allow(clippy::redundant_closure_call)]
            let __crystallize_out: #output = (move || -> #output { #attempts })();
            __crystallize_call.store(#krate::__private::cache::#codec, &__crystallize_out);
            __crystallize_out
        }
    }
}

/// The step's body, as is when it has neither `timeout` nor `retries`; else a loop of attempts.
fn attempt_loop(model: &Model, is_async: bool) -> TokenStream {
    let krate = &model.krate;
    let block = &model.function.block;
    let retries = model.retries.unwrap_or(0) as u32;
    if model.timeout_ms.is_none() && retries == 0 {
        return quote!(#block);
    }
    let span = model.function.sig.ident.span();
    let output = match &model.function.sig.output {
        syn::ReturnType::Default => quote!(()),
        syn::ReturnType::Type(_, ty) => quote!(#ty),
    };
    // Arguments the step owns are cloned for each attempt (the closure borrows the originals).
    let clones = model.function.sig.inputs.iter().filter_map(|input| match input {
        syn::FnArg::Typed(typed) if !matches!(&*typed.ty, syn::Type::Reference(_)) => match &*typed.pat {
            syn::Pat::Ident(pat) if retries > 0 => {
                let name = &pat.ident;
                let ty = &typed.ty;
                Some(quote_spanned! {ty.span()=> let #name: #ty = ::core::clone::Clone::clone(&#name);})
            }
            _ => None,
        },
        _ => None,
    });
    let clones: Vec<TokenStream> = clones.collect();
    // An async closure's body captures precisely what it uses: a `&mut Ctx` it only reads would
    // be held as `&Ctx`, which is not `Send`. Reborrowing each `&mut` argument mutably keeps
    // what the step's future holds what it held before (`&mut T`, `Send` when `T` is).
    let reborrows: Vec<TokenStream> = model
        .function
        .sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            syn::FnArg::Typed(typed) => match (&*typed.pat, &*typed.ty) {
                (syn::Pat::Ident(pat), syn::Type::Reference(reference)) if reference.mutability.is_some() => {
                    let name = &pat.ident;
                    Some(quote!(let #name = &mut *#name;))
                }
                _ => None,
            },
            _ => None,
        })
        .collect();
    // Each attempt draws the same random numbers: the unit's stream counter is put back.
    let ctx = model.function.sig.inputs.iter().find_map(|input| match input {
        syn::FnArg::Typed(typed) if crate::signature::is_ctx(&typed.ty) => match &*typed.pat {
            syn::Pat::Ident(pat) => Some(pat.ident.clone()),
            _ => None,
        },
        _ => None,
    });
    let (save_rng, restore_rng) = match &ctx {
        Some(ctx) => (
            quote!(let __crystallize_rng = #krate::__private::rng_position(&*#ctx);),
            quote!(#krate::__private::set_rng_position(&*#ctx, __crystallize_rng);),
        ),
        None => (quote!(), quote!()),
    };
    let retry_on_error = if retries > 0 {
        let pause = if is_async {
            quote!(#krate::__private::step_pause(__crystallize_pause).await;)
        } else {
            quote!(#krate::__private::step_pause_blocking(__crystallize_pause);)
        };
        quote! {
            if let ::core::option::Option::Some(__crystallize_error) = #krate::__private::retryable_error(&__crystallize_result) {
                if let ::core::option::Option::Some(__crystallize_pause) = __crystallize_retries.next_pause(&__crystallize_error) {
                    #pause
                    continue;
                }
            }
        }
    } else {
        quote!()
    };
    let (count_attempts, counted) = match model.timeout_ms {
        Some(_) => (quote!(let mut __crystallize_attempts: u32 = 0;), quote!(__crystallize_attempts += 1;)),
        None => (quote!(), quote!()),
    };
    if is_async {
        let attempt = match model.timeout_ms {
            Some(ms) => quote! {
                match #krate::__private::step_deadline(#ms, __crystallize_body()).await {
                    ::core::option::Option::Some(__crystallize_result) => __crystallize_result,
                    ::core::option::Option::None => {
                        let __crystallize_error = #krate::__private::step_deadline_message(#ms);
                        match __crystallize_retries.next_pause(&__crystallize_error) {
                            ::core::option::Option::Some(__crystallize_pause) => {
                                #krate::__private::step_pause(__crystallize_pause).await;
                                continue;
                            }
                            ::core::option::Option::None => {
                                #krate::__private::step_timed_out(&__CRYSTALLIZE_STEP, #ms, __crystallize_attempts)
                            }
                        }
                    }
                }
            },
            None => quote!(__crystallize_body().await),
        };
        crate::args::krate_spanned! {krate, span=>
            #save_rng
            let mut __crystallize_retries = #krate::__private::StepRetries::new(&__CRYSTALLIZE_STEP, #retries);
            #count_attempts
            let mut __crystallize_body = async move || -> #output {
                #(#reborrows)*
                #restore_rng
                #(#clones)*
                #block
            };
            loop {
                #counted
                let __crystallize_result: #output = #attempt;
                #retry_on_error
                break __crystallize_result;
            }
        }
    } else {
        crate::args::krate_spanned! {krate, span=>
            #save_rng
            let mut __crystallize_retries = #krate::__private::StepRetries::new(&__CRYSTALLIZE_STEP, #retries);
            loop {
                // One attempt: a closure, so that the body's `return` and `?` end the attempt.
                #[allow(clippy::redundant_closure_call)]
                let __crystallize_result: #output = (|| -> #output {
                    #restore_rng
                    #(#clones)*
                    #block
                })();
                #retry_on_error
                break __crystallize_result;
            }
        }
    }
}
