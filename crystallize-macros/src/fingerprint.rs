//! Code fingerprints: a stable hash of an annotated item's tokens, so that editing a step changes
//! that step's fingerprint (and the drift guard of a resumed run can name it).

use proc_macro2::TokenStream;

/// FNV-1a (64 bit) over the item's tokens as rustc prints them. Whitespace and comments are not
/// tokens, so reformatting does not change a fingerprint; any edit to code does.
pub fn of_tokens(tokens: &TokenStream) -> u64 {
    let text = tokens.to_string();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn formatting_does_not_change_the_fingerprint() {
        let a = quote! { fn f(x: u32) -> u32 { x + 1 } };
        let b: TokenStream = "fn f( x : u32 )->u32{\n    x+1 // comment\n}".parse().unwrap();
        assert_eq!(of_tokens(&a), of_tokens(&b));
    }

    #[test]
    fn an_edit_changes_the_fingerprint() {
        let a = quote! { fn f(x: u32) -> u32 { x + 1 } };
        let b = quote! { fn f(x: u32) -> u32 { x + 2 } };
        assert_ne!(of_tokens(&a), of_tokens(&b));
    }
}
