//! The objects a lab creates and their idempotent removal.
//!
//! Removal succeeds when the object is gone afterwards, whether it was removed now, earlier,
//! or never came to exist (its creation failed after it was registered). Only names a lab
//! could have given are ever removed (see [`crate::names`]), and only the apply of the
//! registry's own process is ever reverted.

use std::path::PathBuf;

use nearnative_engine::EngineError;
use nearnative_host::Root;
use serde::{Deserialize, Serialize};

use crate::cgroup::{self, is_lab_cgroup_path, is_plain_path, CgroupError, LabCgroup};
use crate::ip::{ip, ip_in, parse_link_names, IpError};
use crate::names::{is_lab_link, is_lab_netns};
use crate::workload;

/// One thing a lab created, named as iproute2 names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LabObject {
    /// A named network namespace, `/run/netns/<name>`.
    Netns { name: String },
    /// An interface inside the lab namespace `netns`. It also disappears with that namespace;
    /// it is listed so that a registry names everything, and removed first all the same.
    Link { name: String, netns: String },
    /// The lab's own cgroup `path` (in the hierarchy mounted at `mount`: the v1 cpuset one or
    /// the unified one); `origin` is the cgroup the lab process came from and returns to
    /// before the directory goes.
    Cgroup {
        mount: PathBuf,
        path: String,
        origin: String,
    },
    /// The latency-sensitive apply of the lab process's own threads (`pid:<pid>`), journaled
    /// in `state_dir`: removing it reverts every knob through the engine.
    Workload { state_dir: PathBuf, pid: u32 },
}

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("{object} is not a name nearnative lab gives; refusing to remove it")]
    Foreign { object: String },
    #[error("cannot remove {object}")]
    Remove {
        object: String,
        #[source]
        source: IpError,
    },
    #[error("cannot remove {object}")]
    Cgroup {
        object: String,
        #[source]
        source: CgroupError,
    },
    #[error("cannot revert {object}")]
    Revert {
        object: String,
        #[source]
        source: Box<EngineError>,
    },
}

/// Who removes an object: the run that made it, alive (its own cleanup, also on a signal),
/// or a sweep of a dead run, which must never touch the sweeping process itself, even when
/// the dead run's pid is the sweeper's own, recycled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remover {
    OwnRun,
    Sweep,
}

impl std::fmt::Display for LabObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LabObject::Netns { name } => write!(f, "network namespace {name}"),
            LabObject::Link { name, netns } => write!(f, "interface {name} in namespace {netns}"),
            LabObject::Cgroup { mount, path, .. } => {
                write!(f, "cgroup {path} (under {})", mount.display())
            }
            LabObject::Workload { state_dir, pid } => write!(
                f,
                "the latency-sensitive apply of pid:{pid} (state {})",
                state_dir.display()
            ),
        }
    }
}

impl LabObject {
    /// True when every name in the object is one a lab gives, and an apply is the one of
    /// `owner`, the process the registry belongs to.
    pub fn is_lab_owned(&self, owner: u32) -> bool {
        match self {
            LabObject::Netns { name } => is_lab_netns(name),
            LabObject::Link { name, netns } => is_lab_link(name) && is_lab_netns(netns),
            LabObject::Cgroup { path, origin, .. } => {
                is_lab_cgroup_path(path) && is_plain_path(origin)
            }
            LabObject::Workload { pid, .. } => *pid == owner,
        }
    }

    /// Removes the object if it exists. Idempotent. `owner` is the pid of the run whose
    /// registry names it.
    pub fn remove(&self, root: &Root, owner: u32, remover: Remover) -> Result<(), ObjectError> {
        if !self.is_lab_owned(owner) {
            return Err(ObjectError::Foreign {
                object: self.to_string(),
            });
        }
        match self {
            LabObject::Netns { name } => {
                self.remove_network(root, || ip(&["netns", "delete", name]))
            }
            LabObject::Link { name, netns } => {
                self.remove_network(root, || ip_in(netns, &["link", "delete", "dev", name]))
            }
            LabObject::Cgroup {
                mount,
                path,
                origin,
            } => {
                let at = |path: &str| LabCgroup {
                    mount: mount.clone(),
                    path: path.to_owned(),
                };
                let this_process = remover == Remover::OwnRun;
                cgroup::remove(&at(path), &at(origin), this_process).map_err(|source| {
                    ObjectError::Cgroup {
                        object: self.to_string(),
                        source,
                    }
                })
            }
            LabObject::Workload { state_dir, pid } => workload::revert(state_dir, *pid)
                .map(drop)
                .map_err(|source| ObjectError::Revert {
                    object: self.to_string(),
                    source: Box::new(source),
                }),
        }
    }

    fn remove_network(
        &self,
        root: &Root,
        delete: impl FnOnce() -> Result<String, IpError>,
    ) -> Result<(), ObjectError> {
        if !self.exists(root) {
            return Ok(());
        }
        match delete() {
            Err(_) if !self.exists(root) => Ok(()),
            Err(source) => Err(ObjectError::Remove {
                object: self.to_string(),
                source,
            }),
            Ok(_) => Ok(()),
        }
    }

    /// Whether the object is there now. A link is looked up in its namespace, which must
    /// exist for the link to.
    pub fn exists(&self, root: &Root) -> bool {
        match self {
            LabObject::Netns { name } => netns_exists(root, name),
            LabObject::Link { name, netns } => {
                netns_exists(root, netns)
                    && ip_in(netns, &["-o", "link", "show"])
                        .map(|text| parse_link_names(&text).iter().any(|n| n == name))
                        .unwrap_or(false)
            }
            LabObject::Cgroup { mount, path, .. } => LabCgroup {
                mount: mount.clone(),
                path: path.clone(),
            }
            .dir()
            .is_dir(),
            LabObject::Workload { state_dir, pid } => workload::is_applied(state_dir, *pid),
        }
    }
}

fn netns_exists(root: &Root, name: &str) -> bool {
    root.exists(format!("/run/netns/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::RunTag;

    #[test]
    fn a_sweep_never_moves_this_process_even_when_the_dead_pid_is_its_own() {
        let mount = tempfile::tempdir().unwrap();
        let path = RunTag::next().cgroup();
        std::fs::create_dir(mount.path().join(&path)).unwrap();
        let object = LabObject::Cgroup {
            mount: mount.path().to_owned(),
            path: path.clone(),
            // Absent: moving this process there would fail, so success shows it was not tried.
            origin: "/absent-origin".into(),
        };
        object
            .remove(&Root::default(), std::process::id(), Remover::Sweep)
            .unwrap();
        assert!(!mount.path().join(&path).exists());
    }
}
