//! `trivial-cli`: the bench's experiments behind crystallize's own command line
//! (`crystallize::main!()`), so that `cargo xtask bench` can measure the commands a user runs
//! (`run`, `report`) on runs of a million trivial units: their time and their peak memory.

#[allow(dead_code)] // The library-API helpers of the bench binary; only the experiments are used here.
mod trivial;

crystallize::main!();
