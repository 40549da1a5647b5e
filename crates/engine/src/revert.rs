//! `revert`: undo a workload's journal, then give its cores back, under one hold of the lock.
//!
//! A workload is named as it was applied (`vm-pid:4000`) or by its ledger key (`vm:web1`).
//! Reverting what is not applied is not an error: a second revert says there was nothing to
//! do, and lists what is applied. One workload is reverted only when no newer journal changed
//! a knob it changed too (the host-wide IRQ masks, typically): newest first, or `--all`, which
//! also undoes journals no plan record names and empties the ledger.

use nearnative_apply::journal::Journal;
use nearnative_apply::lock::StateLock;
use nearnative_apply::{revert_locked, JournalId, RevertReport, RevertTarget};
use nearnative_knob::{Described, Step};
use nearnative_plan::{cgroup_id, Ledger, WorkloadKey};

use crate::applied::{load_all, AppliedPlan};
use crate::born::BornReverted;
use crate::engine::Engine;
use crate::error::EngineError;
use crate::ledger_file::{load_ledger, store_ledger};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevertWhich {
    /// `vm:NAME`, `vm-pid:PID`, `pid:PID` or `cgroup:/PATH`, as applied or as keyed.
    Target(String),
    All,
}

#[derive(Debug, Default)]
pub struct Reverted {
    /// The workloads whose cores were given back.
    pub workloads: Vec<WorkloadKey>,
    pub report: RevertReport,
    /// When the target named nothing applied: the workloads that are.
    pub still_applied: Vec<WorkloadKey>,
    /// Tasks born during an apply, given back the mask their creator had before it.
    pub born: BornReverted,
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
        match which {
            RevertWhich::Target(target) => self.revert_target(target, &lock),
            RevertWhich::All => self.revert_all(&lock),
        }
    }

    fn revert_target(&self, target: &str, lock: &StateLock) -> Result<Reverted, EngineError> {
        let plans = load_all(&self.state)?;
        let Some((id, record)) = plans.into_iter().find(|(_, p)| p.answers_to(target)) else {
            return self.release_orphan_allocation(target, lock);
        };
        let journal = Journal::load(&self.state.journal_path(&id))?;
        if let Some(journal) = &journal {
            self.refuse_if_overlaid(&id, journal, &record)?;
        }
        let which = RevertTarget::One(id.clone());
        let report = revert_locked(&self.state, &which, &*self.backend, lock)?;
        let mut born = BornReverted::default();
        if let Some(journal) = &journal {
            self.widen_born(journal, Some(&record.plan.scope), &mut born);
        }
        self.release(&record, &id)?;
        Ok(Reverted {
            workloads: vec![record.plan.workload],
            report,
            still_applied: Vec::new(),
            born,
        })
    }

    /// Refuses to revert a journal when a newer one changed one of the same knobs (the
    /// host-wide IRQ masks, say): its prior is this one's target, so restoring this one first
    /// would undo the newer workload's isolation, and restoring that one later would bring
    /// this one's values back.
    fn refuse_if_overlaid(
        &self,
        id: &JournalId,
        journal: &Journal,
        record: &AppliedPlan,
    ) -> Result<(), EngineError> {
        let knobs: Vec<Described> = journal.changes.iter().map(Step::describe).collect();
        for other_id in self.state.journal_ids()?.into_iter().filter(|o| o != id) {
            let Some(other) = Journal::load(&self.state.journal_path(&other_id))? else {
                continue;
            };
            if other.started_unix_ms < journal.started_unix_ms {
                continue;
            }
            let shared = other
                .changes
                .iter()
                .map(Step::describe)
                .find(|k| knobs.contains(k));
            if let Some(knob) = shared {
                return Err(EngineError::NewerJournalShares {
                    workload: record.plan.workload.0.clone(),
                    newer: other_id.to_string(),
                    knob: knob.object,
                });
            }
        }
        Ok(())
    }

    /// No plan record answers to `target`. A ledger entry or a journal of that name (left
    /// by a crash in a revert, or by hand) still holds cores or changes: revert them.
    /// Otherwise there is nothing to do, and the answer lists what is applied.
    fn release_orphan_allocation(
        &self,
        target: &str,
        lock: &StateLock,
    ) -> Result<Reverted, EngineError> {
        let key = WorkloadKey(target.to_owned());
        let mut reverted = Reverted::default();
        if let Ok(id) = JournalId::try_from(cgroup_id(&key)) {
            if self.state.journal_path(&id).exists() {
                let which = RevertTarget::One(id);
                reverted.report = revert_locked(&self.state, &which, &*self.backend, lock)?;
            }
        }
        let mut ledger = load_ledger(&self.state)?;
        if ledger.release(&key).is_some() {
            store_ledger(&self.state, &ledger)?;
            reverted.workloads.push(key);
        }
        reverted.still_applied = load_all(&self.state)?
            .into_iter()
            .map(|(_, p)| p.plan.workload)
            .collect();
        Ok(reverted)
    }

    fn revert_all(&self, lock: &StateLock) -> Result<Reverted, EngineError> {
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
        let ledger = load_ledger(&self.state)?;
        let workloads = ledger.iter().map(|a| a.workload().clone()).collect();
        if !ledger.is_empty() {
            store_ledger(&self.state, &Ledger::new())?;
        }
        for id in self.state.plan_ids()? {
            AppliedPlan::remove(&self.state, &id)?;
        }
        Ok(Reverted {
            workloads,
            report,
            still_applied: Vec::new(),
            born,
        })
    }
}
