//! `status`: the allocations in force and their journals, read without the lock (a snapshot
//! that an apply running at the same moment may change right after). The state directory is
//! checked to be root's alone first, as for every command.

use nearnative_apply::boot::{Boot, ThisBoot};
use nearnative_apply::journal::{Journal, JournalStatus};
use nearnative_apply::JournalId;
use nearnative_host::CpuSet;
use nearnative_plan::{Allocation, Level, WorkloadKey};
use serde::Serialize;

use crate::applied::{load_all, AppliedPlan};
use crate::boots::boot_of;
use crate::engine::Engine;
use crate::error::EngineError;
use crate::ledger_file::{load_ledger_file, LedgerFile};

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub state_dir: String,
    pub workloads: Vec<StatusEntry>,
    /// Journals no plan record names (a crash in a revert, or a journal left by hand):
    /// `revert --all` undoes them.
    pub orphan_journals: Vec<JournalId>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusEntry {
    pub workload: WorkloadKey,
    /// As given to apply; absent for a ledger entry without a plan record.
    pub target: Option<String>,
    pub level: Level,
    pub exclusive_cpus: CpuSet,
    pub io_cpus: CpuSet,
    pub journal: Option<JournalId>,
    /// `in_progress` for an apply that died part-way; `None` when no journal exists.
    pub journal_status: Option<JournalStatus>,
    pub changes: usize,
    pub applied_unix_ms: Option<u64>,
    /// Who asked for it (`cli`, `policy:FILE:LINE`, ...), when the record says.
    pub origin: Option<String>,
    /// `other`: made in another boot, so its knobs were reset by the reboot; the next apply
    /// or revert closes it without writing the host.
    pub boot: Boot,
}

impl Engine {
    pub fn status(&self) -> Result<Status, EngineError> {
        self.state.check()?;
        let ledger = load_ledger_file(&self.state)?;
        let plans = load_all(&self.state)?;
        let boot = ThisBoot::read(&self.root);
        let mut workloads = Vec::new();
        for allocation in ledger.ledger.iter() {
            let record = plans
                .iter()
                .find(|(_, p)| &p.plan.workload == allocation.workload());
            workloads.push(self.entry(allocation, record, &ledger, &boot)?);
        }
        // A record whose reservation is gone (a crash in a revert) still names a journal.
        for (id, record) in &plans {
            if ledger.ledger.get(&record.plan.workload).is_none() {
                let named = (id.clone(), record.clone());
                let entry = self.entry(&record.plan.allocation, Some(&named), &ledger, &boot)?;
                workloads.push(entry);
            }
        }
        let named: Vec<&JournalId> = plans.iter().map(|(id, _)| id).collect();
        let orphan_journals = self
            .state
            .journal_ids()?
            .into_iter()
            .filter(|id| !named.contains(&id))
            .collect();
        Ok(Status {
            state_dir: self.state.dir().display().to_string(),
            workloads,
            orphan_journals,
        })
    }

    fn entry(
        &self,
        allocation: &Allocation,
        record: Option<&(JournalId, AppliedPlan)>,
        ledger: &LedgerFile,
        boot: &ThisBoot,
    ) -> Result<StatusEntry, EngineError> {
        let journal = match record {
            Some((id, _)) => Journal::load(&self.state.journal_path(id))?,
            None => None,
        };
        Ok(StatusEntry {
            workload: allocation.workload().clone(),
            target: record.map(|(_, p)| p.plan.target.to_string()),
            level: allocation.request.level,
            exclusive_cpus: allocation.exclusive_cpus.clone(),
            io_cpus: allocation.io_cpus.clone(),
            journal: journal.as_ref().map(|j| j.id.clone()),
            journal_status: journal.as_ref().map(|j| j.status),
            changes: journal.as_ref().map_or(0, |j| j.changes.len()),
            applied_unix_ms: record.map(|(_, p)| p.applied_unix_ms),
            origin: record.and_then(|(_, p)| p.origin.clone()),
            boot: boot_of(
                &self.root,
                boot,
                record.map(|(_, p)| p),
                ledger.boot_id(allocation.workload()),
            ),
        })
    }
}
