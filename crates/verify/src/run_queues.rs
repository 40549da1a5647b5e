//! Each CPU's total run time from `/proc/schedstat`: how long tasks ran on it, in nanoseconds.
//!
//! The file needs `CONFIG_SCHEDSTATS`. It starts with `version N`, and each CPU has a line
//! `cpuN f1 .. f9` followed by its scheduling domains. In versions 15 to 17 (every kernel
//! since 2.6.20; 16 and 17 changed only the domain lines) the seventh field is the CPU's
//! `rq_cpu_time`: the run time of every task but the idle task, credited when a task leaves
//! the CPU. A thread that never leaves the CPU is therefore credited late, not never. Unknown
//! versions are refused rather than guessed at.

use std::collections::BTreeMap;

use nearnative_host::{Root, Unknown};

use crate::proc_file::{per_cpu_lines, read_parsed};

pub const SCHEDSTAT: &str = "/proc/schedstat";

/// The versions whose CPU lines this parser knows.
const KNOWN_VERSIONS: std::ops::RangeInclusive<u32> = 15..=17;
/// `rq_cpu_time` is the seventh number of a CPU line.
const RUN_TIME_FIELD: usize = 6;

/// Run time per CPU, in nanoseconds, from the text of `/proc/schedstat`.
pub fn parse_cpu_run_time(text: &str) -> Result<BTreeMap<u32, u64>, String> {
    check_version(text)?;
    per_cpu_lines(text, |cpu, line, mut fields| {
        fields
            .nth(RUN_TIME_FIELD)
            .ok_or_else(|| format!("cpu{cpu} has fewer than {} fields", RUN_TIME_FIELD + 1))?
            .parse()
            .map_err(|_| format!("bad run time in {line:?}"))
    })
}

fn check_version(text: &str) -> Result<(), String> {
    let version = text
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("version "))
        .ok_or("no version line")?;
    match version.trim().parse::<u32>() {
        Ok(v) if KNOWN_VERSIONS.contains(&v) => Ok(()),
        _ => Err(format!("unknown version {:?}", version.trim())),
    }
}

/// Reads `/proc/schedstat`; a file that is missing (a kernel without `CONFIG_SCHEDSTATS`),
/// unreadable or of an unknown version is an unknown.
pub fn read_cpu_run_time(root: &Root) -> Result<BTreeMap<u32, u64>, Unknown> {
    read_parsed(root, SCHEDSTAT, "CPU run time", parse_cpu_run_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V15: &str = "version 15\ntimestamp 4297299139\n\
        cpu0 0 0 1054 402 612 351 5103420010 109812 660\n\
        domain0 3 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n\
        cpu1 0 0 898 377 530 302 4200 98000 512\n";

    #[test]
    fn run_time_is_the_seventh_field_of_each_cpu_line() {
        let got = parse_cpu_run_time(V15).unwrap();
        assert_eq!(got, BTreeMap::from([(0, 5_103_420_010), (1, 4200)]));
    }

    #[test]
    fn refusals() {
        let cases = [
            ("no version", "cpu0 0 0 1 2 3 4 5 6 7\n", "no version line"),
            (
                "future version",
                "version 99\ncpu0 0 0 1 2 3 4 5 6 7\n",
                "unknown version",
            ),
            ("short line", "version 15\ncpu0 0 0 1 2 3\n", "fewer than 7"),
            (
                "bad number",
                "version 15\ncpu0 0 0 1 2 3 4 x 6 7\n",
                "bad run time",
            ),
            ("no cpus", "version 15\ntimestamp 1\n", "no cpuN lines"),
        ];
        for (what, text, reason) in cases {
            let err = parse_cpu_run_time(text).unwrap_err();
            assert!(err.contains(reason), "{what}: {err}");
        }
    }

    #[test]
    fn a_missing_file_is_an_unknown_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let unknown = read_cpu_run_time(&Root::new(dir.path())).unwrap_err();
        assert!(unknown.path.ends_with("proc/schedstat"), "{unknown:?}");
        assert_eq!(unknown.reason, "not found");
    }
}
