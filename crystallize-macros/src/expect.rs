//! `expect(dolphin.win < baseline.win)`: a hypothesis written in Rust tokens, in `#[experiment]`
//! and `#[treatment]` (where the left side may be a bare metric, meaning the treatment's own
//! condition). The macros check each metric against the experiment's `#[derive(Metrics)]` struct
//! by generating field accesses at the user's tokens ([`render_check`]); the runtime gets the
//! hypothesis as text, declared like `hypotheses = ["..."]`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::parse::{ParseStream, Parser};
use syn::{Ident, Lit, Token};

use crate::args::Errors;

const OPERATORS: &str = "`<`, `<=`, `>`, `>=` or `!=`";

/// One side: `condition.metric`, or a bare `metric` (the treatment's own condition).
pub struct Side {
    pub condition: Option<Ident>,
    pub metric: Ident,
}

/// One `left OP right [± margin]`.
pub struct Expectation {
    pub left: Side,
    pub op: &'static str,
    pub right: Side,
    /// `+ 0.05` or `- 0.05`, as written.
    pub margin: Option<(char, Lit)>,
}

impl Expectation {
    /// The hypothesis as the runtime's language spells it; a bare left side is `condition`.
    pub fn text(&self, condition: &str) -> String {
        let side = |side: &Side| match &side.condition {
            Some(c) => format!("{c}.{}", side.metric),
            None => format!("{condition}.{}", side.metric),
        };
        let margin = match &self.margin {
            Some((sign, lit)) => format!(" {sign} {}", quote!(#lit)),
            None => String::new(),
        };
        format!("{} {} {}{margin}", side(&self.left), self.op, side(&self.right))
    }
}

fn parse_side(input: ParseStream, bare_allowed: bool, which: &str) -> syn::Result<Side> {
    let first: Ident = input.parse().map_err(|error| {
        syn::Error::new(error.span(), format!("expected `condition.metric` on the {which} side, like `baseline.win`"))
    })?;
    if input.peek(Token![.]) {
        input.parse::<Token![.]>()?;
        let metric: Ident = input.parse().map_err(|error| {
            syn::Error::new(error.span(), format!("expected a metric after `{first}.`, like `{first}.win`"))
        })?;
        return Ok(Side { condition: Some(first), metric });
    }
    if bare_allowed {
        return Ok(Side { condition: None, metric: first });
    }
    Err(syn::Error::new(
        first.span(),
        format!("name the condition and the metric on the {which} side: `baseline.{first}` or `my_treatment.{first}`"),
    ))
}

fn parse_op(input: ParseStream) -> syn::Result<&'static str> {
    let op = if input.peek(Token![<=]) {
        input.parse::<Token![<=]>()?;
        "<="
    } else if input.peek(Token![>=]) {
        input.parse::<Token![>=]>()?;
        ">="
    } else if input.peek(Token![!=]) {
        input.parse::<Token![!=]>()?;
        "!="
    } else if input.peek(Token![=>]) {
        return Err(input.error(format!("expected a comparison: {OPERATORS}")));
    } else if input.peek(Token![==]) || input.peek(Token![=]) {
        return Err(input.error(format!(
            "a hypothesis claims a difference, which a test can show; equality it cannot: use one of {OPERATORS}"
        )));
    } else if input.peek(Token![<<]) || input.peek(Token![>>]) {
        return Err(input.error(format!("expected a comparison: {OPERATORS}")));
    } else if input.peek(Token![<]) {
        input.parse::<Token![<]>()?;
        "<"
    } else if input.peek(Token![>]) {
        input.parse::<Token![>]>()?;
        ">"
    } else {
        return Err(input.error(format!("expected a comparison: {OPERATORS}")));
    };
    Ok(op)
}

fn parse_one(input: ParseStream, bare_left: bool) -> syn::Result<Expectation> {
    let left = parse_side(input, bare_left, "left")?;
    let op = parse_op(input)?;
    let right = parse_side(input, false, "right")?;
    let margin = if input.peek(Token![+]) || input.peek(Token![-]) {
        let sign = if input.peek(Token![+]) {
            input.parse::<Token![+]>()?;
            '+'
        } else {
            input.parse::<Token![-]>()?;
            '-'
        };
        let lit: Lit = input.parse()?;
        if !matches!(lit, Lit::Int(_) | Lit::Float(_)) {
            return Err(syn::Error::new_spanned(lit, "a margin is a number, like `+ 0.05`"));
        }
        Some((sign, lit))
    } else {
        None
    };
    if !input.is_empty() && !input.peek(Token![,]) {
        return Err(input.error("unexpected tokens after the hypothesis; separate several with `,`"));
    }
    Ok(Expectation { left, op, right, margin })
}

/// Parses `content` of `expect(...)`: hypotheses separated by commas. `bare_left` allows a left
/// side without condition (in a treatment).
pub fn parse(content: TokenStream, bare_left: bool, errors: &mut Errors) -> Vec<Expectation> {
    let parser = |input: ParseStream| {
        let mut all = Vec::new();
        while !input.is_empty() {
            all.push(parse_one(input, bare_left)?);
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(all)
    };
    match parser.parse2(content.clone()) {
        Ok(all) if all.is_empty() => {
            errors.at(
                proc_macro2::Span::call_site(),
                "`expect(...)` takes a hypothesis: `expect(dolphin.win < baseline.win)`",
            );
            Vec::new()
        }
        Ok(all) => all,
        Err(error) => {
            errors.push(error);
            Vec::new()
        }
    }
}

/// A function, never called, that reads every metric an expectation names from `metrics` (of
/// type `metrics_type`): a misspelt metric is rustc's "no field" error at the user's token, with
/// its suggestion; an experiment without declared metrics fails at `expect`.
pub fn render_check(
    krate: &syn::Path,
    metrics_type: &TokenStream,
    expect_key: &Ident,
    all: &[Expectation],
) -> TokenStream {
    if all.is_empty() {
        return quote!();
    }
    let reads = all.iter().flat_map(|e| [&e.left.metric, &e.right.metric]).map(|metric| {
        let target = quote_spanned!(metric.span()=> metrics.#metric);
        quote!(let _ = &#target;)
    });
    let declared = crate::args::krate_spanned! {krate, expect_key.span()=>
        <#metrics_type as #krate::__private::ExpectsMetrics>::Declared
    };
    // The whole function is spanned at `expect`: an experiment without declared metrics is then
    // one error there (the signature's and the type's are the same diagnostic, merged).
    let check = quote_spanned! {expect_key.span()=>
        #[allow(dead_code)]
        fn __crystallize_check_expect(metrics: &#declared) {
            #(#reads)*
        }
    };
    quote! {
        const _: () = {
            #check
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn parsed(tokens: TokenStream, bare_left: bool) -> Result<Vec<String>, String> {
        let mut errors = Errors::default();
        let all = parse(tokens, bare_left, &mut errors);
        errors.finish(all.iter().map(|e| e.text("hot")).collect()).map_err(|e| e.to_string())
    }

    #[test]
    fn spells_hypotheses_as_the_runtime_reads_them() {
        assert_eq!(parsed(quote!(dolphin.win < baseline.win), false).unwrap(), ["dolphin.win < baseline.win"]);
        assert_eq!(
            parsed(quote!(win >= baseline.win - 0.05, rounds != baseline.rounds), true).unwrap(),
            ["hot.win >= baseline.win - 0.05", "hot.rounds != baseline.rounds"]
        );
    }

    #[test]
    fn rejects_bad_operators_and_incomplete_sides() {
        assert!(parsed(quote!(a.win == b.win), false).unwrap_err().contains("equality it cannot"));
        assert!(parsed(quote!(a.win => b.win), false).unwrap_err().contains("expected a comparison"));
        assert!(parsed(quote!(win < b.win), false).unwrap_err().contains("name the condition and the metric"));
        assert!(parsed(quote!(a.win < win), true).unwrap_err().contains("`baseline.win`"));
        assert!(parsed(quote!(a.win < b.win c), false).unwrap_err().contains("unexpected tokens"));
        assert!(parsed(quote!(), false).unwrap_err().contains("takes a hypothesis"));
    }
}
