//! [`Engine`]: one host, one state directory, one backend; and `apply`, which plans against
//! the ledger and executes the plan under a single hold of the state lock.

use std::io;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use nearnative_apply::boot::boot_id;
use nearnative_apply::{
    apply_locked, revert_locked, ApplyError, ApplyReport, JournalId, RevertTarget, StateDir,
};
use nearnative_host::{Host, InspectOptions, Root};
use nearnative_knob::{Backend, LiveBackend, Step};
use nearnative_plan::{plan, Allocation, Ledger, Note, Plan, PlanRequest, Target};
use nearnative_sys::durable::DurableError;
use nearnative_sys::lock::StateLock;

use crate::applied::{load_all, AppliedPlan};
use crate::boots::ClosedEntry;
use crate::error::EngineError;
use crate::ledger_file::{load_ledger, load_ledger_file, store_ledger, LedgerFile};
use crate::threads::{first_gone, of_request, TargetThread};

/// Where the engine reads the host, how it writes knobs, and where it keeps its state.
pub struct Engine {
    pub(crate) root: Root,
    pub(crate) backend: Box<dyn Backend>,
    pub(crate) state: StateDir,
    pub(crate) inspect: InspectOptions,
}

/// A plan carried out.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Applied {
    pub plan: Plan,
    pub report: ApplyReport,
    /// Where the plan is recorded for `revert`, `verify` and `status`.
    pub record: PathBuf,
    /// Entries of another boot closed first (see [`Engine::close_other_boots`]).
    pub closed: Vec<ClosedEntry>,
}

impl Engine {
    /// The live host, written through the kernel's files.
    pub fn live(state_dir: impl Into<PathBuf>) -> Self {
        Engine::new(
            Root::default(),
            Box::new(LiveBackend::new()),
            StateDir::new(state_dir),
        )
    }

    /// Any host: a captured tree read through `root` and written through a tree backend in
    /// tests, or the live host.
    pub fn new(root: Root, backend: Box<dyn Backend>, state: StateDir) -> Self {
        Engine {
            root,
            backend,
            state,
            inspect: InspectOptions::default(),
        }
    }

    /// Inspect options for reading the host (QMP sockets of VMs started without one).
    pub fn with_inspect(mut self, inspect: InspectOptions) -> Self {
        self.inspect = inspect;
        self
    }

    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// Plans `request` against the ledger and applies it, all under the state lock.
    ///
    /// The allocation and the plan are recorded before the first knob is written, so after a
    /// crash the cores stay reserved and `revert` finds the journal. If the apply fails, or one
    /// of the workload's own threads exits meanwhile, everything is rolled back, the record
    /// and the reservation go, and the error says why. When the rollback itself is incomplete,
    /// record, reservation and journal all stay for `revert`.
    ///
    /// Entries of another boot are closed first, under the same lock, so a workload applied
    /// before a reboot is applied afresh rather than refused.
    pub fn apply(&self, request: &PlanRequest) -> Result<Applied, EngineError> {
        self.apply_with(request, None, &[], |steps, id, lock| {
            apply_locked(steps, &*self.backend, &self.state, id, lock)
        })
    }

    /// [`Engine::apply`], recording who asked for it (`cli`, `policy:FILE:LINE`,
    /// `libvirt:NAME`) in the plan record, for `status`.
    pub fn apply_from(&self, request: &PlanRequest, origin: &str) -> Result<Applied, EngineError> {
        self.apply_pending(request, origin, &[])
    }

    /// [`Engine::apply_from`], planned with the allocations of `pending` (admitted, not
    /// applied yet: a VM between libvirt's `prepare` and `started`) counted as held, as
    /// [`Engine::admit`] counts them, so the apply cannot take cores promised to another.
    /// Only the plan sees them: the ledger stored records this workload alone.
    pub fn apply_pending(
        &self,
        request: &PlanRequest,
        origin: &str,
        pending: &[Allocation],
    ) -> Result<Applied, EngineError> {
        self.apply_with(request, Some(origin), pending, |steps, id, lock| {
            apply_locked(steps, &*self.backend, &self.state, id, lock)
        })
    }

    /// [`Engine::apply`], its executor stopping dead at `crash` as a killed process would,
    /// after the record and the reservation are made. Tests only.
    #[cfg(feature = "fault-injection")]
    pub fn apply_with_crash(
        &self,
        request: &PlanRequest,
        crash: nearnative_apply::Crash,
    ) -> Result<Applied, EngineError> {
        self.apply_with(request, None, &[], |steps, id, lock| {
            nearnative_apply::apply_locked_with_crash(
                steps,
                &*self.backend,
                &self.state,
                id,
                lock,
                crash,
            )
        })
    }

    fn apply_with(
        &self,
        request: &PlanRequest,
        origin: Option<&str>,
        pending: &[Allocation],
        execute: impl Fn(&[Step], &JournalId, &StateLock) -> Result<ApplyReport, ApplyError>,
    ) -> Result<Applied, EngineError> {
        self.check_privilege("apply")?;
        self.state.ensure()?;
        let lock = StateLock::acquire(self.state.dir())?;
        let closed = self.close_other_boots_locked(&lock)?;
        let mut ledger = load_ledger_file(&self.state)?;
        let planned_against = with_pending(&ledger.ledger, pending);
        let mut record = self.planned_record(request, &planned_against)?;
        record.origin = origin.map(str::to_owned);
        let id = record.id()?;
        self.refuse_conflicts(&record, &id)?;
        record.store(&self.state, &id)?;
        ledger.record(record.plan.allocation.clone(), record.boot_id.as_deref());
        if let Err(err) = store_ledger(&self.state, &ledger) {
            let _ = AppliedPlan::remove(&self.state, &id);
            return Err(err.into());
        }
        let steps = record.plan.steps();
        let report = match execute(&steps, &id, &lock) {
            Ok(report) => report,
            Err(err) if self.state.journal_path(&id).exists() => return Err(err.into()),
            Err(err) => return Err(self.released_after(err.into(), &mut ledger, &record, &id)),
        };
        if let Some(gone) = first_gone(&self.root, &record.threads) {
            let which = RevertTarget::One(id.clone());
            let reverted = revert_locked(&self.state, &which, &*self.backend, &lock)?;
            let exited = EngineError::TargetExited {
                workload: record.plan.workload.0.clone(),
                pid: gone.pid,
                tid: gone.tid,
                restored: reverted.journals.iter().map(|j| j.restored.len()).sum(),
            };
            return Err(self.released_after(exited, &mut ledger, &record, &id));
        }
        Ok(Applied {
            record: self.state.plan_path(&id),
            plan: record.plan,
            report,
            closed,
        })
    }

    /// The plan for `request` on the host as it is now, with the workload's threads.
    fn planned_record(
        &self,
        request: &PlanRequest,
        ledger: &Ledger,
    ) -> Result<AppliedPlan, EngineError> {
        let host = self.read_host(&request.target);
        let plan = plan(&host, request, ledger)?;
        let record = AppliedPlan {
            request: request.clone(),
            threads: of_request(&host, request)?,
            plan,
            applied_unix_ms: unix_ms(),
            origin: None,
            boot_id: boot_id(&self.root),
        };
        let affinity_now = |t: &TargetThread| {
            let process = host.tasks.process(t.pid)?;
            Some(process.thread(t.tid)?.affinity.clone())
        };
        let cpuset_now = |t: &TargetThread| {
            let process = host.tasks.process(t.pid)?;
            let cgroup = process.cgroup_of(process.thread(t.tid)?)?;
            cgroup.cpuset_v1.clone()
        };
        match record.unpinned_thread(affinity_now, cpuset_now) {
            Some(thread) => Err(EngineError::NotPinned {
                workload: record.plan.workload.0.clone(),
                pid: thread.pid,
                tid: thread.tid,
            }),
            None => Ok(record),
        }
    }

    /// `error`, once the reservation and the record are gone; if they cannot be removed,
    /// the message says so too (status and revert still see them).
    fn released_after(
        &self,
        error: EngineError,
        ledger: &mut LedgerFile,
        record: &AppliedPlan,
        id: &JournalId,
    ) -> EngineError {
        match self.release(ledger, record, id) {
            Ok(()) => error,
            Err(release) => EngineError::NotReleased {
                error: Box::new(error),
                release: Box::new(release),
            },
        }
    }

    /// The plan `apply` would carry out now, against the ledger in force. Changes nothing,
    /// and works without root: an unreadable ledger (root's alone) counts as empty, and the
    /// plan's notes say so.
    pub fn plan(&self, request: &PlanRequest) -> Result<Plan, EngineError> {
        let (ledger, unread) = match load_ledger(&self.state) {
            Err(DurableError::Read { path, source })
                if source.kind() == io::ErrorKind::PermissionDenied =>
            {
                (Ledger::new(), Some(path))
            }
            other => (other?, None),
        };
        let mut plan = plan(&self.read_host(&request.target), request, &ledger)?;
        if let Some(path) = unread {
            plan.notes.push(Note::LedgerUnreadable { path });
        }
        Ok(plan)
    }

    pub(crate) fn check_privilege(&self, operation: &'static str) -> Result<(), EngineError> {
        match self.backend.is_live() && !nix::unistd::geteuid().is_root() {
            true => Err(EngineError::NotRoot { operation }),
            false => Ok(()),
        }
    }

    /// The host as the planner should see it. This process is left out unless it is the
    /// target: it is gone by the time anyone reverts, so a step for it would only clutter.
    pub(crate) fn read_host(&self, target: &Target) -> Host {
        let mut host = Host::read(&self.root, &self.inspect);
        let own = std::process::id();
        if self.root.is_live() && *target != Target::Pid(own) {
            host.tasks.processes.retain(|p| p.pid != own);
        }
        host
    }

    /// Refuses a workload already applied (by the same key, whatever id its record has, or
    /// by the same id) and a thread another applied workload already holds (the same VM
    /// named another way).
    fn refuse_conflicts(&self, record: &AppliedPlan, id: &JournalId) -> Result<(), EngineError> {
        let workload = record.plan.workload.0.clone();
        let others = load_all(&self.state)?;
        let same_key = others
            .iter()
            .find(|(_, other)| other.plan.workload == record.plan.workload)
            .map(|(other_id, _)| self.state.plan_path(other_id));
        let existing = [self.state.plan_path(id), self.state.journal_path(id)];
        let same_id = existing.into_iter().find(|path| path.exists());
        if let Some(path) = same_key.or(same_id) {
            return Err(EngineError::AlreadyApplied { workload, path });
        }
        for (_, other) in others {
            let taken = record.threads.iter().find(|t| other.holds(t));
            if let Some(thread) = taken {
                return Err(EngineError::ThreadTaken {
                    workload,
                    pid: thread.pid,
                    tid: thread.tid,
                    holder: other.plan.workload.0,
                });
            }
        }
        Ok(())
    }

    /// Gives the workload's cores back in `ledger`, the one in force as read under the lock
    /// before the first write, and forgets its plan.
    pub(crate) fn release(
        &self,
        ledger: &mut LedgerFile,
        record: &AppliedPlan,
        id: &JournalId,
    ) -> Result<(), EngineError> {
        if ledger.ledger.release(&record.plan.workload).is_some() {
            store_ledger(&self.state, ledger)?;
        }
        AppliedPlan::remove(&self.state, id)?;
        Ok(())
    }
}

/// `ledger` with the allocations of `pending` recorded too, unless their workload is held
/// already or their cores were taken since (a CLI apply): those are stale, not conflicts.
pub(crate) fn with_pending(ledger: &Ledger, pending: &[Allocation]) -> Ledger {
    let mut ledger = ledger.clone();
    for allocation in pending {
        let free = allocation.held().intersection(&ledger.held()).is_empty();
        if free && ledger.get(allocation.workload()).is_none() {
            ledger.record(allocation.clone());
        }
    }
    ledger
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
