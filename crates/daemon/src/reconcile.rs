//! One round of the reconcile loop, decided: what the policies want, against what the state
//! directory holds, turned into the actions that make the two agree. Pure: the caller reads
//! the host and the state directory once, and carries the actions out through the engine.
//!
//! The rules, per workload key:
//! - held, but none of its exclusive threads is alive: reverted, whoever applied it (a VM
//!   applied from the CLI that stops is released too);
//! - held with an apply that died part-way (`in_progress` journal, nobody applying): reverted,
//!   then applied afresh if a policy wants it;
//! - held for a policy that no longer wants it: reverted, but only once that was so at two
//!   policy loads (a file caught half-saved by an editor reads as missing or empty for a
//!   moment); at the first, left as it is ([`Action::Unwanted`]);
//! - wanted with another request (the policy changed, or the VM restarted under another
//!   pid): reverted and applied again;
//! - held and still wanted, or held from another source: kept, which means drift repair and
//!   the placement of threads born since (`Engine::reconcile`);
//! - wanted and not held: applied.
//!
//! Reverts come first, so the cores they free are there for the applies of the same round.

use std::collections::BTreeSet;

use nearnative_plan::{PlanRequest, WorkloadKey};

/// The origin of applies made for a policy starts with this (`policy:FILE:LINE`).
pub const POLICY_ORIGIN: &str = "policy:";

/// A workload instance a policy (or a libvirt domain's switch) asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub key: WorkloadKey,
    pub request: PlanRequest,
    /// `policy:FILE:LINE` or `libvirt:NAME`, recorded with the apply.
    pub origin: String,
    /// The index of the policy in the policy set; `None` for a libvirt domain.
    pub policy: Option<usize>,
}

/// A workload the state directory holds (a plan record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub key: WorkloadKey,
    /// As applied (`vm-pid:4000`); revert names it so.
    pub target: String,
    pub request: PlanRequest,
    /// Who applied it; `None` for records made before origins were recorded (the CLI).
    pub origin: Option<String>,
    /// It still runs ([`nearnative_engine::workload_runs`]): one of its exclusive threads
    /// is alive.
    pub alive: bool,
    /// Its journal is `in_progress` while no apply holds the state lock: the apply died.
    pub unfinished: bool,
}

impl Held {
    fn is_policys(&self) -> bool {
        self.origin
            .as_deref()
            .is_some_and(|o| o.starts_with(POLICY_ORIGIN))
    }
}

/// Why a held workload is reverted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevertReason {
    /// Its threads are gone: the VM stopped, the process exited.
    Gone,
    /// Its apply died part-way.
    Unfinished,
    /// The policy that wanted it is gone (removed, or no longer matches).
    PolicyGone,
    /// The policy asks for something else now: re-planned (reverted, then applied).
    Replan,
}

impl RevertReason {
    /// How the log line says it.
    pub fn words(self) -> &'static str {
        match self {
            RevertReason::Gone => "its threads are gone",
            RevertReason::Unfinished => "its apply died part-way",
            RevertReason::PolicyGone => "no policy wants it any more",
            RevertReason::Replan => "its policy changed; re-planning",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Revert {
        key: WorkloadKey,
        target: String,
        reason: RevertReason,
    },
    /// Apply `wanted[index]`.
    Apply { index: usize },
    /// Keep it true: drift repair and threads born since. `wanted` is the index of the
    /// policy's instance that wants it, `None` for a workload another source applied.
    Keep {
        key: WorkloadKey,
        wanted: Option<usize>,
    },
    /// A policy's workload no policy wants at this load, for the first time: left untouched
    /// until a later load says so again (then [`RevertReason::PolicyGone`]).
    Unwanted { key: WorkloadKey },
}

/// The actions of one round: reverts, then applies, then keeps. When two policies want the
/// same workload, the first wins. `confirmed` holds the policies' workloads that no policy
/// wanted at an earlier load already: only those are reverted as [`RevertReason::PolicyGone`].
pub fn decide(wanted: &[Wanted], held: &[Held], confirmed: &BTreeSet<WorkloadKey>) -> Vec<Action> {
    let first_wanting = |key: &WorkloadKey| wanted.iter().position(|w| &w.key == key);
    let mut reverts = Vec::new();
    let mut keeps = Vec::new();
    let mut applies = Vec::new();
    for h in held {
        let revert = |reason| Action::Revert {
            key: h.key.clone(),
            target: h.target.clone(),
            reason,
        };
        let want = first_wanting(&h.key);
        let reason = match (h.alive, h.unfinished, h.is_policys(), want) {
            (false, ..) => Some(RevertReason::Gone),
            (true, true, ..) => Some(RevertReason::Unfinished),
            (true, false, true, None) if confirmed.contains(&h.key) => {
                Some(RevertReason::PolicyGone)
            }
            (true, false, true, None) => {
                keeps.push(Action::Unwanted { key: h.key.clone() });
                continue;
            }
            (true, false, true, Some(w)) if !wanted[w].is_applied_as(h) => {
                Some(RevertReason::Replan)
            }
            _ => None,
        };
        match reason {
            Some(reason) => {
                reverts.push(revert(reason));
                // A workload reverted for any reason but policy gone is applied again this
                // round when a policy wants it (and is still there, for a gone one).
                if let Some(w) = want.filter(|_| reason != RevertReason::PolicyGone) {
                    applies.push(w);
                }
            }
            None => keeps.push(Action::Keep {
                key: h.key.clone(),
                wanted: want.filter(|_| h.is_policys()),
            }),
        }
    }
    for (index, w) in wanted.iter().enumerate() {
        let first = first_wanting(&w.key) == Some(index);
        if first && !held.iter().any(|h| h.key == w.key) {
            applies.push(index);
        }
    }
    applies.sort_unstable();
    applies.dedup();
    reverts
        .into_iter()
        .chain(applies.into_iter().map(|index| Action::Apply { index }))
        .chain(keeps)
        .collect()
}

impl Wanted {
    /// True when `held` is this very apply: same request, from the same policy line.
    fn is_applied_as(&self, held: &Held) -> bool {
        self.request == held.request && held.origin.as_deref() == Some(self.origin.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(key: &str, target: &str, origin: &str, policy: usize) -> Wanted {
        Wanted {
            key: WorkloadKey(key.to_owned()),
            request: PlanRequest::new(target.parse().unwrap()),
            origin: origin.to_owned(),
            policy: Some(policy),
        }
    }

    fn held(key: &str, target: &str, origin: Option<&str>, alive: bool) -> Held {
        Held {
            key: WorkloadKey(key.to_owned()),
            target: target.to_owned(),
            request: PlanRequest::new(target.parse().unwrap()),
            origin: origin.map(str::to_owned),
            alive,
            unfinished: false,
        }
    }

    fn revert(key: &str, target: &str, reason: RevertReason) -> Action {
        Action::Revert {
            key: WorkloadKey(key.to_owned()),
            target: target.to_owned(),
            reason,
        }
    }

    fn keep(key: &str, wanted: Option<usize>) -> Action {
        Action::Keep {
            key: WorkloadKey(key.to_owned()),
            wanted,
        }
    }

    const P: &str = "policy:/p/a.toml:1";

    #[test]
    fn rounds_are_decided_per_key() {
        type Case = (&'static str, Vec<Wanted>, Vec<Held>, Vec<Action>);
        let cases: Vec<Case> = vec![
            (
                "a new instance is applied",
                vec![wanted("vm:a", "vm-pid:10", P, 0)],
                vec![],
                vec![Action::Apply { index: 0 }],
            ),
            (
                "an applied one is kept",
                vec![wanted("vm:a", "vm-pid:10", P, 0)],
                vec![held("vm:a", "vm-pid:10", Some(P), true)],
                vec![keep("vm:a", Some(0))],
            ),
            (
                "a stopped VM is released, and not applied while gone",
                vec![],
                vec![held("vm:a", "vm-pid:10", Some(P), false)],
                vec![revert("vm:a", "vm-pid:10", RevertReason::Gone)],
            ),
            (
                "a CLI apply whose VM stopped is released too",
                vec![],
                vec![held("vm:b", "vm:b", None, false)],
                vec![revert("vm:b", "vm:b", RevertReason::Gone)],
            ),
            (
                "a CLI apply that lives is kept, even unwanted",
                vec![],
                vec![held("vm:b", "vm:b", Some("cli"), true)],
                vec![keep("vm:b", None)],
            ),
            (
                "a CLI apply a policy also wants stays the CLI's",
                vec![wanted("vm:b", "vm-pid:7", P, 0)],
                vec![held("vm:b", "vm:b", Some("cli"), true)],
                vec![keep("vm:b", None)],
            ),
            (
                "a restarted VM (another pid, old threads gone) is reverted then applied",
                vec![wanted("vm:a", "vm-pid:11", P, 0)],
                vec![held("vm:a", "vm-pid:10", Some(P), false)],
                vec![
                    revert("vm:a", "vm-pid:10", RevertReason::Gone),
                    Action::Apply { index: 0 },
                ],
            ),
            (
                "a policy gone reverts its workload",
                vec![],
                vec![held("vm:a", "vm-pid:10", Some(P), true)],
                vec![revert("vm:a", "vm-pid:10", RevertReason::PolicyGone)],
            ),
            (
                "a changed request is re-planned",
                vec![{
                    let mut w = wanted("vm:a", "vm-pid:10", P, 0);
                    w.request.rt = Some(10);
                    w
                }],
                vec![held("vm:a", "vm-pid:10", Some(P), true)],
                vec![
                    revert("vm:a", "vm-pid:10", RevertReason::Replan),
                    Action::Apply { index: 0 },
                ],
            ),
            (
                "another policy line taking over is re-planned",
                vec![wanted("vm:a", "vm-pid:10", "policy:/p/b.toml:4", 0)],
                vec![held("vm:a", "vm-pid:10", Some(P), true)],
                vec![
                    revert("vm:a", "vm-pid:10", RevertReason::Replan),
                    Action::Apply { index: 0 },
                ],
            ),
            (
                "the first of two policies for one workload wins",
                vec![
                    wanted("vm:a", "vm-pid:10", P, 0),
                    wanted("vm:a", "vm-pid:10", "policy:/p/b.toml:1", 1),
                ],
                vec![],
                vec![Action::Apply { index: 0 }],
            ),
        ];
        for (what, wanted, held, expected) in cases {
            let confirmed = held.iter().map(|h| h.key.clone()).collect();
            assert_eq!(decide(&wanted, &held, &confirmed), expected, "{what}");
        }
    }

    #[test]
    fn a_policy_missing_at_one_load_only_reverts_nothing() {
        let held = vec![held("vm:a", "vm-pid:10", Some(P), true)];
        let unwanted = Action::Unwanted {
            key: WorkloadKey("vm:a".to_owned()),
        };
        assert_eq!(decide(&[], &held, &BTreeSet::new()), vec![unwanted]);
        let again = BTreeSet::from([WorkloadKey("vm:a".to_owned())]);
        assert_eq!(
            decide(&[], &held, &again),
            vec![revert("vm:a", "vm-pid:10", RevertReason::PolicyGone)]
        );
    }

    #[test]
    fn an_unfinished_apply_is_reverted_then_applied_afresh_before_anything_kept() {
        let mut dead_apply = held("vm:a", "vm-pid:10", Some(P), true);
        dead_apply.unfinished = true;
        let wanted = vec![
            wanted("vm:a", "vm-pid:10", P, 0),
            wanted("vm:c", "vm-pid:12", P, 0),
        ];
        let held = vec![held("vm:c", "vm-pid:12", Some(P), true), dead_apply];
        assert_eq!(
            decide(&wanted, &held, &BTreeSet::new()),
            vec![
                revert("vm:a", "vm-pid:10", RevertReason::Unfinished),
                Action::Apply { index: 0 },
                keep("vm:c", Some(1)),
            ]
        );
    }
}
