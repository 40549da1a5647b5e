//! Handing a shared knob over: reverting one journal while a newer one changed the same knob.
//!
//! Workloads applied one after another share the host-wide knobs (IRQ masks, the default IRQ
//! affinity, the workqueue mask) and the bystander threads they move off their CPUs. The
//! newer journal's prior for such a knob is the older one's target, so the older one cannot
//! simply write its prior back: that would undo the newer workload's isolation now, and the
//! newer one's revert would later bring the older workload's value back. Instead, the older
//! journal hands its prior (the value before any nearnative apply, as far as it knows) to the
//! next newer journal that holds the knob, leaves the knob as it is, and restores the rest.
//!
//! Crash safety, across two files: the newer journals are rewritten first, whole and
//! atomically, and only then is the reverted journal rewritten without the knobs handed over.
//! A crash before the first rename leaves the older journal holding the prior; one between
//! the renames leaves both holding the same prior (a revert of either hands over again, or
//! restores a value already there); after the second, only the newer one holds it. Never
//! neither.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use nearnative_knob::{Described, Step};
use serde::{Deserialize, Serialize};

use crate::journal::Journal;
use crate::restore::in_created_cgroup;
use crate::revert::RevertError;
use crate::state::{JournalId, StateDir};

/// A knob left as it is, its prior handed to a newer journal that changed it too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandedOver {
    pub knob: Described,
    /// The journal that now restores it.
    pub to: JournalId,
}

/// Tests only: stop a revert dead right after the `after_stores`-th journal store of a
/// hand-over (the newer journals first, then the one reverted), as `kill -9` would.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandoverCrash {
    pub after_stores: usize,
}

/// Counts a hand-over's stores; without the `fault-injection` feature it holds nothing and
/// never stops anything.
#[derive(Debug, Default)]
pub(crate) struct StoreFault {
    #[cfg(feature = "fault-injection")]
    crash: Option<HandoverCrash>,
    #[cfg(feature = "fault-injection")]
    stores: usize,
}

impl StoreFault {
    #[cfg(feature = "fault-injection")]
    pub(crate) fn armed(crash: HandoverCrash) -> Self {
        StoreFault {
            crash: Some(crash),
            stores: 0,
        }
    }

    fn stored(&mut self) -> Result<(), RevertError> {
        #[cfg(feature = "fault-injection")]
        {
            self.stores += 1;
            if let Some(crash) = self.crash.filter(|c| c.after_stores == self.stores) {
                return Err(RevertError::Crashed { crash });
            }
        }
        Ok(())
    }
}

/// A journal newer than the one reverted, with where it lives and whether it changed.
struct Newer {
    path: PathBuf,
    journal: Journal,
    changed: bool,
}

/// Hands each knob of `journal` that a newer journal also changed to the next newer one
/// (by start time, then id) holding it: that journal's first change of the knob gets
/// `journal`'s first prior for it. The newer journals are stored, then `journal` (at `path`)
/// without those knobs, which is returned with what was handed over. Without a newer journal
/// sharing a knob, nothing is written.
pub(crate) fn hand_over(
    state: &StateDir,
    path: &Path,
    mut journal: Journal,
    fault: &mut StoreFault,
) -> Result<(Journal, Vec<HandedOver>), RevertError> {
    let mut newer = newer_journals(state, &journal)?;
    let holders = first_changes(&newer);
    let mut handed = Vec::new();
    // Per knob, the position of its first change here and whether it was handed over.
    let mut decided: HashMap<Described, Vec<(usize, bool)>> = HashMap::new();
    let mut hand = Vec::with_capacity(journal.changes.len());
    for (position, step) in journal.changes.iter().enumerate() {
        let knob = step.describe();
        let same = decided.entry(knob.clone()).or_default();
        let earlier = same
            .iter()
            .find(|&&(first, _)| journal.changes[first].same_knob(step));
        // A later change of a knob already decided goes with its first, which holds the prior.
        if let Some(&(_, handed_over)) = earlier {
            hand.push(handed_over);
            continue;
        }
        // The cgroup goes with this revert: a newer journal's change of it has nothing left
        // to restore, and this journal restores it before removing it, as usual.
        if in_created_cgroup(step, &journal.changes) {
            same.push((position, false));
            hand.push(false);
            continue;
        }
        let to = give_prior(step, &holders, &mut newer);
        same.push((position, to.is_some()));
        hand.push(to.is_some());
        handed.extend(to.map(|to| HandedOver { knob, to }));
    }
    let forgotten = forget_created_cgroups(&journal.changes, &mut newer);
    let changes = std::mem::take(&mut journal.changes).into_iter().zip(hand);
    journal.changes = changes.filter(|(_, hand)| !hand).map(|(s, _)| s).collect();
    if handed.is_empty() && !forgotten {
        return Ok((journal, handed));
    }
    for n in newer.iter().filter(|n| n.changed) {
        n.journal.store(&n.path).map_err(RevertError::Journal)?;
        fault.stored()?;
    }
    journal.store(path).map_err(RevertError::Journal)?;
    fault.stored()?;
    Ok((journal, handed))
}

/// Drops from the newer journals every change of a cgroup `changes` created (a newer plan
/// narrows the CPUs of an older one's housekeeping cgroup): the revert of `changes` removes
/// it. True when any was dropped.
fn forget_created_cgroups(changes: &[Step], newer: &mut [Newer]) -> bool {
    let mut forgotten = false;
    for n in newer.iter_mut() {
        let before = n.journal.changes.len();
        n.journal.changes.retain(|s| !in_created_cgroup(s, changes));
        if n.journal.changes.len() != before {
            n.changed = true;
            forgotten = true;
        }
    }
    forgotten
}

/// Every journal started after `journal` (ties broken by id), oldest first.
fn newer_journals(state: &StateDir, journal: &Journal) -> Result<Vec<Newer>, RevertError> {
    let order = |j: &Journal| (j.started_unix_ms, j.id.clone());
    let mut newer = Vec::new();
    for id in state
        .journal_ids()?
        .into_iter()
        .filter(|id| *id != journal.id)
    {
        let path = state.journal_path(&id);
        let Some(other) = Journal::load(&path).map_err(RevertError::Journal)? else {
            continue;
        };
        if order(&other) > order(journal) {
            newer.push(Newer {
                path,
                journal: other,
                changed: false,
            });
        }
    }
    newer.sort_by_key(|n| order(&n.journal));
    Ok(newer)
}

/// For each knob some newer journal changed, where its first change there is: the newer
/// journals that hold it, oldest first, each with the position of that change.
fn first_changes(newer: &[Newer]) -> HashMap<Described, Vec<(usize, usize)>> {
    let mut holders: HashMap<Described, Vec<(usize, usize)>> = HashMap::new();
    for (n, newer) in newer.iter().enumerate() {
        let changes = &newer.journal.changes;
        for (position, step) in changes.iter().enumerate() {
            let same = holders.entry(step.describe()).or_default();
            let known = same
                .iter()
                .any(|&(m, first)| m == n && changes[first].same_knob(step));
            if !known {
                same.push((n, position));
            }
        }
    }
    holders
}

/// Gives `step`'s prior to the oldest newer journal changing the same knob; that journal's id.
fn give_prior(
    step: &Step,
    holders: &HashMap<Described, Vec<(usize, usize)>>,
    newer: &mut [Newer],
) -> Option<JournalId> {
    let candidates = holders.get(&step.describe())?;
    let &(n, position) = candidates
        .iter()
        .find(|&&(n, position)| newer[n].journal.changes[position].same_knob(step))?;
    let holder = &mut newer[n];
    let handed = holder.journal.changes[position].with_prior_of(step)?;
    if handed != holder.journal.changes[position] {
        holder.journal.changes[position] = handed;
        holder.changed = true;
    }
    Some(holder.journal.id.clone())
}
