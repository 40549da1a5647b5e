//! What the loop remembers between rounds, which the host and the state directory cannot tell
//! it: why a wanted workload is not applied (refused, waiting for cores, failed), which
//! applied ones drifted under `on_drift = "report"`, which applied ones no policy wanted at a
//! load, the totals, and the standing conditions already logged, so that a condition that
//! lasts is said once, not every sweep.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use nearnative_plan::WorkloadKey;

use crate::status::{Counters, Source, WorkloadState};

/// A wanted workload that is not applied, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unapplied {
    pub target: String,
    pub source: Source,
    pub state: WorkloadState,
    /// The ledger as it was when it was refused: it is tried again once that changes (or at
    /// the next sweep).
    pub ledger: String,
}

#[derive(Debug, Default)]
pub struct Book {
    pub unapplied: BTreeMap<WorkloadKey, Unapplied>,
    /// Knobs seen drifted and left so (`on_drift = "report"`), per applied workload.
    pub drifted: BTreeMap<WorkloadKey, Vec<String>>,
    pub counters: Counters,
    /// The last line logged for each standing condition.
    said: BTreeMap<String, String>,
    /// The policies' applied workloads no policy wanted, by the policy load that first
    /// found so.
    unwanted: BTreeMap<WorkloadKey, u64>,
}

impl Book {
    /// True when `line` is news for `condition` (it was not the last thing said about it),
    /// and remembers it.
    pub fn is_news(&mut self, condition: &str, line: &str) -> bool {
        match self.said.get(condition) {
            Some(said) if said == line => false,
            _ => {
                self.said.insert(condition.to_owned(), line.to_owned());
                true
            }
        }
    }

    /// Forgets `condition`, so that it is said again if it comes back.
    pub fn settled(&mut self, condition: &str) {
        self.said.remove(condition);
    }

    /// Whether a wanted workload is tried this round: always when it was never refused, on
    /// a sweep, or once the ledger changed since its refusal.
    pub fn should_try(&self, key: &WorkloadKey, sweep: bool, ledger: &str) -> bool {
        match self.unapplied.get(key) {
            None => true,
            Some(unapplied) => sweep || unapplied.ledger != ledger,
        }
    }

    /// The workloads no policy wanted at a load before `load` already: those a round may
    /// revert as no longer wanted.
    pub fn unwanted_before(&self, load: u64) -> BTreeSet<WorkloadKey> {
        let earlier = self.unwanted.iter().filter(|(_, since)| **since < load);
        earlier.map(|(key, _)| key.clone()).collect()
    }

    /// Remembers the workloads no policy wants at policy load `load`, forgetting the others
    /// (wanted again, or released). True when one is new at this load: a later load must
    /// look again before it is reverted.
    pub fn note_unwanted(&mut self, keys: &BTreeSet<WorkloadKey>, load: u64) -> bool {
        self.unwanted.retain(|key, _| keys.contains(key));
        for key in keys {
            self.unwanted.entry(key.clone()).or_insert(load);
        }
        self.unwanted.values().any(|since| *since == load)
    }

    /// Keeps the refusals of workloads still wanted and not held: one applied meanwhile (by
    /// the CLI, through the control socket) shows once, as applied.
    pub fn keep_unapplied(
        &mut self,
        wanted: &BTreeSet<&WorkloadKey>,
        held: &BTreeSet<&WorkloadKey>,
    ) {
        self.unapplied
            .retain(|key, _| wanted.contains(key) && !held.contains(key));
    }

    /// Forgets whatever was remembered about `key` but its logged conditions: it is applied,
    /// or gone.
    pub fn forget(&mut self, key: &WorkloadKey) {
        self.unapplied.remove(key);
        self.drifted.remove(key);
    }
}

/// Who asked for a workload, from the origin its plan record keeps: `policy:FILE:LINE`,
/// `libvirt:DOMAIN`, `kubernetes:POD`, or the CLI (`cli`, and records made before origins).
pub fn source_of(origin: Option<&str>) -> Source {
    let Some((kind, rest)) = origin.and_then(|o| o.split_once(':')) else {
        return Source::Cli;
    };
    match kind {
        "policy" => match rest.rsplit_once(':') {
            Some((file, line)) => match line.parse() {
                Ok(line) => Source::Policy {
                    file: PathBuf::from(file),
                    line,
                },
                Err(_) => Source::Cli,
            },
            None => Source::Cli,
        },
        "libvirt" => Source::Libvirt {
            domain: rest.to_owned(),
        },
        "kubernetes" => Source::Kubernetes {
            pod: rest.to_owned(),
        },
        _ => Source::Cli,
    }
}

/// How a log line names a source: `policy:/p/a.toml:1`, `cli`, ...
pub fn source_words(source: &Source) -> String {
    match source {
        Source::Policy { file, line } => format!("policy:{}:{line}", file.display()),
        Source::Cli => "cli".to_owned(),
        Source::Libvirt { domain } => format!("libvirt:{domain}"),
        Source::Kubernetes { pod } => format!("kubernetes:{pod}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standing_condition_is_said_once_until_it_changes_or_settles() {
        let mut book = Book::default();
        assert!(book.is_news("vm:a", "refused: CPU 0"));
        assert!(!book.is_news("vm:a", "refused: CPU 0"));
        assert!(book.is_news("vm:a", "waiting for cores"));
        book.settled("vm:a");
        assert!(book.is_news("vm:a", "waiting for cores"));
        assert!(book.is_news("vm:b", "waiting for cores"));
    }

    #[test]
    fn a_refusal_is_tried_again_on_a_sweep_or_a_ledger_change() {
        let mut book = Book::default();
        let key = WorkloadKey("vm:a".to_owned());
        assert!(book.should_try(&key, false, "L1"));
        book.unapplied.insert(
            key.clone(),
            Unapplied {
                target: "vm:a".to_owned(),
                source: Source::Cli,
                state: WorkloadState::WaitingForCores {
                    reason: "no core".to_owned(),
                },
                ledger: "L1".to_owned(),
            },
        );
        assert!(!book.should_try(&key, false, "L1"));
        assert!(book.should_try(&key, true, "L1"));
        assert!(book.should_try(&key, false, "L2"));
        book.forget(&key);
        assert!(book.should_try(&key, false, "L1"));
    }

    #[test]
    fn a_workload_is_unwanted_for_good_only_at_a_second_load() {
        let mut book = Book::default();
        let a = WorkloadKey("vm:a".to_owned());
        let keys = BTreeSet::from([a.clone()]);
        assert!(book.note_unwanted(&keys, 1), "first seen: look again");
        assert!(book.unwanted_before(1).is_empty(), "same load");
        assert!(book.note_unwanted(&keys, 1), "another round, same load");
        assert_eq!(book.unwanted_before(2), keys);
        assert!(!book.note_unwanted(&keys, 2));
        book.note_unwanted(&BTreeSet::new(), 2);
        assert!(
            book.unwanted_before(3).is_empty(),
            "wanted again: start over"
        );
    }

    #[test]
    fn a_refusal_is_kept_only_while_wanted_and_not_held() {
        let mut book = Book::default();
        let unapplied = Unapplied {
            target: "vm:a".to_owned(),
            source: Source::Cli,
            state: WorkloadState::WaitingForCores {
                reason: "no core".to_owned(),
            },
            ledger: String::new(),
        };
        let [a, b, c] = ["vm:a", "vm:b", "vm:c"].map(|k| WorkloadKey(k.to_owned()));
        for key in [&a, &b, &c] {
            book.unapplied.insert(key.clone(), unapplied.clone());
        }
        book.keep_unapplied(&BTreeSet::from([&a, &b]), &BTreeSet::from([&b]));
        let kept: Vec<&WorkloadKey> = book.unapplied.keys().collect();
        assert_eq!(kept, [&a], "b is held now, c is no longer wanted");
    }

    #[test]
    fn origins_name_their_source_and_back() {
        let cases = [
            (
                Some("policy:/etc/nearnative/workloads.d/a:b.toml:12"),
                "policy:/etc/nearnative/workloads.d/a:b.toml:12",
            ),
            (Some("cli"), "cli"),
            (None, "cli"),
            (Some("libvirt:web1"), "libvirt:web1"),
            (Some("kubernetes:ns/pod"), "kubernetes:ns/pod"),
            (Some("policy:nonumber"), "cli"),
        ];
        for (origin, words) in cases {
            assert_eq!(source_words(&source_of(origin)), words, "{origin:?}");
        }
    }
}
