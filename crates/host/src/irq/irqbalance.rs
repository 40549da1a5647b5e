//! irqbalance: whether it runs, and which CPUs it is told to keep IRQs off.
//!
//! A running irqbalance rewrites IRQ affinities every ten seconds, undoing any steering
//! that leaves out CPUs it was not told about. It takes its banned CPUs from the environment
//! (`IRQBALANCE_BANNED_CPULIST`, or the older mask form `IRQBALANCE_BANNED_CPUS`), which
//! systemd fills from `/etc/default/irqbalance` (Debian) or `/etc/sysconfig/irqbalance`
//! (Red Hat). The running process's environment is the truth; the files say what the next
//! start will use.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::collect::Collector;
use crate::CpuSet;

const CONFIG_FILES: [&str; 2] = ["/etc/default/irqbalance", "/etc/sysconfig/irqbalance"];
const LIST_VAR: &str = "IRQBALANCE_BANNED_CPULIST";
const MASK_VAR: &str = "IRQBALANCE_BANNED_CPUS";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IrqBalance {
    /// PIDs of processes whose `comm` is `irqbalance`; empty when it is not running.
    pub pids: Vec<u32>,
    /// The CPUs it must leave alone; `None` when no source sets any.
    pub banned_cpus: Option<CpuSet>,
    /// Where `banned_cpus` came from: `/proc/PID/environ` or a config file.
    pub banned_source: Option<PathBuf>,
}

impl IrqBalance {
    pub fn is_running(&self) -> bool {
        !self.pids.is_empty()
    }
}

pub(crate) fn read(collect: &mut Collector) -> IrqBalance {
    let pids = running_pids(collect);
    let mut sources: Vec<String> = pids.iter().map(|p| format!("/proc/{p}/environ")).collect();
    sources.extend(CONFIG_FILES.iter().map(|f| f.to_string()));
    let mut balance = IrqBalance {
        pids,
        ..IrqBalance::default()
    };
    for source in sources {
        let Some(vars) = read_vars(collect, &source) else {
            continue;
        };
        match banned_from_vars(&vars) {
            Some(Ok(set)) => {
                balance.banned_cpus = Some(set);
                balance.banned_source = Some(source.into());
                break;
            }
            Some(Err(reason)) => collect.malformed("irqbalance banned CPUs", &source, reason),
            None if source.starts_with("/proc") => break,
            None => {}
        }
    }
    balance
}

/// A running process's environment rules over the config files, so a readable environ
/// without the variables ends the search (see the caller).
fn read_vars(collect: &mut Collector, source: &str) -> Option<Vec<(String, String)>> {
    match collect.root.read_to_string(source) {
        Ok(text) if source.starts_with("/proc") => Some(environ_vars(&text)),
        Ok(text) => Some(shell_assignments(&text)),
        Err(err) if err.is_not_found() => None,
        Err(err) => collect.failed("irqbalance banned CPUs", &err),
    }
}

fn running_pids(collect: &mut Collector) -> Vec<u32> {
    let Some(names) = collect.list_dir("running processes", "/proc") else {
        return Vec::new();
    };
    names
        .iter()
        .filter_map(|name| name.parse::<u32>().ok())
        .filter(|pid| {
            // Processes come and go while we scan; a vanished one is simply not irqbalance.
            collect
                .root
                .read_trimmed(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm == "irqbalance")
        })
        .collect()
}

/// The banned set from the list variable, else the mask variable. An empty value bans none.
pub fn banned_from_vars(vars: &[(String, String)]) -> Option<Result<CpuSet, String>> {
    let find = |key: &str| vars.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v);
    if let Some(list) = find(LIST_VAR) {
        return Some(CpuSet::parse_list(list).map_err(|e| format!("{LIST_VAR}: {e}")));
    }
    let mask = find(MASK_VAR)?;
    if mask.trim().is_empty() {
        return Some(Ok(CpuSet::new()));
    }
    Some(CpuSet::parse_mask(mask).map_err(|e| format!("{MASK_VAR}: {e}")))
}

/// `KEY=value` pairs of a NUL-separated `/proc/PID/environ`.
pub fn environ_vars(text: &str) -> Vec<(String, String)> {
    text.split('\0')
        .filter_map(|entry| entry.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// `KEY=value` lines of a shell-style environment file: comments, blank lines, `export`
/// and one level of single or double quotes are understood; anything else is skipped.
pub fn shell_assignments(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .map(|line| line.strip_prefix("export ").unwrap_or(line))
        .filter_map(|line| line.split_once('='))
        .filter(|(key, _)| is_identifier(key))
        .map(|(key, value)| (key.to_owned(), unquote(value.trim()).to_owned()))
        .collect()
}

fn is_identifier(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner;
        }
    }
    value.split(" #").next().unwrap_or(value).trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parsers_never_panic(text in "(?s).{0,200}") {
            let _ = banned_from_vars(&shell_assignments(&text));
            let _ = banned_from_vars(&environ_vars(&text));
        }
    }

    #[test]
    fn config_files_parse_like_the_shell() {
        let text = "# Configuration for the irqbalance daemon\n\
                    #IRQBALANCE_BANNED_CPUS=ff\n\
                    IRQBALANCE_ONESHOT=\n\
                    export IRQBALANCE_BANNED_CPULIST=\"2-3\"\n\
                    OPTIONS='--policyscript=/x'\n\
                    bad key=1\n";
        let vars = shell_assignments(text);
        assert_eq!(
            vars,
            [
                ("IRQBALANCE_ONESHOT".to_owned(), String::new()),
                ("IRQBALANCE_BANNED_CPULIST".to_owned(), "2-3".to_owned()),
                ("OPTIONS".to_owned(), "--policyscript=/x".to_owned()),
            ]
        );
    }

    #[test]
    fn banned_cpus_prefer_the_list_form() {
        let vars = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let cases = [
            ("none set", vars(&[("PATH", "/bin")]), None),
            ("mask", vars(&[(MASK_VAR, "0000000c")]), Some(Ok("2-3"))),
            (
                "empty mask bans none",
                vars(&[(MASK_VAR, "")]),
                Some(Ok("")),
            ),
            (
                "list wins",
                vars(&[(MASK_VAR, "f"), (LIST_VAR, "1")]),
                Some(Ok("1")),
            ),
            ("bad list", vars(&[(LIST_VAR, "x")]), Some(Err(()))),
        ];
        for (what, vars, want) in cases {
            let got = banned_from_vars(&vars).map(|r| r.map(|s| s.to_list()).map_err(|_| ()));
            let want = want.map(|r| r.map(str::to_owned));
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn environ_is_nul_separated() {
        let vars = environ_vars("A=1\0IRQBALANCE_BANNED_CPULIST=3\0\0junk\0");
        assert_eq!(vars.len(), 2);
        assert_eq!(vars[1].1, "3");
    }
}
