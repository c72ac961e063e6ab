use crystallize::prelude::*;

#[step(cache(sharde))]
fn a(x: u32) -> u32 {
    x
}

#[step(cache(skip(clinet)))]
fn b(client: u32, x: u32) -> u32 {
    client + x
}

#[step(cache, version = 2)]
fn c(x: u32) -> u32 {
    x
}

#[step(cache(version = "2"))]
fn d(x: u32) -> u32 {
    x
}

#[step(cache)]
fn e((x, y): (u32, u32)) -> u32 {
    x + y
}

#[step(cache)]
fn f(x: u32) -> impl Fn() -> u32 {
    move || x
}

crystallize::main!();
