//! One apply's journal: the changes made, each with the prior value read just before its
//! write, in the order they were made. It is stored through [`crate::durable`] before every
//! knob write, so after a crash at any instant it lists every knob that may have changed.

use std::path::Path;

use nearnative_knob::{Described, Step};
use serde::{Deserialize, Serialize};

use crate::durable::{self, DurableError};
use crate::state::JournalId;

/// Version 1: `{id, status, started_unix_ms, changes: [Step], unchangeable}`.
pub const JOURNAL_SCHEMA_VERSION: u32 = 1;

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
            changes: Vec::new(),
            unchangeable: Vec::new(),
        }
    }

    pub fn store(&self, path: &Path) -> Result<(), DurableError> {
        durable::store(path, JOURNAL_SCHEMA_VERSION, self)
    }

    pub fn load(path: &Path) -> Result<Option<Journal>, DurableError> {
        durable::load(path, JOURNAL_SCHEMA_VERSION)
    }

    /// Deletes a journal whose changes are all undone, durably: a crash cannot bring back a
    /// journal of changes already reverted.
    pub fn remove(path: &Path) -> Result<(), DurableError> {
        durable::remove(path)
    }
}
