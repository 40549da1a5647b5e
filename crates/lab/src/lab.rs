//! The lab guard: one run's paths, noise and registry, all removed when it is cleaned up,
//! dropped (also while unwinding from a panic), or when SIGINT/SIGTERM arrives (see
//! [`crate::signals`]).
//!
//! Creating a lab first takes the run directory's lock (one lab at a time, see
//! [`crate::run_lock`]), sweeps the leftovers of dead runs from the run directory, then writes
//! this run's empty registry. Every namespace and interface is registered before it is
//! created; a step that fails leaves what it made registered, so the same cleanup removes it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use nearnative_engine::{Applied, Engine, EngineError, Reverted};
use nearnative_host::cgroup::Hierarchy;
use nearnative_host::Root;
use nearnative_plan::PlanRequest;

use crate::cgroup::{self, CgroupChoice, CgroupError, LabCgroup};
use crate::ip::{preflight, IpError};
use crate::layers::{build, BuildError, Built};
use crate::names::RunTag;
use crate::noise::{self, Noise, NoiseConfig, NoiseError};
use crate::object::LabObject;
use crate::path::{Layer, NetPath};
use crate::registry::{create_run_dir, Registry, RegistryError};
use crate::run_lock::{RunLock, RunLockError};
use crate::signals;
use crate::sweep::{sweep, SweepError, SweepReport};
use crate::tap::{Forwarder, TapError};
use crate::workload;

/// Where registries live unless told otherwise: tmpfs, so a reboot (which also removes every
/// namespace) clears it.
pub const DEFAULT_RUN_DIR: &str = "/run/nearnative";

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Preflight(#[from] IpError),
    #[error(transparent)]
    Sweep(#[from] SweepError),
    #[error(transparent)]
    RunLock(#[from] RunLockError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("cannot build the {layer} path")]
    Build {
        layer: &'static str,
        #[source]
        source: BuildError,
    },
    #[error("cannot start the tap forwarder")]
    Forwarder(#[source] TapError),
    #[error("cannot start the noisy neighbour")]
    Noise(#[source] NoiseError),
    #[error("cannot set up the lab's own cgroup")]
    Cgroup(#[source] CgroupError),
    #[error("the latency-sensitive apply failed (nothing of it stays applied)")]
    Apply(#[source] Box<EngineError>),
    #[error("cannot revert the latency-sensitive apply")]
    Revert(#[source] Box<EngineError>),
}

/// The cgroup a lab moved itself into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnCgroup {
    pub cgroup: LabCgroup,
    pub hierarchy: Hierarchy,
}

/// One lab run. Invariant: everything it created is named in its registry file until cleanup
/// has removed it.
#[derive(Debug)]
pub struct Lab {
    tag: RunTag,
    registry: Arc<Mutex<Registry>>,
    forwarders: Vec<Forwarder>,
    forwarder_cpu: Option<u32>,
    swept: SweepReport,
    /// Held until the lab is dropped, after its cleanup.
    _run_lock: RunLock,
}

impl Lab {
    /// Checks for root and iproute2, takes the run directory's lab lock (refusing when another
    /// lab holds it), sweeps dead runs' leftovers from `run_dir`, and registers this run there.
    pub fn create(run_dir: &Path) -> Result<Lab, LabError> {
        preflight()?;
        create_run_dir(run_dir)?;
        let run_lock = RunLock::acquire(run_dir)?;
        let root = Root::default();
        let swept = sweep(run_dir, &root)?;
        let (tag, registry) = register_run(run_dir, root)?;
        let registry = Arc::new(Mutex::new(registry));
        signals::register(&registry);
        Ok(Lab {
            tag,
            registry,
            forwarders: Vec::new(),
            forwarder_cpu: None,
            swept,
            _run_lock: run_lock,
        })
    }

    pub fn tag(&self) -> &RunTag {
        &self.tag
    }

    /// What creating this lab swept from dead runs.
    pub fn swept(&self) -> &SweepReport {
        &self.swept
    }

    pub fn registry_path(&self) -> PathBuf {
        self.lock().path().to_owned()
    }

    /// Pins the forwarder of every tap path built from now on to `cpu`.
    pub fn set_forwarder_cpu(&mut self, cpu: Option<u32>) {
        self.forwarder_cpu = cpu;
    }

    /// Builds the path for `layer`.
    pub fn build(&mut self, layer: Layer) -> Result<NetPath, LabError> {
        let built =
            build(&mut self.lock(), &self.tag, layer).map_err(|source| LabError::Build {
                layer: layer.name(),
                source,
            })?;
        let Built { path, taps } = built;
        if let Some((client, server)) = taps {
            let forwarder = Forwarder::start(client, server, self.forwarder_cpu)
                .map_err(LabError::Forwarder)?;
            self.lock().stop_on_cleanup(forwarder.stop_flag());
            self.forwarders.push(forwarder);
        }
        Ok(path)
    }

    /// The thread ids of the tap forwarders running (one per tap path built).
    pub fn forwarder_tids(&self) -> Vec<u32> {
        self.forwarders.iter().map(Forwarder::tid).collect()
    }

    /// Creates this run's own cgroup where `choice` says (see [`cgroup::choose`]) and moves
    /// the whole process into it, so every thread and process started from now on lives
    /// there. Cleanup moves the process back first.
    pub fn enter_own_cgroup(&mut self, choice: CgroupChoice) -> Result<OwnCgroup, LabError> {
        let site = cgroup::choose(&Root::default(), choice).map_err(LabError::Cgroup)?;
        let own = site.parent.child(&self.tag.cgroup());
        let object = LabObject::Cgroup {
            mount: own.mount.clone(),
            path: own.path.clone(),
            origin: site.origin.path.clone(),
        };
        self.lock().create_with(object, || {
            cgroup::create(&own, &site)
                .and_then(|()| own.move_this_process_in())
                .map_err(LabError::Cgroup)
        })?;
        Ok(OwnCgroup {
            cgroup: own,
            hierarchy: site.hierarchy,
        })
    }

    /// Applies `request` (whose target is this process) through the engine's journal in
    /// `state_dir`, registered first so that cleanup, a signal, a panic or the sweep after a
    /// `kill -9` reverts it.
    pub fn apply(&self, state_dir: &Path, request: &PlanRequest) -> Result<Applied, LabError> {
        let object = LabObject::Workload {
            state_dir: state_dir.to_owned(),
            pid: std::process::id(),
        };
        // The registry stays locked for the whole apply, so a cleanup on a signal waits for
        // it to finish and then reverts it.
        self.lock().create_with(object, || {
            Engine::live(state_dir)
                .apply(request)
                .map_err(|e| LabError::Apply(Box::new(e)))
        })
    }

    /// Reverts this process's apply in `state_dir`. `None` when cleanup (on a signal) has
    /// already done so.
    pub fn revert(&self, state_dir: &Path) -> Result<Option<Reverted>, LabError> {
        let registry = self.lock();
        if registry.is_closed() {
            return Ok(None);
        }
        workload::revert(state_dir, std::process::id())
            .map(Some)
            .map_err(|e| LabError::Revert(Box::new(e)))
    }

    /// Starts a noisy neighbour; its flood runs between namespaces of this lab, made by the
    /// first noise and reused by later ones.
    pub fn start_noise(&mut self, config: &NoiseConfig) -> Result<Noise, LabError> {
        noise::start(&mut self.lock(), &self.tag, config).map_err(LabError::Noise)
    }

    /// Stops the tap forwarders, then removes every registered object, last created first,
    /// and the registry file. Idempotent.
    pub fn cleanup(&mut self) -> Result<(), LabError> {
        for forwarder in self.forwarders.drain(..) {
            let _ = forwarder.stop();
        }
        self.lock().cleanup()?;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How many run tags a lab tries when registry files of those names are already taken.
const TAG_ATTEMPTS: usize = 16;

/// Writes this run's empty registry under the first run tag whose file is free: one left by
/// an earlier process of the same pid that the sweep could not clear stays as it is.
fn register_run(run_dir: &Path, root: Root) -> Result<(RunTag, Registry), RegistryError> {
    let mut attempts = 0;
    loop {
        let tag = RunTag::next();
        attempts += 1;
        match Registry::create(run_dir, &tag.registry_file(), root.clone()) {
            Err(RegistryError::Taken { .. }) if attempts < TAG_ATTEMPTS => continue,
            created => return created.map(|registry| (tag, registry)),
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.cleanup();
    }
}
