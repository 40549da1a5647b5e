//! One apply's journal: the changes made, each with the prior value read just before its
//! write, in the order they were made. Each batch of changes reaches the disk before any of
//! its knobs is written, so after a crash at any instant the journal lists every knob that
//! may have changed.
//!
//! Schema 2 (written now) is an append-only log, see [`crate::journal_log`]. Schema 1, a
//! [`nearnative_sys::durable`] envelope rewritten whole before every knob write, is still read, so a
//! journal left by an older nearnative reverts; it is migrated to schema 2 on its next write.

use std::path::Path;

use nearnative_knob::{Described, Step};
use serde::{Deserialize, Serialize};

use crate::journal_log;
use crate::state::{JournalId, StateDir};
use nearnative_sys::durable::{self, DurableError};

/// Version 2: an append-only log of checksummed records (see [`crate::journal_log`]).
pub const JOURNAL_SCHEMA_VERSION: u32 = journal_log::SCHEMA_VERSION;

/// Version 1: a durable envelope whose body is this module's [`Journal`] as JSON, `{id,
/// status, started_unix_ms, changes: [Step], unchangeable}`.
const SCHEMA_1: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalStatus {
    /// Changes are being made, or the apply died part-way: `revert` puts back what is listed.
    InProgress,
    /// Every change was made.
    Applied,
    /// An apply failed and could not roll back everything; what is listed is left to revert.
    RollbackIncomplete,
    /// A revert could not restore everything; what is listed is left.
    RevertIncomplete,
}

/// A knob the kernel would not change (a managed IRQ), left as it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unchangeable {
    pub knob: Described,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    pub id: JournalId,
    pub status: JournalStatus,
    /// When the apply began, for ordering `revert --all` newest first.
    pub started_unix_ms: u64,
    /// The kernel's boot id when the apply began (see [`crate::boot`]); `None` in a journal
    /// written before boots were recorded, or on a host that does not show one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// The changes in the order made; each `from` is the value read just before its write.
    pub changes: Vec<Step>,
    pub unchangeable: Vec<Unchangeable>,
}

impl Journal {
    pub fn new(id: JournalId) -> Self {
        let started_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Journal {
            id,
            status: JournalStatus::InProgress,
            started_unix_ms,
            boot_id: None,
            changes: Vec::new(),
            unchangeable: Vec::new(),
        }
    }

    /// A new journal for `id`, started after every journal in `state` (a millisecond later
    /// than the latest, if the clock has not moved on): journals are ordered by their start,
    /// and a revert hands a shared knob to the next newer journal by that order.
    pub(crate) fn after_all_in(state: &StateDir, id: JournalId) -> Journal {
        let mut journal = Journal::new(id);
        // One that cannot be read is left out: it cannot be reverted either until someone
        // moves it aside, and this apply must not fail for it.
        let latest = state
            .journal_ids()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|other| {
                let path = state.journal_path(&other);
                let from_header = journal_log::started_unix_ms(&path).ok().flatten();
                from_header.or_else(|| Some(Journal::load(&path).ok()??.started_unix_ms))
            });
        if let Some(latest) = latest.max() {
            journal.started_unix_ms = journal.started_unix_ms.max(latest + 1);
        }
        journal
    }

    /// Replaces the journal at `path` with this one, whole and atomically, in schema 2.
    pub fn store(&self, path: &Path) -> Result<(), DurableError> {
        let write_err = |source| DurableError::Write {
            path: path.to_owned(),
            source,
        };
        let bytes = journal_log::encode(self).map_err(|e| write_err(e.into()))?;
        durable::write_atomically(path, &bytes).map_err(write_err)
    }

    /// Reads the journal at `path`, of either schema; `Ok(None)` when there is none. Every
    /// journal anything reverts comes through here, checksums checked.
    pub fn load(path: &Path) -> Result<Option<Journal>, DurableError> {
        let Some(bytes) = journal_log::read(path)? else {
            return Ok(None);
        };
        match journal_log::is_log(&bytes) {
            true => journal_log::decode(path, &bytes).map(Some),
            false => durable::load(path, SCHEMA_1),
        }
    }

    /// Deletes a journal whose changes are all undone, durably: a crash cannot bring back a
    /// journal of changes already reverted.
    pub fn remove(path: &Path) -> Result<(), DurableError> {
        durable::remove(path)
    }
}
