//! How the report writes numbers: latencies in µs and ratios, with about three significant
//! digits, which is all an HDR histogram of three significant digits can back.

/// `ns` in µs: two decimals below 10 µs, one below 100 µs, none above.
pub fn micros(ns: u64) -> String {
    let us = ns as f64 / 1000.0;
    if us < 10.0 {
        format!("{us:.2}")
    } else if us < 100.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.0}")
    }
}

/// A ratio such as `1.04×`; `-` when it is not a finite number (a zero baseline).
pub fn ratio(value: f64) -> String {
    if !value.is_finite() {
        "-".to_owned()
    } else if value < 10.0 {
        format!("{value:.2}×")
    } else if value < 100.0 {
        format!("{value:.1}×")
    } else {
        format!("{value:.0}×")
    }
}

/// `numerator / denominator` as a ratio of latencies; not finite when the denominator is 0.
pub fn ratio_of(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        return f64::NAN;
    }
    numerator as f64 / denominator as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_about_three_digits() {
        let cases = [
            ("sub-µs", micros(850), "0.85"),
            ("single µs", micros(9_994), "9.99"),
            ("tens", micros(18_260), "18.3"),
            ("hundreds", micros(312_400), "312"),
            ("huge", micros(u64::MAX), "18446744073709552"),
            ("ratio near one", ratio(1.0449), "1.04×"),
            ("ratio tens", ratio(12.34), "12.3×"),
            ("ratio hundreds", ratio(456.7), "457×"),
            ("no baseline", ratio(ratio_of(5, 0)), "-"),
        ];
        for (what, got, want) in cases {
            assert_eq!(got, want, "{what}");
        }
    }
}
