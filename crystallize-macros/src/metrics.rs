//! `#[derive(Metrics)]`: the struct of metrics an experiment returns. Each named field is one
//! metric (a bool, an integer or a float), recorded as `ctx.record` records it; the field names
//! are the experiment's declared metrics.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::{DeriveInput, Ident, Path};

use crate::args::{self, Errors};
use crate::params::named_fields;

/// Expands `#[derive(Metrics)]`. On error only the errors are emitted; the struct stays.
pub fn expand(item: TokenStream) -> TokenStream {
    args::derive(item, parse, |krate, ident, fields: &Vec<_>| render(krate, ident, fields))
}

/// The fields, each checked to be a bool, an integer or a float.
pub fn parse(input: &DeriveInput) -> syn::Result<Vec<Ident>> {
    let mut errors = Errors::default();
    let mut fields = Vec::new();
    for field in named_fields(input, "Metrics", "metric", &mut errors) {
        let Some(name) = field.ident.clone() else { continue };
        let text = field.ty.to_token_stream().to_string().replace(' ', "");
        let numeric = matches!(
            text.as_str(),
            "bool" | "i8" | "i16" | "i32" | "i64" | "isize" | "u8" | "u16" | "u32" | "u64" | "usize" | "f32" | "f64"
        );
        if !numeric {
            errors.spanned(
                &field.ty,
                format!(
                    "a metric is a bool (recorded as 0 or 1), an integer or a float, not `{text}`; \
                     record anything else with `ctx.record` or `ctx.write_artifact`"
                ),
            );
            continue;
        }
        fields.push(name);
    }
    errors.finish(fields)
}

/// The `DeclaredMetrics` impl of the struct `ident`, and what `expect(...)` checks against.
pub fn render(krate: &Path, ident: &Ident, fields: &[Ident]) -> TokenStream {
    let names: Vec<String> = fields.iter().map(Ident::to_string).collect();
    // Each record call is spanned at its field, so a problem with one names that field.
    let records = fields
        .iter()
        .zip(&names)
        .map(|(field, name)| crate::args::krate_spanned!(krate, field.span()=> #krate::__private::Ctx::record(ctx, #name, self.#field);));
    quote! {
        impl #krate::__private::DeclaredMetrics for #ident {
            const NAMES: &'static [&'static str] = &[#(#names),*];

            fn record(self, ctx: &#krate::__private::Ctx) {
                let _ = ctx;
                #(#records)*
            }
        }

        impl #krate::__private::ExpectsMetrics for #ident {
            type Declared = #ident;
        }
    }
}
