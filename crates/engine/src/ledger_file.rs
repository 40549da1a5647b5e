//! `ledger.json` in the state directory: the admission ledger, stored durably, with the boot
//! each allocation was made in.

use std::collections::BTreeMap;

use nearnative_apply::StateDir;
use nearnative_plan::{Allocation, Ledger, WorkloadKey};
use nearnative_sys::durable::{self, DurableError};
use serde::{Deserialize, Serialize};

/// The ledger file's schema version. The boot ids came later, as a field older readers skip
/// and newer ones default, so the version stays 1.
pub const LEDGER_SCHEMA_VERSION: u32 = 1;

/// What `ledger.json` holds: the ledger itself (its fields at the top level, as before) and,
/// per workload, the kernel's boot id when its allocation was made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct LedgerFile {
    #[serde(flatten)]
    pub ledger: Ledger,
    /// Absent for an allocation recorded before boots were (or on a host without a boot id).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub boot_ids: BTreeMap<WorkloadKey, String>,
}

impl LedgerFile {
    /// Records `allocation`, made in boot `boot_id`.
    pub fn record(&mut self, allocation: Allocation, boot_id: Option<&str>) {
        let key = allocation.workload().clone();
        match boot_id {
            Some(id) => self.boot_ids.insert(key, id.to_owned()),
            None => self.boot_ids.remove(&key),
        };
        self.ledger.record(allocation);
    }

    pub fn boot_id(&self, workload: &WorkloadKey) -> Option<&str> {
        self.boot_ids.get(workload).map(String::as_str)
    }
}

/// The ledger in force; empty when there is none yet.
pub fn load_ledger(state: &StateDir) -> Result<Ledger, DurableError> {
    Ok(load_ledger_file(state)?.ledger)
}

pub(crate) fn load_ledger_file(state: &StateDir) -> Result<LedgerFile, DurableError> {
    Ok(durable::load(&state.ledger_path(), LEDGER_SCHEMA_VERSION)?.unwrap_or_default())
}

/// Stores the ledger, with the boot ids of the allocations it still holds.
pub(crate) fn store_ledger(state: &StateDir, file: &LedgerFile) -> Result<(), DurableError> {
    let mut file = file.clone();
    let held: Vec<WorkloadKey> = file.ledger.iter().map(|a| a.workload().clone()).collect();
    file.boot_ids.retain(|key, _| held.contains(key));
    durable::store(&state.ledger_path(), LEDGER_SCHEMA_VERSION, &file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nearnative_plan::{AllocationRequest, Level};

    fn allocation(name: &str) -> Allocation {
        Allocation {
            request: AllocationRequest::new(name, 1, Level::High),
            slots: Vec::new(),
            exclusive_cpus: Default::default(),
            reserved_idle: Default::default(),
            io_cpus: Default::default(),
            housekeeping: Default::default(),
            nodes: vec![0],
            notes: Vec::new(),
        }
    }

    #[test]
    fn a_ledger_reads_with_and_without_boot_ids() {
        let mut file = LedgerFile::default();
        file.record(allocation("vm:a"), Some("b1"));
        file.record(allocation("vm:b"), None);
        let json = serde_json::to_value(&file).unwrap();
        assert_eq!(json["boot_ids"]["vm:a"], "b1");
        assert!(json["allocations"]["vm:b"].is_object());
        let back: LedgerFile = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, file);
        // An older reader sees the ledger it knows; an older file has no boot ids.
        let ledger: Ledger = serde_json::from_value(json).unwrap();
        assert_eq!(ledger, file.ledger);
        let old = serde_json::to_value(&file.ledger).unwrap();
        let read: LedgerFile = serde_json::from_value(old).unwrap();
        assert!(read.boot_ids.is_empty());
    }
}
