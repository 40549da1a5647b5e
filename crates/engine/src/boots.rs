//! Entries from another boot. A reboot reset every knob an apply wrote, ended the workload's
//! threads and removed its cgroups, so its journal, plan record and ledger entry describe
//! nothing on this host. Reverting the journal would write its stale priors over what this
//! boot set; keeping the record would refuse a fresh apply as "already applied". So they are
//! closed: removed from the state directory without a single host write.
//!
//! Each entry is judged by the boot id it recorded, or, when written before boot ids were,
//! by its time against this boot's start and by its threads: one with a thread still alive is
//! never closed (see [`nearnative_apply::boot`]). A record from another boot takes its journal
//! and its ledger entry with it.

use nearnative_apply::boot::{Boot, ThisBoot};
use nearnative_apply::journal::Journal;
use nearnative_apply::JournalId;
use nearnative_host::Root;
use nearnative_plan::WorkloadKey;
use nearnative_sys::lock::StateLock;
use serde::{Deserialize, Serialize};

use crate::applied::{load_all, AppliedPlan};
use crate::engine::Engine;
use crate::error::EngineError;
use crate::ledger_file::{load_ledger_file, store_ledger, LedgerFile};
use crate::threads::any_step_thread_alive;

/// A workload's state from another boot, removed without writing the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedEntry {
    /// The workload its plan record or ledger entry named; `None` for a journal alone.
    pub workload: Option<WorkloadKey>,
    /// Its journal, when there was one.
    pub journal: Option<JournalId>,
    /// The boot it was made in; `None` for one written before boot ids were recorded, found
    /// older than this boot.
    pub boot_id: Option<String>,
}

impl Engine {
    /// Closes every plan record, journal and ledger entry made in another boot, under the
    /// state lock, without writing the host, and says what it closed.
    pub fn close_other_boots(&self) -> Result<Vec<ClosedEntry>, EngineError> {
        self.check_privilege("closing entries of another boot")?;
        if !self.state.dir().is_dir() {
            return Ok(Vec::new());
        }
        let lock = StateLock::acquire(self.state.dir())?;
        self.close_other_boots_locked(&lock)
    }

    /// [`Engine::close_other_boots`] for a caller that holds the lock.
    pub(crate) fn close_other_boots_locked(
        &self,
        _held: &StateLock,
    ) -> Result<Vec<ClosedEntry>, EngineError> {
        let boot = ThisBoot::read(&self.root);
        if boot == ThisBoot::default() {
            return Ok(Vec::new());
        }
        let records = load_all(&self.state)?;
        let mut closed: Vec<ClosedEntry> = records
            .iter()
            .filter(|(_, record)| record_boot(&self.root, &boot, record) == Boot::Other)
            .map(|(id, record)| ClosedEntry {
                workload: Some(record.plan.workload.clone()),
                journal: self.state.journal_path(id).exists().then(|| id.clone()),
                boot_id: record.boot_id.clone(),
            })
            .collect();
        let named: Vec<&JournalId> = records.iter().map(|(id, _)| id).collect();
        for id in self.state.journal_ids()? {
            if !named.contains(&&id) {
                closed.extend(self.orphan_journal_closed(&boot, id));
            }
        }
        let mut ledger = load_ledger_file(&self.state)?;
        let kept_keys: Vec<&WorkloadKey> = records
            .iter()
            .map(|(_, record)| &record.plan.workload)
            .filter(|key| !closed.iter().any(|c| c.workload.as_ref() == Some(*key)))
            .collect();
        for allocation in ledger.ledger.iter() {
            let key = allocation.workload();
            let recorded = ledger.boot_id(key);
            let other = recorded.is_some_and(|id| boot.of_id(id) == Boot::Other);
            let has_entry = closed.iter().any(|c| c.workload.as_ref() == Some(key));
            if other && !has_entry && !kept_keys.contains(&key) {
                closed.push(ClosedEntry {
                    workload: Some(key.clone()),
                    journal: None,
                    boot_id: recorded.map(str::to_owned),
                });
            }
        }
        self.remove_closed(&closed, &records, &mut ledger)?;
        Ok(closed)
    }

    /// A journal no record names, closed when it is from another boot. One that cannot be
    /// read is left for `revert --all`, which names what is wrong with it.
    fn orphan_journal_closed(&self, boot: &ThisBoot, id: JournalId) -> Option<ClosedEntry> {
        let journal = Journal::load(&self.state.journal_path(&id)).ok()??;
        let alive = || any_step_thread_alive(&self.root, &journal.changes);
        let other = boot.of(journal.boot_id.as_deref(), journal.started_unix_ms, alive);
        let other = other == Boot::Other;
        other.then_some(ClosedEntry {
            workload: None,
            journal: Some(id),
            boot_id: journal.boot_id,
        })
    }

    /// Journals first, then the ledger, then the records: a crash part-way leaves entries
    /// that are still judged from another boot on their own, and closed next time.
    fn remove_closed(
        &self,
        closed: &[ClosedEntry],
        records: &[(JournalId, AppliedPlan)],
        ledger: &mut LedgerFile,
    ) -> Result<(), EngineError> {
        for id in closed.iter().filter_map(|c| c.journal.as_ref()) {
            Journal::remove(&self.state.journal_path(id))?;
        }
        let mut released = false;
        for key in closed.iter().filter_map(|c| c.workload.as_ref()) {
            released |= ledger.ledger.release(key).is_some();
        }
        if released {
            store_ledger(&self.state, ledger)?;
        }
        for (id, record) in records {
            if closed
                .iter()
                .any(|c| c.workload.as_ref() == Some(&record.plan.workload))
            {
                AppliedPlan::remove(&self.state, id)?;
            }
        }
        Ok(())
    }
}

/// The boot a workload's record (else its ledger entry) was made in.
pub(crate) fn boot_of(
    root: &Root,
    boot: &ThisBoot,
    record: Option<&AppliedPlan>,
    ledger_boot_id: Option<&str>,
) -> Boot {
    match (record, ledger_boot_id) {
        (Some(record), _) => record_boot(root, boot, record),
        (None, Some(id)) => boot.of_id(id),
        (None, None) => Boot::Unknown,
    }
}

fn record_boot(root: &Root, boot: &ThisBoot, record: &AppliedPlan) -> Boot {
    let alive = || record.threads.iter().any(|t| t.is_alive(root));
    boot.of(record.boot_id.as_deref(), record.applied_unix_ms, alive)
}
