//! Compile-fail UI tests of the attribute macros: every misuse a user can make, each in its own
//! program under `tests/ui/`, with the compiler's output pinned in the `.stderr` beside it. Each
//! error must point at the user's tokens and say what would be valid.
//!
//! After a deliberate change to a message: `TRYBUILD=overwrite cargo test -p crystallize --test
//! compile_fail`, then read every changed `.stderr`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    // A valid program using every attribute shape compiles, and its registry lists every part.
    t.pass("tests/ui/pass/*.rs");
}
