//! Durations as users type them: `2s`, `500ms`, `100us`, `250ns`, `1m`, or bare seconds.

use std::time::Duration;

/// The longest duration accepted: a year. Anything longer is a typo, and a deadline that far
/// (`now + 2^64 ms`) overflows the clock, which would silently skip what it times.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses a duration. The message names the reason only; clap or the caller adds the argument
/// and the text, so nothing is said twice.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let seconds = match text.parse::<f64>() {
        Ok(seconds) => seconds,
        Err(_) => seconds_with_unit(text)?,
    };
    match Duration::try_from_secs_f64(seconds) {
        Ok(duration) if duration <= MAX_DURATION => Ok(duration),
        _ => Err("out of range: at most a year (365 days)".to_owned()),
    }
}

fn seconds_with_unit(text: &str) -> Result<f64, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| "not a duration such as 2s, 500ms or 100us".to_owned())?;
    let seconds_per_unit = match unit {
        "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "ns" => 1e-9,
        "m" | "min" => 60.0,
        other => return Err(format!("unknown unit {other:?}: use ns, us, ms, s or m")),
    };
    Ok(value * seconds_per_unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        let cases = [
            ("seconds", "2s", Some(Duration::from_secs(2))),
            ("bare seconds", "1.5", Some(Duration::from_millis(1500))),
            ("bare scientific", "1e3", Some(Duration::from_secs(1000))),
            ("milliseconds", "500ms", Some(Duration::from_millis(500))),
            ("microseconds", "100us", Some(Duration::from_micros(100))),
            ("minutes", "1m", Some(Duration::from_secs(60))),
            ("no number", "ms", None),
            ("unknown unit", "3h", None),
            ("negative", "-1s", None),
            ("negative bare", "-1", None),
            ("not finite", "inf", None),
            ("a year", "525600m", Some(MAX_DURATION)),
            ("past a year", "525601m", None),
            ("u64::MAX ms", "18446744073709551615ms", None),
        ];
        for (what, text, want) in cases {
            assert_eq!(parse_duration(text).ok(), want, "{what}");
        }
    }
}
