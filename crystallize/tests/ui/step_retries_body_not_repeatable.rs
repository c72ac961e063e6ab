use crystallize::prelude::*;
use crystallize::results::Failure;

struct Judge;

impl Judge {
    #[step(retries = 2)]
    fn verdict(self, text: &str) -> Result<u32, Failure> {
        Ok(text.len() as u32)
    }
}

#[step(retries = 2)]
fn split((a, b): (u32, u32)) -> Result<u32, Failure> {
    Ok(a + b)
}

/// Not `Clone`: it cannot be handed to a second attempt.
struct Transcript(String);

#[step(retries = 2)]
fn score(transcript: Transcript) -> Result<usize, Failure> {
    Ok(transcript.0.len())
}

#[step(retries = 101, timeout = 5)]
async fn ask(x: u32) -> Result<u32, Failure> {
    Ok(x)
}

crystallize::main!();
