//! One policy file's text → its [`Policy`]s, or the first error with its line.
//!
//! The file is read as a spanned TOML document rather than deserialized into a struct, so
//! every error can name the line of the key or value at fault, and an unknown key is refused
//! rather than ignored (a misspelt `on_drfit` silently doing nothing would be worse).

use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::options::{canonical, Options, OPTION_NAMES};
use super::{OnDrift, Policy, PolicyError, TargetPattern};

/// The one top-level key of a policy file.
const WORKLOAD: &str = "workload";

/// Line numbers of byte offsets in one text.
struct Lines<'t> {
    text: &'t str,
}

impl Lines<'_> {
    /// The 1-based line holding byte `offset`.
    fn of(&self, offset: usize) -> usize {
        let before = self.text.get(..offset).unwrap_or(self.text);
        before.matches('\n').count() + 1
    }

    fn of_span(&self, span: &Range<usize>) -> usize {
        self.of(span.start)
    }
}

/// A file's policies, in table order, or the first error (the file is then rejected whole).
pub fn parse_file(path: &Path, text: &str) -> Result<Vec<Policy>, PolicyError> {
    let lines = Lines { text };
    let error = |span: Option<Range<usize>>, reason: String| PolicyError {
        file: path.to_owned(),
        line: span.map(|s| lines.of_span(&s)),
        reason,
    };
    let document = DeTable::parse(text).map_err(|e| error(e.span(), syntax(e.message())))?;
    let mut tables = Vec::new();
    for (key, value) in in_source_order(document.get_ref()) {
        if key.get_ref() != WORKLOAD {
            let reason = format!(
                "unknown key {:?}: a policy file holds [[workload]] tables only",
                key.get_ref()
            );
            return Err(error(Some(key.span()), reason));
        }
        match value.get_ref() {
            DeValue::Array(array) if array.iter().all(|t| t.get_ref().is_table()) => {
                tables.extend(array.iter())
            }
            _ => {
                let reason = "workload: expected [[workload]] tables".to_owned();
                return Err(error(Some(key.span()), reason));
            }
        }
    }
    let parse = |table: &Spanned<DeValue>| {
        parse_table(path, table, &lines).map_err(|(span, reason)| error(Some(span), reason))
    };
    tables.into_iter().map(parse).collect()
}

/// The parser's message, one line: its first, which says what is wrong.
fn syntax(message: &str) -> String {
    let first = message.lines().next().unwrap_or(message).trim();
    format!("not valid TOML: {first}")
}

/// A table's entries by their place in the file (the table itself is sorted by key), so the
/// first error reported is the first in the file.
fn in_source_order<'t, 'i>(
    table: &'t DeTable<'i>,
) -> Vec<(
    &'t Spanned<toml::de::DeString<'i>>,
    &'t Spanned<DeValue<'i>>,
)> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    entries
}

type TableError = (Range<usize>, String);

fn parse_table(path: &Path, table: &Spanned<DeValue>, lines: &Lines) -> Result<Policy, TableError> {
    let entries = match table.get_ref() {
        DeValue::Table(entries) => entries,
        other => {
            let reason = format!("workload: expected a table, not {}", other.type_str());
            return Err((table.span(), reason));
        }
    };
    let mut target = None;
    let mut on_drift = OnDrift::default();
    let mut options = Options::default();
    for (key, value) in in_source_order(entries) {
        let name = key.get_ref().as_ref();
        let bad_value = |reason: String| (value.span(), format!("{name}: {reason}"));
        match name {
            "target" => target = Some(TargetPattern::parse(value.get_ref()).map_err(bad_value)?),
            "on_drift" | "on-drift" => {
                on_drift = OnDrift::parse(value.get_ref()).map_err(bad_value)?
            }
            _ => match canonical(name) {
                Some(option) => options.set(option, value.get_ref()).map_err(bad_value)?,
                None => return Err((key.span(), unknown_key(name))),
            },
        }
    }
    let Some(target) = target else {
        let reason = "this [[workload]] has no target (vm:GLOB, cgroup:/GLOB or process:GLOB)";
        return Err((table.span(), reason.to_owned()));
    };
    if options.has_vcpus() && !matches!(target, TargetPattern::Vm(_)) {
        let span = key_span(entries, "vcpus").unwrap_or_else(|| table.span());
        let reason = format!("vcpus: only for vm: targets, not {target}");
        return Err((span, reason));
    }
    Ok(Policy {
        file: path.to_owned(),
        line: lines.of_span(&table.span()),
        target,
        on_drift,
        options,
    })
}

fn key_span(entries: &DeTable, name: &str) -> Option<Range<usize>> {
    entries
        .keys()
        .find(|key| key.get_ref() == name)
        .map(Spanned::span)
}

/// Why `name` is refused, with what is accepted.
fn unknown_key(name: &str) -> String {
    let why = match name {
        "threads" => "thread ids are for pid: targets, and a policy's glob has no threads until \
                      a process matches; name the process and let every thread be placed"
            .to_owned(),
        _ => "not an option of a policy".to_owned(),
    };
    format!(
        "unknown key {name:?} ({why}); accepted: target, on_drift, {}",
        OPTION_NAMES.join(", ")
    )
}

impl TargetPattern {
    /// `vm:GLOB`, `cgroup:/GLOB` or `process:GLOB`.
    fn parse(value: &DeValue) -> Result<TargetPattern, String> {
        let text = value
            .as_str()
            .ok_or_else(|| format!("expected a string, not {}", value.type_str()))?;
        let glob = |pattern: &str| {
            glob::Pattern::new(pattern).map_err(|e| format!("{text:?}: bad glob: {}", e.msg))
        };
        match text.split_once(':') {
            Some(("vm", name)) if !name.is_empty() => glob(name).map(TargetPattern::Vm),
            Some(("process", name)) if !name.is_empty() => glob(name).map(TargetPattern::Process),
            Some(("cgroup", path)) if path.starts_with('/') => {
                glob(path).map(TargetPattern::Cgroup)
            }
            Some(("pid" | "vm-pid", _)) => Err(format!(
                "{text:?}: a policy outlives process ids; name the VM (vm:GLOB) or the process \
                 (process:GLOB)"
            )),
            _ => Err(format!(
                "{text:?} is not vm:GLOB, cgroup:/GLOB or process:GLOB"
            )),
        }
    }
}

impl OnDrift {
    fn parse(value: &DeValue) -> Result<OnDrift, String> {
        match value.as_str() {
            Some("repair") => Ok(OnDrift::Repair),
            Some("report") => Ok(OnDrift::Report),
            Some(other) => Err(format!("{other:?} is not one of: repair, report")),
            None => Err(format!(
                "expected \"repair\" or \"report\", not {}",
                value.type_str()
            )),
        }
    }
}
