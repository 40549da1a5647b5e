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
    /// The last line logged for each standing condition of the host (a policy file).
    said: BTreeMap<String, String>,
    /// The last line logged for each standing condition of a workload, by its key and what
    /// the condition is about (its apply, its drift, a re-plan...).
    said_about: BTreeMap<(WorkloadKey, String), String>,
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

    /// As [`Book::is_news`], for condition `what` of workload `key`.
    pub fn is_news_about(&mut self, key: &WorkloadKey, what: &str, line: &str) -> bool {
        let condition = (key.clone(), what.to_owned());
        match self.said_about.get(&condition) {
            Some(said) if said == line => false,
            _ => {
                self.said_about.insert(condition, line.to_owned());
                true
            }
        }
    }

    /// Forgets condition `what` of `key`, so that it is said again if it comes back.
    pub fn settled_about(&mut self, key: &WorkloadKey, what: &str) {
        self.said_about.remove(&(key.clone(), what.to_owned()));
    }

    /// Forgets everything about workloads that are neither wanted nor held, so that a
    /// daemon whose `process:` policies see a new `pid:N` key for each process does not
    /// grow: what it knew comes back as news if the key does.
    pub fn prune(&mut self, live: &BTreeSet<&WorkloadKey>) {
        self.said_about.retain(|(key, _), _| live.contains(key));
        self.drifted.retain(|key, _| live.contains(key));
        self.unwanted.retain(|key, _| live.contains(key));
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
        // `NAMESPACE/POD/CONTAINER@ID`: the id is for the plugin, the names for people.
        "kubernetes" => Source::Kubernetes {
            pod: rest
                .rsplit_once('@')
                .map_or(rest, |(name, _)| name)
                .to_owned(),
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
        let [a, b] = ["vm:a", "vm:b"].map(|k| WorkloadKey(k.to_owned()));
        assert!(book.is_news_about(&a, "apply", "refused: CPU 0"));
        assert!(!book.is_news_about(&a, "apply", "refused: CPU 0"));
        assert!(book.is_news_about(&a, "apply", "waiting for cores"));
        book.settled_about(&a, "apply");
        assert!(book.is_news_about(&a, "apply", "waiting for cores"));
        assert!(book.is_news_about(&b, "apply", "waiting for cores"));
        assert!(book.is_news("policy /p/a.toml", "rejected"));
        assert!(!book.is_news("policy /p/a.toml", "rejected"));
    }

    #[test]
    fn what_is_known_of_a_workload_neither_wanted_nor_held_is_forgotten() {
        let mut book = Book::default();
        let [a, gone] = ["pid:10", "pid:11"].map(|k| WorkloadKey(k.to_owned()));
        for key in [&a, &gone] {
            book.is_news_about(key, "drift", "drifted");
            book.drifted.insert(key.clone(), vec!["knob".to_owned()]);
        }
        book.note_unwanted(&BTreeSet::from([a.clone(), gone.clone()]), 1);
        book.prune(&BTreeSet::from([&a]));
        assert!(!book.is_news_about(&a, "drift", "drifted"), "kept");
        assert!(book.is_news_about(&gone, "drift", "drifted"), "forgotten");
        assert_eq!(book.drifted.keys().collect::<Vec<_>>(), [&a]);
        assert_eq!(book.unwanted_before(2), BTreeSet::from([a.clone()]));
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
            (Some("kubernetes:ns/pod/ctr@0af3"), "kubernetes:ns/pod/ctr"),
            (Some("policy:nonumber"), "cli"),
        ];
        for (origin, words) in cases {
            assert_eq!(source_words(&source_of(origin)), words, "{origin:?}");
        }
    }
}
