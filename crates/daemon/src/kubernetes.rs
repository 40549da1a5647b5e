//! Kubernetes containers made latency-sensitive through the NRI plugin
//! (`nearnative daemon --nri`), two-phase as libvirt domains are:
//!
//! 1. **CreateContainer**: admission against the ledger ([`Engine::admit`]) for the pool of
//!    whole cores the pod's annotations ask for. The admission is kept here, in memory, and
//!    counts as held for every later admission until the container is applied; the plugin
//!    gives the container exactly those CPUs in its adjustment.
//! 2. **PostStartContainer**: the container runs its own program, in its cgroup, on its
//!    cpuset. The loop wants it as it wants a policy's instance (origin
//!    `kubernetes:NAMESPACE/POD/CONTAINER@ID`) and applies it through the engine on exactly
//!    the admitted CPUs (`exact`), so the apply cannot land anywhere else than where the
//!    runtime put it. Once applied, the plan record is the truth: the loop keeps it (drift,
//!    the container's new threads) like any held workload, and `held` finds it again after a
//!    restart of the plugin or of the daemon.
//! 3. **StopContainer / RemoveContainer**: the journal is reverted and the cores released.
//!
//! The container's request: target `cgroup:<its cgroup>`, scope its pod's cgroup. The
//! engine then moves only the container's own threads (into `<pod>/nearnative-<id>-pool`)
//! and shrinks only the pod's other cgroups that overlap the cores (the sandbox's, which the
//! runtime never fences); every other container is fenced by the plugin through the
//! runtime. The scope cannot be the container's own cgroup: its cpuset is the exclusive
//! CPUs alone, leaving the plan no housekeeping CPU inside it. The host-wide knobs (IRQs,
//! default_smp_affinity, the workqueue mask, PM QoS) are planned whatever the scope, and
//! `fence_host_threads` adds the unbound kernel threads and PID 1, as for the whole host:
//! the container's cores are the node's alone.

use std::collections::BTreeMap;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use nearnative_engine::{Engine, EngineError, RevertWhich};
use nearnative_host::cgroup::{is_within, parent_of, parse_scope};
use nearnative_host::Root;
use nearnative_nri::{AdmissionBackend, ContainerKey, Grant};
use nearnative_plan::{Allocation, Level, PlanRequest, Target, WorkloadKey};
use nearnative_sys::lock::LockError;

use crate::control::error_line;
use crate::events::Wake;
use crate::held;
use crate::libvirt::Domains;
use crate::log::line as log;
use crate::pending::pending_except;
use crate::reconcile::Wanted;

/// The origin of applies made for a container starts with this.
pub const KUBERNETES_ORIGIN: &str = "kubernetes:";

/// How long an admission holds its cores while its container has not started: kubelet
/// starts a container right after creating it; this only bounds a start that never came
/// (the runtime removes a container it could not start, which releases it anyway).
pub const PENDING_FOR: Duration = Duration::from_secs(120);

/// How long admission and release wait for the daemon's turn (the loop holds it through a
/// whole apply, virsh calls included) and for the state lock (a CLI apply or revert), all
/// told: within containerd's 2 s wait for the plugin, past which it drops the plugin and
/// creates the container unpinned.
const BUSY_FOR: Duration = Duration::from_millis(1500);
const BUSY_RETRY: Duration = Duration::from_millis(50);
const TURN_RETRY: Duration = Duration::from_millis(10);

/// Why an admission is refused when the daemon stays busy: kubelet retries CreateContainer.
pub const BUSY: &str = "busy: the daemon is applying another workload; try again";

/// The origin recorded for `container`'s apply: its name for people, its id for `held`.
pub fn origin_of(container: &ContainerKey) -> String {
    format!(
        "{KUBERNETES_ORIGIN}{}/{}/{}@{}",
        container.namespace, container.pod, container.name, container.id
    )
}

/// The container id an origin of ours names; `None` for any other origin.
pub fn id_of_origin(origin: &str) -> Option<&str> {
    let rest = origin.strip_prefix(KUBERNETES_ORIGIN)?;
    rest.rsplit_once('@').map(|(_, id)| id)
}

/// The cgroup path the runtime's `cgroups_path` names: a path for the cgroupfs driver, or
/// systemd's `SLICE:PREFIX:NAME` (the scope `PREFIX-NAME.scope` under the slice, each
/// `-` of a slice's name a level: `a-b.slice` lies in `a.slice`).
pub fn cgroup_of(cgroups_path: &str) -> Result<String, String> {
    let fields: Vec<&str> = cgroups_path.split(':').collect();
    let path = match fields.as_slice() {
        [path] if path.starts_with('/') => path.trim_end_matches('/').to_owned(),
        [slice, prefix, name]
            if slice.ends_with(".slice")
                && !name.is_empty()
                && !fields.iter().any(|f| f.contains('/')) =>
        {
            let scope = match prefix.is_empty() {
                true => format!("{name}.scope"),
                false => format!("{prefix}-{name}.scope"),
            };
            format!("{}/{scope}", slice_path(slice))
        }
        _ => {
            return Err(format!(
                "cgroups path {cgroups_path:?} is neither a cgroup path nor systemd's \
                 SLICE:PREFIX:NAME"
            ))
        }
    };
    // The scope check compares paths as strings: `/kubepods/../system.slice` must not pass it.
    parse_scope(&format!("cgroup:{path}"))
        .map_err(|e| format!("cgroups path {cgroups_path:?}: {}", e.reason))
}

/// `/a.slice/a-b.slice` for `a-b.slice`; the root slice `-.slice` is `/`'s own.
fn slice_path(slice: &str) -> String {
    let name = slice.trim_end_matches(".slice");
    if name.is_empty() || name == "-" {
        return String::new();
    }
    let parts: Vec<&str> = name.split('-').collect();
    (1..=parts.len())
        .map(|n| format!("/{}.slice", parts[..n].join("-")))
        .collect()
}

/// A container admitted and not applied yet.
#[derive(Debug, Clone)]
struct Admitted {
    container: ContainerKey,
    cgroup: String,
    level: Level,
    cores: u32,
    allocation: Allocation,
    since: Instant,
    started: bool,
    /// The runtime reported it at Synchronize, created: it does not expire.
    reported: bool,
}

impl Admitted {
    fn grant(&self) -> Grant {
        grant_of(&self.allocation)
    }

    /// What the loop applies once the container runs: exactly its admitted cores, in its
    /// pod's scope, the host's own threads kept off them.
    fn request(&self) -> PlanRequest {
        let mut request = PlanRequest::new(Target::Cgroup(self.cgroup.clone()));
        request.level = self.level;
        request.cores = Some(self.cores);
        request.scope = parent_of(&self.cgroup).map(str::to_owned);
        request.exact = Some(self.allocation.exclusive_cpus.clone());
        request.fence_host_threads = true;
        request
    }
}

/// Runs `call` again while a CLI apply or revert holds the state lock, until `deadline`.
fn while_busy<T>(
    deadline: Instant,
    call: impl Fn() -> Result<T, EngineError>,
) -> Result<T, EngineError> {
    loop {
        match call() {
            Err(EngineError::Lock(LockError::Busy { .. })) if Instant::now() < deadline => {
                std::thread::sleep(BUSY_RETRY);
            }
            other => return other,
        }
    }
}

fn grant_of(allocation: &Allocation) -> Grant {
    Grant {
        cpus: allocation.exclusive_cpus.clone(),
        mems: allocation.nodes.iter().copied().collect(),
    }
}

/// The containers admitted and not applied yet, by container id; shared by the plugin's
/// thread and the loop.
#[derive(Debug, Default)]
pub struct Containers {
    admitted: BTreeMap<String, Admitted>,
}

impl Containers {
    /// The admissions still pending at `now` of every workload but `key`; those of
    /// containers that never started, nor were reported by the runtime at Synchronize, go
    /// after [`PENDING_FOR`].
    pub fn pending_except(&mut self, key: &WorkloadKey, now: Instant) -> Vec<Allocation> {
        self.admitted.retain(|_, a| {
            a.started || a.reported || now.saturating_duration_since(a.since) < PENDING_FOR
        });
        self.admitted
            .values()
            .filter(|a| a.allocation.workload() != key)
            .map(|a| a.allocation.clone())
            .collect()
    }

    /// The started containers, as the loop wants them applied.
    pub fn wanted(&self) -> Vec<Wanted> {
        self.admitted
            .values()
            .filter(|a| a.started)
            .map(|a| Wanted {
                key: a.allocation.workload().clone(),
                request: a.request(),
                origin: origin_of(&a.container),
                policy: None,
            })
            .collect()
    }

    /// Whether a started container of ledger key `key` waits to be applied.
    pub fn wants(&self, key: &WorkloadKey) -> bool {
        self.admitted
            .values()
            .any(|a| a.started && a.allocation.workload() == key)
    }

    /// `key` is applied: the ledger and its plan record hold it now.
    pub fn applied(&mut self, key: &WorkloadKey) {
        self.admitted.retain(|_, a| a.allocation.workload() != key);
    }

    fn forget(&mut self, id: &str) {
        self.admitted.remove(id);
    }
}

/// The plugin's [`AdmissionBackend`] on the daemon's engine, ledger and journals.
pub struct EngineBackend {
    /// A fresh engine for each call: the engine is not shared across threads.
    engine: Box<dyn Fn() -> Engine + Send + Sync>,
    root: Root,
    /// The daemon's `--scope`: containers outside it are refused.
    scope: Option<String>,
    containers: Arc<Mutex<Containers>>,
    domains: Arc<Mutex<Domains>>,
    turn: Arc<Mutex<()>>,
    wake: Mutex<Sender<Wake>>,
}

impl EngineBackend {
    pub fn new(
        engine: Box<dyn Fn() -> Engine + Send + Sync>,
        root: Root,
        scope: Option<String>,
        containers: Arc<Mutex<Containers>>,
        domains: Arc<Mutex<Domains>>,
        turn: Arc<Mutex<()>>,
        wake: Sender<Wake>,
    ) -> EngineBackend {
        EngineBackend {
            engine,
            root,
            scope,
            containers,
            domains,
            turn,
            wake: Mutex::new(wake),
        }
    }

    fn containers(&self) -> MutexGuard<'_, Containers> {
        self.containers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake_loop(&self) {
        let wake = self.wake.lock().unwrap_or_else(|e| e.into_inner());
        // The loop is gone only when the daemon is on its way out.
        let _ = wake.send(Wake::Control);
    }

    /// The container's cgroup, refused when it lies outside the daemon's scope.
    fn cgroup(&self, container: &ContainerKey) -> Result<String, String> {
        let cgroup = cgroup_of(&container.cgroups_path)?;
        match &self.scope {
            Some(scope) if !is_within(&cgroup, scope) => Err(format!(
                "its cgroup {cgroup} lies outside the daemon's scope {scope}"
            )),
            _ => Ok(cgroup),
        }
    }

    /// The daemon's turn, or `None` if it is not free by `deadline`.
    fn turn_until(&self, deadline: Instant) -> Option<MutexGuard<'_, ()>> {
        loop {
            match self.turn.try_lock() {
                Ok(turn) => return Some(turn),
                Err(TryLockError::Poisoned(poisoned)) => return Some(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(TURN_RETRY);
                }
                Err(TryLockError::WouldBlock) => return None,
            }
        }
    }

    /// The plan records of ours, by container id.
    fn records(&self) -> Result<BTreeMap<String, held::Record>, String> {
        let engine = (self.engine)();
        let records = held::read(engine.state(), &self.root, self.scope.as_deref())
            .map_err(|e| error_line(&e))?;
        Ok(records
            .into_iter()
            .filter_map(|r| {
                let id = id_of_origin(r.applied.origin.as_deref()?)?.to_owned();
                Some((id, r))
            })
            .collect())
    }
}

impl AdmissionBackend for EngineBackend {
    fn admit(&self, container: &ContainerKey, level: Level, cores: u32) -> Result<Grant, String> {
        let deadline = Instant::now() + BUSY_FOR;
        if let Some(admitted) = self.containers().admitted.get(&container.id) {
            return Ok(admitted.grant());
        }
        let cgroup = self.cgroup(container)?;
        let mut request = PlanRequest::new(Target::Cgroup(cgroup.clone()));
        request.level = level;
        request.cores = Some(cores);
        request.scope = self.scope.clone();
        let key = WorkloadKey(request.target.to_string());
        let engine = (self.engine)();
        // Held until the admission is pending here: libvirt's prepare, on its own thread,
        // counts it from then on, as this one counts libvirt's.
        let _turn = self.turn_until(deadline).ok_or(BUSY)?;
        if let Some(record) = self.records()?.get(&container.id) {
            return Ok(grant_of(&record.applied.plan.allocation));
        }
        let now = Instant::now();
        let pending = pending_except(&self.domains, &self.containers, &key, now);
        let allocation = while_busy(deadline, || engine.admit(&request, cores, &pending))
            .map_err(|e| error_line(&e))?;
        log(&format!(
            "{key} ({}) admitted at CreateContainer on CPUs {}",
            origin_of(container),
            allocation.exclusive_cpus
        ));
        let admitted = Admitted {
            container: container.clone(),
            cgroup,
            level,
            cores,
            allocation,
            since: now,
            started: false,
            reported: false,
        };
        let grant = admitted.grant();
        self.containers()
            .admitted
            .insert(container.id.clone(), admitted);
        Ok(grant)
    }

    fn started(&self, container: &ContainerKey) -> Result<(), String> {
        let admitted = self
            .containers()
            .admitted
            .get_mut(&container.id)
            .map(|admitted| admitted.started = true);
        if admitted.is_none() {
            // Adopted at Synchronize, applied already: its plan record holds it.
            return match self.records()?.contains_key(&container.id) {
                true => Ok(()),
                false => Err("its admission is gone (expired, or released)".to_owned()),
            };
        }
        self.wake_loop();
        Ok(())
    }

    /// Read under the turn: an apply the loop has in flight is recorded by the time this
    /// has the turn, and the loop, which checks under the turn that the container is still
    /// declared, applies nothing for it after. A turn not free in time leaves the revert to
    /// the loop, which releases the workload once the container's threads are gone.
    fn reported(&self, container: &ContainerKey) {
        if let Some(admitted) = self.containers().admitted.get_mut(&container.id) {
            admitted.reported = true;
        }
    }

    fn release(&self, id: &str) -> Result<(), String> {
        let deadline = Instant::now() + BUSY_FOR;
        self.containers().forget(id);
        let Some(_turn) = self.turn_until(deadline) else {
            log(&format!(
                "container {id} stopped while the daemon is busy: the loop releases its cores"
            ));
            self.wake_loop();
            return Ok(());
        };
        let Some(record) = self.records()?.remove(id) else {
            return Ok(());
        };
        let key = record.applied.plan.workload.clone();
        let engine = (self.engine)();
        while_busy(deadline, || {
            engine.revert(&RevertWhich::Target(key.0.clone()))
        })
        .map_err(|e| error_line(&e))?;
        log(&format!(
            "{key} released at the container's stop (source {})",
            record.applied.origin.as_deref().unwrap_or_default()
        ));
        self.wake_loop();
        Ok(())
    }

    fn held(&self) -> Result<BTreeMap<String, Grant>, String> {
        let mut held: BTreeMap<String, Grant> = self
            .records()?
            .into_iter()
            .map(|(id, r)| (id, grant_of(&r.applied.plan.allocation)))
            .collect();
        for (id, admitted) in &self.containers().admitted {
            held.entry(id.clone()).or_insert_with(|| admitted.grant());
        }
        Ok(held)
    }
}

#[cfg(test)]
mod tests;
