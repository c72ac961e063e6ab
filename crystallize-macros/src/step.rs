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

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, Ident, ItemFn, Pat, Path, PathArguments, ReturnType, Type};

use crate::args::{self, Arg, Errors};
use crate::fingerprint;
use crate::signature::{location, with_errors};

const KEYS: &[&str] = &["limit", "cache", "crate"];
const CACHE_KEYS: &[&str] = &["shared", "version", "skip"];

/// What `#[step(...)]` says.
struct Model {
    function: ItemFn,
    /// `limit = "ollama"`: the limit the step holds while it runs.
    limit: Option<String>,
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
                "#[step] takes no `name`: the step is named after its function; valid keys: limit, cache, crate",
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
                 `limit = \"name\"`, the run's limit it holds while it runs, `cache` (or `cache(shared, \
                 version = N, skip(arg))`), and `crate = path`",
            ),
        }
    }
    if let Some(token) = &function.sig.constness {
        errors.at(token.span, "#[step] cannot wrap a `const fn`: a step reports to the running unit");
    }
    let cache = cache.map(|args| cache_model(&function, args, &mut errors));
    errors.finish(Model { function, limit, cache, krate: krate.unwrap_or_else(args::default_crate) })
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
    if let Some(cache) = &model.cache {
        let body = render_cached(model, cache, &take_limit);
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

/// The body of a cached step (see the module's documentation).
fn render_cached(model: &Model, cache: &CacheModel, take_limit: &TokenStream) -> TokenStream {
    let krate = &model.krate;
    let ItemFn { sig, block, .. } = &model.function;
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
                    #block
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
            let __crystallize_out: #output = (move || -> #output #block)();
            __crystallize_call.store(#krate::__private::cache::#codec, &__crystallize_out);
            __crystallize_out
        }
    }
}
