//! Boot-time isolation on the kernel command line: `isolcpus=` (with its flags), `nohz_full=`,
//! `rcu_nocbs=` and `irqaffinity=`. These only take effect at boot, so they are read, never
//! written: plans turn them into advice.

use serde::{Deserialize, Serialize};

use crate::cpuset::CpuSetError;
use crate::CpuSet;

/// What the command line asks for. `None` when the parameter is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootIsolation {
    pub isolcpus: Option<Isolcpus>,
    pub nohz_full: Option<CpuSet>,
    /// Empty when given without a list (offloading can then be switched on at run time).
    pub rcu_nocbs: Option<CpuSet>,
    pub irqaffinity: Option<CpuSet>,
}

/// `isolcpus=[flag,...,]cpu-list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Isolcpus {
    pub cpus: CpuSet,
    /// The flags in effect; `domain` alone when none are given, as the kernel does.
    pub flags: Vec<IsolcpusFlag>,
    /// Flags the kernel does not know and skips.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_flags: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IsolcpusFlag {
    /// Out of the scheduler's load-balancing domains.
    Domain,
    /// Managed interrupts (multi-queue devices) avoid the CPUs where they can.
    ManagedIrq,
    /// Timer ticks stopped, as with `nohz_full=`.
    Nohz,
}

/// A parameter whose value the kernel would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param}={value:?}: {source}")]
pub struct BadParam {
    pub param: &'static str,
    pub value: String,
    #[source]
    pub source: CpuSetError,
}

/// Splits a command line into `name[=value]` words the way the kernel's `next_arg` does:
/// double quotes group spaces and are dropped, and everything after `--` is for init.
pub fn params(cmdline: &str) -> Vec<(String, Option<String>)> {
    let mut params = Vec::new();
    let mut word = String::new();
    let mut in_quote = false;
    let mut chars = cmdline.chars().peekable();
    while chars.peek().is_some() {
        word.clear();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() && !in_quote {
                break;
            }
            chars.next();
            if c == '"' {
                in_quote = !in_quote;
            } else {
                word.push(c);
            }
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if word == "--" {
            break;
        }
        if !word.is_empty() {
            params.push(match word.split_once('=') {
                Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
                None => (word.clone(), None),
            });
        }
    }
    params
}

/// Reads the isolation parameters. `possible` expands the `all` and `N` forms of CPU lists
/// (Linux 5.13+). The last occurrence of a parameter wins.
pub fn parse(cmdline: &str, possible: &CpuSet) -> (BootIsolation, Vec<BadParam>) {
    let mut boot = BootIsolation::default();
    let mut bad = Vec::new();
    for (name, value) in params(cmdline) {
        let value = value.unwrap_or_default();
        let list = |param: &'static str, text: &str| {
            boot_cpu_list(text, possible).map_err(|source| BadParam {
                param,
                value: value.clone(),
                source,
            })
        };
        let parsed = match name.as_str() {
            "isolcpus" => {
                let (flags, skipped, rest) = isolcpus_flags(&value);
                list("isolcpus", rest).map(|cpus| {
                    boot.isolcpus = Some(Isolcpus {
                        cpus,
                        flags,
                        skipped_flags: skipped,
                    })
                })
            }
            "nohz_full" => list("nohz_full", &value).map(|c| boot.nohz_full = Some(c)),
            "rcu_nocbs" => list("rcu_nocbs", &value).map(|c| boot.rcu_nocbs = Some(c)),
            "irqaffinity" => list("irqaffinity", &value).map(|c| boot.irqaffinity = Some(c)),
            _ => Ok(()),
        };
        if let Err(err) = parsed {
            bad.push(err);
        }
    }
    (boot, bad)
}

/// Leading `word,` flags of `isolcpus=`, as `housekeeping_isolcpus_setup` reads them.
fn isolcpus_flags(value: &str) -> (Vec<IsolcpusFlag>, Vec<String>, &str) {
    let mut flags = Vec::new();
    let mut skipped = Vec::new();
    let mut rest = value;
    while rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
        let Some((flag, after)) = rest.split_once(',') else {
            break;
        };
        match flag {
            "domain" => flags.push(IsolcpusFlag::Domain),
            "managed_irq" => flags.push(IsolcpusFlag::ManagedIrq),
            "nohz" => flags.push(IsolcpusFlag::Nohz),
            other => skipped.push(other.to_owned()),
        }
        rest = after;
    }
    if flags.is_empty() {
        flags.push(IsolcpusFlag::Domain);
    }
    flags.sort_unstable();
    flags.dedup();
    (flags, skipped, rest)
}

/// A boot CPU list: the usual list form, or `all`, or with `N` standing for the last CPU.
fn boot_cpu_list(text: &str, possible: &CpuSet) -> Result<CpuSet, CpuSetError> {
    let text = text.trim();
    if text == "all" {
        return Ok(possible.clone());
    }
    match possible.iter().last() {
        Some(last) if text.contains('N') => {
            let expanded: Vec<String> = text
                .split(',')
                .map(|item| {
                    let (range, group) = item.split_once(':').unwrap_or((item, ""));
                    let range = range
                        .split('-')
                        .map(|end| {
                            if end.trim() == "N" {
                                last.to_string()
                            } else {
                                end.to_owned()
                            }
                        })
                        .collect::<Vec<_>>()
                        .join("-");
                    if group.is_empty() {
                        range
                    } else {
                        format!("{range}:{group}")
                    }
                })
                .collect();
            CpuSet::parse_list(&expanded.join(","))
        }
        _ => CpuSet::parse_list(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn params_follow_kernel_quoting_and_stop_at_double_dash() {
        let line = "root=/dev/sda1 quiet dyndbg=\"file x.c +p\" isolcpus=2-3 -- nohz_full=1\n";
        let got = params(line);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["root", "quiet", "dyndbg", "isolcpus"]);
        assert_eq!(got[2].1.as_deref(), Some("file x.c +p"));
        assert_eq!(got[1].1, None);
    }

    #[test]
    fn isolation_parameters_parse() {
        let possible = CpuSet::parse_list("0-7").unwrap();
        let cases = [
            (
                "no flags means domain",
                "isolcpus=2-3",
                "2-3",
                vec![IsolcpusFlag::Domain],
            ),
            (
                "flags",
                "isolcpus=managed_irq,domain,4-7",
                "4-7",
                vec![IsolcpusFlag::Domain, IsolcpusFlag::ManagedIrq],
            ),
            (
                "nohz flag alone",
                "isolcpus=nohz,1",
                "1",
                vec![IsolcpusFlag::Nohz],
            ),
            (
                "last CPU as N",
                "isolcpus=4-N",
                "4-7",
                vec![IsolcpusFlag::Domain],
            ),
        ];
        for (what, line, cpus, flags) in cases {
            let (boot, bad) = parse(line, &possible);
            let isolcpus = boot.isolcpus.unwrap();
            assert_eq!(isolcpus.cpus.to_list(), cpus, "{what}");
            assert_eq!(isolcpus.flags, flags, "{what}");
            assert!(bad.is_empty(), "{what}: {bad:?}");
        }
        let (boot, bad) = parse(
            "nohz_full=2-3 rcu_nocbs=all irqaffinity=0 rcu_nocbs",
            &possible,
        );
        assert_eq!(boot.nohz_full.unwrap().to_list(), "2-3");
        assert_eq!(
            boot.rcu_nocbs.unwrap().to_list(),
            "",
            "the last rcu_nocbs wins"
        );
        assert_eq!(boot.irqaffinity.unwrap().to_list(), "0");
        assert!(bad.is_empty());
    }

    #[test]
    fn bad_lists_and_unknown_flags_are_reported() {
        let possible = CpuSet::parse_list("0-3").unwrap();
        let (boot, bad) = parse("isolcpus=fancy,2 nohz_full=x", &possible);
        assert_eq!(boot.isolcpus.unwrap().skipped_flags, ["fancy"]);
        assert_eq!(bad.len(), 1);
        assert!(
            bad[0].to_string().starts_with("nohz_full=\"x\""),
            "{}",
            bad[0]
        );
    }

    proptest! {
        #[test]
        fn parsing_never_panics(line in "\\PC{0,120}") {
            let possible = CpuSet::parse_list("0-63").unwrap();
            let _ = parse(&line, &possible);
        }

        #[test]
        fn listed_cpus_round_trip(ids in proptest::collection::btree_set(0u32..64, 1..20)) {
            let set = CpuSet::from_ids(ids);
            let line = format!("quiet isolcpus=managed_irq,{} nohz_full={}", set, set);
            let (boot, bad) = parse(&line, &CpuSet::parse_list("0-63").unwrap());
            prop_assert!(bad.is_empty());
            prop_assert_eq!(boot.isolcpus.map(|i| i.cpus), Some(set.clone()));
            prop_assert_eq!(boot.nohz_full, Some(set));
        }
    }
}
