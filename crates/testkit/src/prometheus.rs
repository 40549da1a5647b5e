//! A strict reader of the Prometheus text format (0.0.4), for the tests of the daemon's
//! metrics: it panics with the offending line on any departure from the format or from the
//! house rules (the `nearnative_` prefix, HELP and TYPE for every family, complete
//! histograms).

use std::collections::{BTreeMap, BTreeSet};

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses `text` strictly, panicking with the offending line on any departure from the
/// format or from the house rules (the `nearnative_` prefix, HELP and TYPE for every family,
/// complete histograms).
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    assert!(text.ends_with('\n'), "ends with a newline");
    let mut helps = BTreeSet::new();
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect(line);
            check_name(name, line);
            assert!(!help.is_empty(), "empty help: {line}");
            assert!(helps.insert(name.to_owned()), "second HELP: {line}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect(line);
            check_name(name, line);
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "type: {line}"
            );
            assert!(helps.contains(name), "TYPE before its HELP: {line}");
            let previous = types.insert(name.to_owned(), kind.to_owned());
            assert!(previous.is_none(), "second TYPE: {line}");
        } else {
            let sample = parse_sample(line);
            let family = family_of(&sample.name, &types);
            assert!(family.is_some(), "sample without a TYPE before it: {line}");
            samples.push(sample);
        }
    }
    for (name, kind) in &types {
        let of_family: Vec<&Sample> = samples
            .iter()
            .filter(|s| family_of(&s.name, &types).as_deref() == Some(name))
            .collect();
        assert!(!of_family.is_empty(), "{name} has no samples");
        match kind.as_str() {
            "histogram" => check_histogram(name, &of_family),
            "counter" => assert!(name.ends_with("_total"), "counter name {name}"),
            _ => {}
        }
    }
    samples
}

fn check_name(name: &str, line: &str) {
    assert!(name.starts_with("nearnative_"), "prefix: {line}");
    assert!(
        name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "name characters: {line}"
    );
}

/// The family a sample name belongs to: itself, or a histogram's name for its parts.
fn family_of(name: &str, types: &BTreeMap<String, String>) -> Option<String> {
    if types.contains_key(name) {
        return Some(name.to_owned());
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = name.strip_suffix(suffix)?;
        (types.get(base)? == "histogram").then(|| base.to_owned())
    })
}

/// `name{label="value",...} value` or `name value`.
fn parse_sample(line: &str) -> Sample {
    let name_end = line
        .find(['{', ' '])
        .unwrap_or_else(|| panic!("no value: {line}"));
    let name = &line[..name_end];
    check_name(name, line);
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = after_brace;
        loop {
            let (key, after_key) = rest
                .split_once("=\"")
                .unwrap_or_else(|| panic!("label: {line}"));
            assert!(
                !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "label name {key:?}: {line}"
            );
            let (value, after_value) = label_value(after_key, line);
            assert!(
                labels.insert(key.to_owned(), value).is_none(),
                "label twice: {line}"
            );
            rest = after_value;
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            } else if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            } else {
                panic!("after a label value: {line}");
            }
        }
    }
    let value = rest
        .strip_prefix(' ')
        .unwrap_or_else(|| panic!("one space before the value: {line}"));
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("value {v:?}: {line}")),
    };
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

/// An escaped label value up to its closing quote, and what follows the quote.
fn label_value<'a>(text: &'a str, line: &str) -> (String, &'a str) {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (value, &text[i + 1..]),
            '\\' => match chars.next() {
                Some((_, '\\')) => value.push('\\'),
                Some((_, '"')) => value.push('"'),
                Some((_, 'n')) => value.push('\n'),
                other => panic!("escape {other:?}: {line}"),
            },
            '\n' => panic!("raw newline: {line}"),
            c => value.push(c),
        }
    }
    panic!("unterminated label value: {line}")
}

fn check_histogram(name: &str, samples: &[&Sample]) {
    let part = |suffix: &str| -> Vec<&Sample> {
        samples
            .iter()
            .copied()
            .filter(|s| s.name == format!("{name}{suffix}"))
            .collect()
    };
    let buckets = part("_bucket");
    let (sum, count) = (part("_sum"), part("_count"));
    assert_eq!(
        (sum.len(), count.len()),
        (1, 1),
        "{name}: one _sum, one _count"
    );
    let mut last = 0.0;
    for bucket in &buckets {
        assert!(
            bucket.labels.contains_key("le"),
            "{name}: bucket without le"
        );
        assert!(bucket.value >= last, "{name}: buckets are cumulative");
        last = bucket.value;
    }
    let inf = buckets
        .iter()
        .find(|b| b.labels["le"] == "+Inf")
        .unwrap_or_else(|| panic!("{name}: no le=\"+Inf\" bucket"));
    assert_eq!(
        inf.value, count[0].value,
        "{name}: +Inf bucket equals _count"
    );
}

/// The value of the one sample named `name` whose labels include `labels`.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0].value
}

/// Each `workload` label's value of the samples named `name`.
pub fn workload_values(samples: &[Sample], name: &str) -> BTreeMap<String, f64> {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| (s.labels["workload"].clone(), s.value))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_validator_rejects_what_it_must() {
        let good = "# HELP nearnative_x_total X.\n# TYPE nearnative_x_total counter\n\
            nearnative_x_total{a=\"q\\\"\"} 3\n";
        assert_eq!(parse_exposition(good)[0].labels["a"], "q\"");
        let bad = [
            ("no TYPE", "# HELP nearnative_x X.\nnearnative_x 1\n"),
            ("no prefix", "# HELP x X.\n# TYPE x gauge\nx 1\n"),
            ("no HELP", "# TYPE nearnative_x gauge\nnearnative_x 1\n"),
            (
                "bad value",
                "# HELP nearnative_x X.\n# TYPE nearnative_x gauge\nnearnative_x one\n",
            ),
            (
                "unquoted label",
                "# HELP nearnative_x X.\n# TYPE nearnative_x gauge\nnearnative_x{a=b} 1\n",
            ),
            (
                "histogram without +Inf",
                "# HELP nearnative_h X.\n# TYPE nearnative_h histogram\n\
                 nearnative_h_bucket{le=\"1\"} 1\nnearnative_h_sum 1\nnearnative_h_count 1\n",
            ),
        ];
        for (what, text) in bad {
            let text = text.to_owned();
            let refused = std::panic::catch_unwind(move || parse_exposition(&text)).is_err();
            assert!(refused, "{what}");
        }
    }
}
