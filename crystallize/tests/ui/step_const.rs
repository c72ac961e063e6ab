use crystallize::prelude::*;

#[step]
const fn double(x: u32) -> u32 {
    x * 2
}

crystallize::main!();
