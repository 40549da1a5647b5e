//! What the plugin needs from whoever holds the cores: admission of a latency-sensitive
//! container, its release, and what is held now. The daemon backs it with the engine and
//! its ledger, so containers, VMs and processes compete for the same cores; tests back it
//! with a fake.

use std::collections::BTreeMap;
use std::fmt;

use nearnative_plan::Level;

use crate::api::{Container, PodSandbox};
use crate::fence::Grant;

/// A container as the runtime names it: `id` is the key (stable across restarts of the
/// plugin and of the runtime), the names are for people, and `cgroups_path` is where the
/// runtime puts it (the OCI spec's `linux.cgroupsPath`, known before the container exists).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerKey {
    pub id: String,
    pub namespace: String,
    pub pod: String,
    pub name: String,
    pub cgroups_path: String,
}

impl ContainerKey {
    /// The key of `container`, named after its `pod` when the runtime told us of it.
    pub fn of(container: &Container, pod: Option<&PodSandbox>) -> ContainerKey {
        ContainerKey {
            id: container.id.clone(),
            namespace: pod.map(|p| p.namespace.clone()).unwrap_or_default(),
            pod: pod.map(|p| p.name.clone()).unwrap_or_default(),
            name: container.name.clone(),
            cgroups_path: container
                .linux
                .as_ref()
                .map(|l| l.cgroups_path.clone())
                .unwrap_or_default(),
        }
    }
}

/// `namespace/pod/container` as kubectl users know it, or the id when that is all we know
/// (a container that held cores and is gone).
impl fmt::Display for ContainerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pod.is_empty() {
            write!(f, "container {}", self.id)
        } else {
            write!(f, "container {}/{}/{}", self.namespace, self.pod, self.name)
        }
    }
}

/// Admission against the node's ledger. Calls come one at a time, from the plugin's handlers.
pub trait AdmissionBackend: Send + Sync {
    /// Gives `container` `cores` whole cores at `level`, or says in one line why not.
    /// Admitting a container that already holds cores gives it the same ones back.
    fn admit(&self, container: &ContainerKey, level: Level, cores: u32) -> Result<Grant, String>;

    /// `container`, admitted, now runs (its cgroup, its process and its cpuset exist): the
    /// backend may make it latency-sensitive on the cores it was given. It must not wait for
    /// the work: the runtime waits for the plugin's answer. Called again for a container
    /// adopted at Synchronize, which may be made latency-sensitive already: that is no error.
    fn started(&self, container: &ContainerKey) -> Result<(), String> {
        let _ = container;
        Ok(())
    }

    /// The runtime reported `container`, created and not started yet, holding cores at
    /// Synchronize: its admission stands (it must not expire) until the runtime starts,
    /// stops or removes it.
    fn reported(&self, container: &ContainerKey) {
        let _ = container;
    }

    /// Reverts and releases what the container `id` holds; nothing held is not an error.
    fn release(&self, id: &str) -> Result<(), String>;

    /// Every container holding cores now, by id: what a restarted plugin adopts.
    fn held(&self) -> Result<BTreeMap<String, Grant>, String>;
}
