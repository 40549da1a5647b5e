//! `revert`: undo a workload's journal, then give its cores back, under one hold of the lock.
//!
//! A workload is named as it was applied (`vm-pid:4000`) or by its ledger key (`vm:web1`),
//! and the name must match a plan record's exactly: the journal to undo is the one that record
//! names, never one whose id a name happens to escape to. Reverting what is not applied is not
//! an error: a second revert says there was nothing to do, and lists what is applied.
//! Workloads are reverted in any order: a knob a newer workload changed too (the host-wide
//! IRQ masks, typically) is left as it is and its prior handed to that workload's journal
//! (see `nearnative_apply`'s hand-over). `--all` also undoes journals no plan record names and
//! empties the ledger.
//!
//! Every state file a revert needs (the ledger, the plan records, the journals) is read and
//! checked before its first write, so a corrupt one stops it with the host as it was.

use nearnative_apply::journal::Journal;
use nearnative_apply::{
    in_created_cgroup, revert_locked, JournalId, RevertReport, RevertTarget, StateDir,
};
use nearnative_plan::{Target, WorkloadKey};
use nearnative_sys::lock::StateLock;

use crate::applied::{load_all, AppliedPlan};
use crate::boots::ClosedEntry;
use crate::born::BornReverted;
use crate::engine::Engine;
use crate::error::EngineError;
use crate::ledger_file::{load_ledger_file, store_ledger, LedgerFile};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevertWhich {
    /// `vm:NAME`, `vm-pid:PID`, `pid:PID` or `cgroup:/PATH`, as applied or as keyed.
    Target(String),
    All,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Reverted {
    /// The workloads whose cores were given back.
    pub workloads: Vec<WorkloadKey>,
    pub report: RevertReport,
    /// When the target named nothing applied: the workloads that are.
    pub still_applied: Vec<WorkloadKey>,
    /// Tasks born during an apply, given back the mask their creator had before it.
    pub born: BornReverted,
    /// Entries of another boot closed first, without a host write (see
    /// [`Engine::close_other_boots`]).
    pub closed: Vec<ClosedEntry>,
}

impl Reverted {
    pub fn nothing_to_revert(&self) -> bool {
        self.workloads.is_empty() && self.report.nothing_to_revert()
    }
}

impl Engine {
    pub fn revert(&self, which: &RevertWhich) -> Result<Reverted, EngineError> {
        self.check_privilege("revert")?;
        if !self.state.dir().is_dir() {
            return Ok(Reverted::default());
        }
        let lock = StateLock::acquire(self.state.dir())?;
        let closed = self.close_other_boots_locked(&lock)?;
        let ledger = load_ledger_file(&self.state)?;
        let mut reverted = match which {
            RevertWhich::Target(target) => self.revert_target(target, ledger, &lock),
            RevertWhich::All => self.revert_all(ledger, &lock),
        }?;
        reverted.closed = closed;
        Ok(reverted)
    }

    fn revert_target(
        &self,
        target: &str,
        mut ledger: LedgerFile,
        lock: &StateLock,
    ) -> Result<Reverted, EngineError> {
        target
            .parse::<Target>()
            .map_err(|reason| EngineError::BadTarget { reason })?;
        let plans = load_all(&self.state)?;
        let named: Vec<&(JournalId, AppliedPlan)> =
            plans.iter().filter(|(_, p)| p.answers_to(target)).collect();
        let (id, record) = match named.as_slice() {
            [] => return self.release_unrecorded(target, ledger, &plans),
            [one] => (*one).clone(),
            several => {
                let ids: Vec<String> = several.iter().map(|(id, _)| id.to_string()).collect();
                return Err(EngineError::AmbiguousTarget {
                    target: target.to_owned(),
                    records: ids.join(", "),
                });
            }
        };
        let journal = Journal::load(&self.state.journal_path(&id))?;
        let which = RevertTarget::One(id.clone());
        let report = revert_locked(&self.state, &which, &*self.backend, lock)?;
        let mut born = BornReverted::default();
        if let Some(journal) = &journal {
            self.widen_born(journal, Some(&record.plan.scope), &mut born);
            forget_removed_cgroups(&self.state, journal, &plans)?;
        }
        self.release(&mut ledger, &record, &id)?;
        Ok(Reverted {
            workloads: vec![record.plan.workload],
            report,
            born,
            ..Reverted::default()
        })
    }

    /// No plan record answers to `target`. A ledger entry of exactly that key (left by hand,
    /// or by an older version's crash) still holds cores: give them back. Otherwise there is
    /// nothing to do, and the answer lists what is applied. A journal no record names is
    /// never guessed from the target: `revert --all` undoes it.
    fn release_unrecorded(
        &self,
        target: &str,
        mut ledger: LedgerFile,
        plans: &[(JournalId, AppliedPlan)],
    ) -> Result<Reverted, EngineError> {
        let key = WorkloadKey(target.to_owned());
        let mut reverted = Reverted::default();
        if ledger.ledger.release(&key).is_some() {
            store_ledger(&self.state, &ledger)?;
            reverted.workloads.push(key);
            return Ok(reverted);
        }
        let recorded = plans.iter().map(|(_, p)| p.plan.workload.clone());
        let reserved = ledger.ledger.iter().map(|a| a.workload().clone());
        reverted.still_applied = recorded.chain(reserved).collect();
        reverted.still_applied.sort();
        reverted.still_applied.dedup();
        Ok(reverted)
    }

    fn revert_all(&self, ledger: LedgerFile, lock: &StateLock) -> Result<Reverted, EngineError> {
        let mut journals = Vec::new();
        for id in self.state.journal_ids()? {
            journals.extend(Journal::load(&self.state.journal_path(&id))?);
        }
        journals.sort_by_key(|j| std::cmp::Reverse(j.started_unix_ms));
        let records = load_all(&self.state)?;
        let report = revert_locked(&self.state, &RevertTarget::All, &*self.backend, lock)?;
        let mut born = BornReverted::default();
        for journal in &journals {
            let scope = records
                .iter()
                .find(|(id, _)| *id == journal.id)
                .map(|(_, record)| &record.plan.scope);
            self.widen_born(journal, scope, &mut born);
        }
        let workloads = ledger.ledger.iter().map(|a| a.workload().clone()).collect();
        if !ledger.ledger.is_empty() {
            store_ledger(&self.state, &LedgerFile::default())?;
        }
        for (id, _) in &records {
            AppliedPlan::remove(&self.state, id)?;
        }
        Ok(Reverted {
            workloads,
            report,
            born,
            ..Reverted::default()
        })
    }
}

/// Drops from the other workloads' plan records the steps on cgroups `journal` created, which
/// its revert removed (a newer plan narrows an older one's housekeeping cgroup): verify would
/// otherwise look for them.
fn forget_removed_cgroups(
    state: &StateDir,
    journal: &Journal,
    plans: &[(JournalId, AppliedPlan)],
) -> Result<(), EngineError> {
    for (id, record) in plans.iter().filter(|(id, _)| *id != journal.id) {
        let mut updated = record.clone();
        let changes = &mut updated.plan.changes;
        changes.retain(|c| !in_created_cgroup(&c.step, &journal.changes));
        if updated != *record {
            updated.store(state, id)?;
        }
    }
    Ok(())
}
