//! The admissions not applied yet, of both two-phase sources (libvirt's `prepare`, the NRI
//! plugin's CreateContainer): every admission and every apply the daemon makes counts them
//! as held, so no workload is given cores promised to another that has not started yet.

use std::sync::Mutex;
use std::time::Instant;

use nearnative_plan::{Allocation, WorkloadKey};

use crate::kubernetes::Containers;
use crate::libvirt::Domains;

/// The pending admissions at `now` of every workload but `key` (its own is its to take).
pub fn pending_except(
    domains: &Mutex<Domains>,
    containers: &Mutex<Containers>,
    key: &WorkloadKey,
    now: Instant,
) -> Vec<Allocation> {
    let mut pending = domains
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pending_except(key, now);
    let mut containers = containers.lock().unwrap_or_else(|e| e.into_inner());
    pending.extend(containers.pending_except(key, now));
    pending
}
