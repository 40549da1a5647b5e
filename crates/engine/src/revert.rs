//! `revert`: undo a workload's journal, then give its cores back, under one hold of the lock.
//!
//! A workload is named as it was applied (`vm-pid:4000`) or by its ledger key (`vm:web1`).
//! Reverting what is not applied is not an error: a second revert says there was nothing to
//! do. `--all` also undoes journals whose plan record is missing (an apply killed between the
//! two writes) and empties the ledger.

use nearnative_apply::lock::StateLock;
use nearnative_apply::{revert_locked, RevertReport, RevertTarget};
use nearnative_plan::{Ledger, WorkloadKey};

use crate::applied::{load_all, AppliedPlan};
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
            return self.release_orphan_allocation(target);
        };
        let report = revert_locked(
            &self.state,
            &RevertTarget::One(id.clone()),
            &*self.backend,
            lock,
        )?;
        self.release(&record, &id)?;
        Ok(Reverted {
            workloads: vec![record.plan.workload],
            report,
        })
    }

    /// A ledger entry with no plan record (left by an apply killed before it stored the
    /// plan) holds cores for nothing: revert gives them back.
    fn release_orphan_allocation(&self, target: &str) -> Result<Reverted, EngineError> {
        let mut ledger = load_ledger(&self.state)?;
        let key = WorkloadKey(target.to_owned());
        match ledger.release(&key) {
            Some(_) => {
                store_ledger(&self.state, &ledger)?;
                Ok(Reverted {
                    workloads: vec![key],
                    report: RevertReport::default(),
                })
            }
            None => Ok(Reverted::default()),
        }
    }

    fn revert_all(&self, lock: &StateLock) -> Result<Reverted, EngineError> {
        let report = revert_locked(&self.state, &RevertTarget::All, &*self.backend, lock)?;
        let ledger = load_ledger(&self.state)?;
        let workloads = ledger.iter().map(|a| a.workload().clone()).collect();
        if !ledger.is_empty() {
            store_ledger(&self.state, &Ledger::new())?;
        }
        for id in self.state.plan_ids()? {
            AppliedPlan::remove(&self.state, &id)?;
        }
        Ok(Reverted { workloads, report })
    }
}
