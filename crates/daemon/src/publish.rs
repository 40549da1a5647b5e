//! What the loop tells the rest of the daemon after each round: the status the control socket
//! answers and the metrics count, the processes and cgroups whose events matter now, and its
//! own threads' place on the housekeeping CPUs.

use std::collections::BTreeSet;
use std::path::PathBuf;

use nearnative_engine::{load_ledger, ClosedEntry};
use nearnative_host::{CpuSet, Host};
use nearnative_plan::scope::cpus_of;
use nearnative_plan::{Ledger, Target};

use crate::book::source_of;
use crate::daemon::DaemonError;
use crate::held::Record;
use crate::housekeeping::{free_cores_by_node, housekeeping_cpus, pin_self};
use crate::runner::Runner;
use crate::status::{DaemonStatus, WorkloadState, WorkloadStatus};

/// The CPUs of the daemon's scope: its cpuset's, or every online CPU.
fn scope_cpus(host: &Host, scope: Option<&str>) -> CpuSet {
    let online = &host.topology.online;
    let cpusets = &host.isolation.cgroups.cpusets;
    let cpuset = scope.and_then(|path| cpusets.iter().find(|c| c.path == path));
    cpuset.map_or_else(|| online.clone(), |cpuset| cpus_of(cpuset, online))
}

/// How the log names an entry of another boot: `vm:a (journal vm-a, boot 0f6c...)`.
fn closed_words(entry: &ClosedEntry) -> String {
    let name = match (&entry.workload, &entry.journal) {
        (Some(workload), _) => workload.0.clone(),
        (None, Some(journal)) => format!("journal {journal}"),
        (None, None) => "an entry".to_owned(),
    };
    let boot = entry
        .boot_id
        .as_deref()
        .unwrap_or("unrecorded, older than this boot");
    match (&entry.workload, &entry.journal) {
        (Some(_), Some(journal)) => format!("{name} (journal {journal}, boot {boot})"),
        _ => format!("{name} (boot {boot})"),
    }
}

impl Runner {
    /// The ledger in force; the records' allocations when it cannot be read (the error shows
    /// in the next round that needs it).
    fn ledger(&self, records: &[Record]) -> Ledger {
        load_ledger(self.engine.state()).unwrap_or_else(|_| {
            let mut ledger = Ledger::new();
            for record in records {
                ledger.record(record.applied.plan.allocation.clone());
            }
            ledger
        })
    }

    /// Pins every thread of the daemon to the scope's CPUs that no workload holds, when they
    /// differ from those it last pinned for: the ledger changes through the loop's own
    /// applies and reverts, and through the control socket's.
    pub(crate) fn pin_to_housekeeping(
        &mut self,
        host: &Host,
        records: &[Record],
    ) -> Result<(), DaemonError> {
        let scope = scope_cpus(host, self.config.scope.as_deref());
        let cpus = housekeeping_cpus(&scope, &self.ledger(records));
        if self.pinned.as_ref() == Some(&cpus) {
            return Ok(());
        }
        pin_self(&self.root, &cpus)?;
        self.pinned = Some(cpus);
        Ok(())
    }

    /// The processes whose threads, forks and exits matter (applied workloads, VMs still
    /// starting), and the cgroup v2 directories of applied cgroup targets.
    pub(crate) fn watch(&mut self, host: &Host, records: &[Record]) {
        let applied = records.iter().filter(|r| r.alive);
        let pids = applied
            .clone()
            .flat_map(|r| r.applied.threads.iter().map(|t| t.pid));
        self.watched = pids.chain(self.gate.pids()).collect::<BTreeSet<u32>>();
        let unified = host.isolation.cgroups.unified_mount.as_ref();
        self.cgroups = applied
            .filter_map(|r| match &r.applied.plan.target {
                Target::Cgroup(path) => Some(unified?.join(path.trim_start_matches('/'))),
                _ => None,
            })
            .filter(|dir: &PathBuf| self.root.exists(dir.join("cgroup.events")))
            .collect();
    }

    /// Builds the status from the records and the loop's memory, and hands it on.
    pub(crate) fn publish(&mut self, host: &Host, records: &[Record]) {
        let mut workloads: Vec<WorkloadStatus> = Vec::new();
        for record in records {
            workloads.push(self.applied_status(record));
        }
        for (key, unapplied) in &self.book.unapplied {
            workloads.push(WorkloadStatus {
                workload: key.0.clone(),
                target: unapplied.target.clone(),
                source: unapplied.source.clone(),
                state: unapplied.state.clone(),
                exclusive_cpus: CpuSet::default(),
                io_cpus: CpuSet::default(),
                interference: None,
            });
        }
        let scope = scope_cpus(host, self.config.scope.as_deref());
        let status = DaemonStatus {
            pid: std::process::id(),
            state_dir: self.config.state_dir.clone(),
            policy_dir: self.config.policy_dir.clone(),
            workloads,
            free_cores_by_node: free_cores_by_node(&host.topology, &scope, &self.ledger(records)),
            policy_errors: self.policies.errors.iter().map(|e| e.to_string()).collect(),
            notes: self.notes.clone(),
            counters: self.book.counters,
        };
        self.metrics.update(&status);
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = status;
    }

    fn applied_status(&mut self, record: &Record) -> WorkloadStatus {
        let plan = &record.applied.plan;
        let key = &plan.workload;
        let state = match (record.died, self.book.drifted.get(key)) {
            (true, _) => WorkloadState::Failed {
                reason: "its apply died part-way; it is reverted, then applied afresh".to_owned(),
            },
            (false, Some(knobs)) => WorkloadState::Drifted {
                knobs: knobs.clone(),
            },
            (false, None) => WorkloadState::Applied,
        };
        let exclusive = record.applied.threads.iter().filter(|t| t.exclusive);
        let threads: Vec<(u32, u32)> = exclusive.map(|t| (t.pid, t.tid)).collect();
        let cpus = &plan.allocation.exclusive_cpus;
        WorkloadStatus {
            workload: key.0.clone(),
            target: plan.target.to_string(),
            source: source_of(record.applied.origin.as_deref()),
            state,
            exclusive_cpus: cpus.clone(),
            io_cpus: plan.allocation.io_cpus.clone(),
            // A thread that exits between the read of the records and the sample makes it fail;
            // the next round samples again.
            interference: self.sampler.sample(&key.0, cpus, &threads).ok(),
        }
    }

    /// Removes the temporary files of state writers killed between write and rename (an
    /// earlier daemon's `kill -9` mid-store), so that nothing it left lingers.
    fn remove_orphaned_temporaries(&self) {
        let state = self.engine.state();
        let dirs = [
            state.dir().to_owned(),
            state.plans_dir(),
            state.journals_dir(),
        ];
        for dir in dirs {
            match nearnative_sys::durable::remove_orphaned_temporaries(&dir) {
                Ok(removed) if removed.is_empty() => {}
                Ok(removed) => crate::log::line(&format!(
                    "{}: removed what a killed writer left: {}",
                    dir.display(),
                    removed.join(", ")
                )),
                Err(err) => crate::log::line(&format!(
                    "{}: cannot remove what a killed writer left: {err}",
                    dir.display()
                )),
            }
        }
    }

    /// Closes what another boot left (without a host write), says what it adopted, and
    /// pins the daemon to the housekeeping CPUs. An apply that died part-way is reverted,
    /// then applied afresh, by the first round.
    pub fn adopt(&mut self) -> Result<(), DaemonError> {
        let closed = self.engine.close_other_boots()?;
        if !closed.is_empty() {
            let entries: Vec<String> = closed.iter().map(closed_words).collect();
            crate::log::line(&format!(
                "closed what another boot left, without writing the host (a reboot resets the \
                 knobs and ends the threads): {}",
                entries.join(", ")
            ));
        }
        self.remove_orphaned_temporaries();
        let records = crate::held::read(
            self.engine.state(),
            &self.root,
            self.config.scope.as_deref(),
        )?;
        crate::log::line(&format!(
            "started on {} with {} workload(s) applied",
            self.config.state_dir.display(),
            records.len()
        ));
        let host = Host::read(&self.root, &nearnative_host::InspectOptions::default());
        self.pin_to_housekeeping(&host, &records)
    }
}
