//! Durations as users write them, on the command line (`--timeout 120s`) and in
//! `crystallize.toml` (`timeout = "2min"`): a whole number and a unit.

use std::time::Duration;

/// The longest deadline accepted: a deadline of more than a year is no deadline, and is refused
/// rather than overflowing a timer.
const LONGEST_MS: u64 = 365 * 24 * 3_600_000;

/// Parses `500ms`, `120s`, `2min` (or `2m`), `1h`: a whole number more than 0 and at most a year.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let invalid = || format!("'{text}' is not a duration; write a whole number and a unit: 500ms, 120s, 2min, 1h");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(invalid)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let millis = match unit {
        "ms" => Some(number),
        "s" => number.checked_mul(1_000),
        "min" | "m" => number.checked_mul(60_000),
        "h" => number.checked_mul(3_600_000),
        _ => return Err(invalid()),
    };
    match millis {
        Some(0) => Err(format!("'{text}' is no time at all; a deadline must be more than 0")),
        Some(millis) if millis <= LONGEST_MS => Ok(Duration::from_millis(millis)),
        _ => Err(format!("'{text}' is longer than a year")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_unit_and_refuses_the_rest() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("120s"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("2min"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "5", "5x", "s", "-1s", "1.5s", "0s", "9999999999h", "18446744073709551616ms"] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
