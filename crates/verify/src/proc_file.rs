//! What the readers of `/proc` text files share: reading one through the [`Root`] into a
//! value or a single [`Unknown`], and walking the `cpuN` lines that `/proc/stat` and
//! `/proc/schedstat` both carry.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::SplitAsciiWhitespace;

use nearnative_host::{Root, Unknown};

/// Reads `path` and parses it with `parse`; a file that cannot be read or parsed is one
/// unknown about `object`, naming the file.
pub(crate) fn read_parsed<T>(
    root: &Root,
    path: &str,
    object: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, Unknown> {
    let text = root
        .read_to_string(path)
        .map_err(|e| Unknown::from_error(object, &e))?;
    parse(&text).map_err(|reason| Unknown {
        object: object.to_owned(),
        path: PathBuf::from(path),
        reason,
    })
}

/// Each `cpuN` line of `text`, turned by `parse` (given the CPU, the whole line for error
/// messages, and the fields after the label) into a value, by CPU. Other lines (the all-CPU
/// `cpu` total, `version`, `domain...`) are passed over; a text without a `cpuN` line is
/// refused, since every kernel prints one per online CPU.
pub(crate) fn per_cpu_lines<T>(
    text: &str,
    mut parse: impl FnMut(u32, &str, SplitAsciiWhitespace<'_>) -> Result<T, String>,
) -> Result<BTreeMap<u32, T>, String> {
    let mut cpus = BTreeMap::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(cpu) = fields
            .next()
            .and_then(|label| label.strip_prefix("cpu"))
            .filter(|id| !id.is_empty())
        else {
            continue;
        };
        let cpu: u32 = cpu
            .parse()
            .map_err(|_| format!("bad CPU label in {line:?}"))?;
        cpus.insert(cpu, parse(cpu, line, fields)?);
    }
    match cpus.is_empty() {
        true => Err("no cpuN lines".to_owned()),
        false => Ok(cpus),
    }
}
