//! `reconcile`: an applied workload brought back to its plan, against the live host.
//!
//! Level-triggered, as kubelet reconciles: under the state lock the host is read, the
//! workload is planned again on the allocation the ledger holds for it, and every step of that
//! plan is read back as verify does. A re-plan of an unchanged host has no steps, so each step
//! is a knob that reads other than planned:
//!
//! - a knob this workload's journal (or another's) already holds, or that its recorded plan
//!   set: drift. Under [`DriftMode::Repair`] it is written back to the plan's value through
//!   its typed writer, and the journal keeps the prior it had before the first apply, so
//!   revert still restores that. One the recorded plan set but no journal holds was at its
//!   target when applied, so that target is what was there before: it is journaled as the
//!   prior (never the drifted value, which another tool wrote after the apply), then the knob
//!   is written back. Under [`DriftMode::Report`] it is listed and left as found.
//! - any other knob: a thread or process born since the apply (a QEMU iothread, a bystander
//!   with the exclusive CPUs in its mask, a new process in a cgroup target). Its prior is
//!   appended to the workload's journal, durably, before it is written, as apply does.
//!
//! Threads that exited are skipped. When the workload no longer fits its allocation (a vCPU
//! was hot-added or removed) nothing is written, and the caller reverts it and applies afresh.
//! Finally the plan record gains the new steps and the workload's threads as they are now, so
//! verify, status and revert see them.

use std::path::Path;

use nearnative_apply::journal::{Journal, JournalStatus};
use nearnative_apply::{extend_locked, JournalId};
use nearnative_knob::{Described, Step};
use nearnative_plan::{replan, Plan, PlanError};
use nearnative_sys::lock::StateLock;
use nearnative_verify::{read_back, Reading};
use serde::{Deserialize, Serialize};

use crate::applied::{find, AppliedPlan};
use crate::engine::Engine;
use crate::error::EngineError;
use crate::ledger_file::load_ledger;
use crate::threads::{of_request, TargetThread};

/// What to do with a knob that drifted from the plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftMode {
    /// Write it back to the plan's value.
    #[default]
    Repair,
    /// Only say so.
    Report,
}

/// What a reconcile found and did. Each knob is named as verify names it: "object
/// (location)".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reconciled {
    /// Read back other than planned, and written back to the plan's value.
    pub repaired: Vec<String>,
    /// Read back other than planned, and left as found ([`DriftMode::Report`]).
    pub reported: Vec<String>,
    /// Knobs of threads born since the apply, journaled and written.
    pub added: Vec<String>,
    /// Why the workload no longer fits its allocation, or its apply never finished: nothing
    /// was written, and the caller reverts it and applies it afresh.
    pub replan: Option<String>,
    /// Knobs that could not be read or written, each with the reason; left as they are.
    pub failed: Vec<String>,
}

impl Reconciled {
    fn replan(reason: String) -> Reconciled {
        Reconciled {
            replan: Some(reason),
            ..Reconciled::default()
        }
    }

    /// True when the host held the plan: nothing drifted, nothing new, nothing failed.
    pub fn is_clean(&self) -> bool {
        *self == Reconciled::default()
    }
}

/// A fresh plan and the workload's threads, or why the workload no longer fits.
type Replanned = Result<(Plan, Vec<TargetThread>), String>;

/// How one step of the fresh plan is handled.
enum Action {
    /// Drifted and journaled somewhere: write the target only.
    Rewrite,
    /// Drifted, planned, in no journal: this step, whose prior is the recorded plan's
    /// target, is journaled, then the knob written.
    JournalAtTarget(Step),
    /// New since the apply: journal its prior, read now, then write.
    Journal,
    /// Drifted, and only reported.
    Report,
}

impl Engine {
    /// Reconciles the workload `workload` names (as applied, or by its ledger key) with the
    /// live host; see the module doc.
    pub fn reconcile(&self, workload: &str, mode: DriftMode) -> Result<Reconciled, EngineError> {
        self.check_privilege("reconcile")?;
        self.state.ensure()?;
        let lock = StateLock::acquire(self.state.dir())?;
        self.close_other_boots_locked(&lock)?;
        let (id, record) = find(&self.state, workload)?;
        let journal = match Journal::load(&self.state.journal_path(&id))? {
            Some(journal) if journal.status == JournalStatus::Applied => journal,
            Some(journal) => {
                return Ok(Reconciled::replan(format!(
                    "its journal {id} is {:?}, not applied",
                    journal.status
                )));
            }
            None => {
                return Ok(Reconciled::replan(format!(
                    "it has no journal {id}: the apply did not finish"
                )))
            }
        };
        let (fresh, threads) = match self.replanned(&record)? {
            Ok(replanned) => replanned,
            Err(reason) => return Ok(Reconciled::replan(reason)),
        };
        let others = self.other_journals(&id)?;
        let mut out = Reconciled::default();
        let mut rewrites = Vec::new();
        let mut at_target = Vec::new();
        let mut journaled = Vec::new();
        let readback = read_back(&fresh, &*self.backend, Vec::new());
        for (change, reading) in fresh.changes.iter().zip(&readback.readings) {
            match &reading.state {
                Reading::Holds | Reading::Gone => continue,
                Reading::Unreadable { reason } => {
                    out.failed
                        .push(format!("{}: {reason}", named(&reading.knob)));
                    continue;
                }
                Reading::Differs { .. } => {}
            }
            let step = &change.step;
            if journal.unchangeable.iter().any(|u| u.knob == reading.knob) {
                continue;
            }
            match action(step, &record.plan, &journal, &others, mode) {
                Action::Rewrite => rewrites.push(step.clone()),
                Action::JournalAtTarget(prior_at_target) => at_target.push(prior_at_target),
                Action::Journal => journaled.push(step.clone()),
                Action::Report => out.reported.push(named(&reading.knob)),
            }
        }
        if !at_target.is_empty() {
            journal_in_place(journal, &at_target, &self.state.journal_path(&id))?;
            rewrites.extend(at_target);
        }
        self.rewrite(&rewrites, &mut out);
        let added = self.journal_and_write(&journaled, &id, &lock, &record, &mut out)?;
        self.store_reconciled(&id, record, &fresh, &added, threads)?;
        Ok(out)
    }

    /// The plan for `record`'s request on the host as it is now, on the allocation the
    /// ledger holds for it, with the workload's threads now; `Err(reason)` when it no longer
    /// fits that allocation.
    fn replanned(&self, record: &AppliedPlan) -> Result<Replanned, EngineError> {
        let ledger = load_ledger(&self.state)?;
        let Some(holds) = ledger.get(&record.plan.workload) else {
            return Ok(Err("its ledger entry is gone".to_owned()));
        };
        let request = &record.request;
        let host = self.read_host(&request.target);
        let plan = match replan(&host, request, &ledger, holds) {
            Ok(plan) => plan,
            Err(PlanError::AllocationNoLongerFits { reason, .. }) => return Ok(Err(reason)),
            Err(err) => return Err(err.into()),
        };
        Ok(Ok((plan, of_request(&host, request)?)))
    }

    /// Every journal but `id`'s: a knob one of them holds keeps its first prior there.
    fn other_journals(&self, id: &JournalId) -> Result<Vec<Journal>, EngineError> {
        let mut journals = Vec::new();
        for other in self.state.journal_ids()?.into_iter().filter(|o| o != id) {
            journals.extend(Journal::load(&self.state.journal_path(&other))?);
        }
        Ok(journals)
    }

    /// Writes each drifted knob back to its target, journal untouched.
    fn rewrite(&self, steps: &[Step], out: &mut Reconciled) {
        for step in steps {
            let knob = named(&step.describe());
            match step.write_target(&*self.backend) {
                Ok(()) => out.repaired.push(knob),
                Err(err) if err.is_gone() => {}
                Err(err) if err.is_refused() && step.best_effort() => {}
                Err(err) => out.failed.push(err.to_string()),
            }
        }
    }

    /// Appends `steps` to the workload's journal and writes them, as apply does; returns the
    /// steps written. A failure rolls back what it added and leaves the workload as it was.
    fn journal_and_write(
        &self,
        steps: &[Step],
        id: &JournalId,
        lock: &StateLock,
        record: &AppliedPlan,
        out: &mut Reconciled,
    ) -> Result<Vec<Step>, EngineError> {
        if steps.is_empty() {
            return Ok(Vec::new());
        }
        let report = extend_locked(steps, &*self.backend, &self.state, id, lock)?;
        let written: Vec<Step> = steps
            .iter()
            .filter(|s| report.changed.contains(&s.describe()))
            .cloned()
            .collect();
        for step in &written {
            let planned = record.plan.changes.iter().any(|c| c.step.same_knob(step));
            match planned {
                true => out.repaired.push(named(&step.describe())),
                false => out.added.push(named(&step.describe())),
            }
        }
        Ok(written)
    }

    /// Stores the record with the fresh plan's version of each step it changed or added, and
    /// the workload's threads as they are now; only when something differs.
    fn store_reconciled(
        &self,
        id: &JournalId,
        record: AppliedPlan,
        fresh: &Plan,
        added: &[Step],
        threads: Vec<TargetThread>,
    ) -> Result<(), EngineError> {
        let mut updated = record.clone();
        for change in &fresh.changes {
            let known = updated
                .plan
                .changes
                .iter_mut()
                .find(|c| c.step.same_knob(&change.step));
            match known {
                Some(known) => known.clone_from(change),
                None if added.iter().any(|s| s.same_knob(&change.step)) => {
                    updated.plan.changes.push(change.clone());
                }
                None => {}
            }
        }
        updated.threads = threads;
        if updated != record {
            updated.store(&self.state, id)?;
        }
        Ok(())
    }
}

/// How a step of the fresh plan that reads other than planned is handled.
fn action(
    step: &Step,
    recorded: &Plan,
    journal: &Journal,
    others: &[Journal],
    mode: DriftMode,
) -> Action {
    let held = |journal: &Journal| journal.changes.iter().any(|c| c.same_knob(step));
    let journaled = held(journal) || others.iter().any(held);
    let planned = recorded
        .changes
        .iter()
        .find_map(|c| step.with_prior_at_target_of(&c.step));
    match (journaled, planned, mode) {
        (false, None, _) => Action::Journal,
        (_, _, DriftMode::Report) => Action::Report,
        (true, _, DriftMode::Repair) => Action::Rewrite,
        (false, Some(prior_at_target), DriftMode::Repair) => {
            Action::JournalAtTarget(prior_at_target)
        }
    }
}

/// Adds `steps` to the applied `journal` at `path`, which is rewritten whole and durably
/// before any of their knobs is written. Their priors are given, not read: the executor's
/// append would journal the value read now.
fn journal_in_place(mut journal: Journal, steps: &[Step], path: &Path) -> Result<(), EngineError> {
    journal.changes.extend_from_slice(steps);
    journal.store(path)?;
    Ok(())
}

fn named(knob: &Described) -> String {
    format!("{} ({})", knob.object, knob.location)
}
