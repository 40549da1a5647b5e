//! The durable registry of what one lab run created: a small file in the run directory,
//! rewritten (atomically, fsync'd) *before* each object is created, so that whatever a crash
//! leaves behind is named on disk and a later run can sweep it.
//!
//! The file names its owner by pid and the owner's start time (field 22 of
//! `/proc/<pid>/stat`), so a recycled pid is not mistaken for the owner. Cleanup removes the
//! objects in reverse order of creation, each idempotently, and deletes the file only when all
//! are gone. After cleanup the registry is closed: nothing more can be created through it,
//! which is how a cleanup triggered by a signal stops a build running on another thread.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nearnative_host::{ReadError, Root};
use nearnative_sys::durable::{self, DurableError};
use serde::{Deserialize, Serialize};

use crate::object::{LabObject, ObjectError, Remover};

/// The registry's schema; bump with a migration when the body changes. Version 2 added the
/// `cgroup` and `workload` object kinds; a version 1 body reads as version 2 unchanged.
pub const REGISTRY_SCHEMA: u32 = 2;
const REGISTRY_SCHEMA_V1: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot create the lab run directory {path}")]
    RunDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the lab registry {path} already exists (an unswept run of a recycled pid?); not overwriting it")]
    Taken { path: PathBuf },
    #[error("cannot create the lab registry {path}")]
    CreateFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot save the lab registry, so nothing more is created")]
    Store(#[source] DurableError),
    #[error("cannot read this process's start time")]
    StartTime(#[source] ReadError),
    #[error("{object} already exists (a leftover of an earlier run? a sweep removes those); refusing to take it over")]
    Exists { object: String },
    #[error(
        "the lab was cleaned up (after a signal or a drop); nothing more can be created in it"
    )]
    Closed,
    #[error("{failed} of the lab's objects could not be removed; first: {first}")]
    Cleanup {
        failed: usize,
        #[source]
        first: ObjectError,
    },
    #[error("cannot remove the lab registry {path}")]
    Unlink {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What the registry file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryBody {
    pub pid: u32,
    /// The owner's start time in clock ticks since boot, from `/proc/<pid>/stat`.
    pub start_time: u64,
    /// In order of creation; each was written here before it was created.
    pub objects: Vec<LabObject>,
}

/// The registry of one live run. Invariant: every object this run may have created is in
/// `body.objects`, and the file on disk holds the same list.
#[derive(Debug)]
pub struct Registry {
    path: PathBuf,
    root: Root,
    body: RegistryBody,
    closed: bool,
    /// Raised first by cleanup: the flags of this run's threads (tap forwarders, noise), so a
    /// cleanup on a signal also stops them before their namespaces go.
    stop_flags: Vec<Arc<AtomicBool>>,
}

impl Registry {
    /// Creates the run directory if needed and writes an empty registry named `file_name`. A
    /// file of that name already there is [`RegistryError::Taken`], left untouched: it may be
    /// the only record of a dead run's leftovers.
    pub fn create(run_dir: &Path, file_name: &str, root: Root) -> Result<Registry, RegistryError> {
        create_run_dir(run_dir)?;
        let pid = std::process::id();
        let start_time = start_time_of(&root, pid).map_err(RegistryError::StartTime)?;
        let path = run_dir.join(file_name);
        claim(&path)?;
        let registry = Registry {
            path,
            root,
            body: RegistryBody {
                pid,
                start_time,
                objects: Vec::new(),
            },
            closed: false,
            stop_flags: Vec::new(),
        };
        registry.save()?;
        Ok(registry)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn objects(&self) -> &[LabObject] {
        &self.body.objects
    }

    /// Has cleanup raise `flag` before it removes anything.
    pub fn stop_on_cleanup(&mut self, flag: Arc<AtomicBool>) {
        self.stop_flags.push(flag);
    }

    /// Records `object` durably, then runs `create`. The object stays registered if creation
    /// fails, since a failed `ip` may still have left it half made. An object that exists
    /// before it is registered is refused untouched: a registry names only what this run
    /// made, so cleanup can never remove anything else.
    pub fn create_with<T, E: From<RegistryError>>(
        &mut self,
        object: LabObject,
        create: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        if self.closed {
            return Err(RegistryError::Closed.into());
        }
        if !self.body.objects.contains(&object) {
            if object.exists(&self.root) {
                return Err(RegistryError::Exists {
                    object: object.to_string(),
                }
                .into());
            }
            self.body.objects.push(object);
            self.save()?;
        }
        create()
    }

    /// Whether cleanup has run: nothing more may be created or changed through it.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Removes every object in reverse order, then the file. Idempotent; the registry is
    /// closed afterwards even if some removal failed (the file then stays for a sweep).
    pub fn cleanup(&mut self) -> Result<(), RegistryError> {
        self.closed = true;
        for flag in &self.stop_flags {
            flag.store(true, Ordering::Relaxed);
        }
        remove_all(
            &self.root,
            &self.body.objects,
            self.body.pid,
            Remover::OwnRun,
        )?;
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(RegistryError::Unlink {
                path: self.path.clone(),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    fn save(&self) -> Result<(), RegistryError> {
        durable::store(&self.path, REGISTRY_SCHEMA, &self.body).map_err(RegistryError::Store)
    }
}

/// Creates the run directory, root's alone (0700), if it is missing.
pub fn create_run_dir(run_dir: &Path) -> Result<(), RegistryError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(run_dir)
        .map_err(|source| RegistryError::RunDir {
            path: run_dir.to_owned(),
            source,
        })
}

/// Fails if `path` exists. A check is enough, with no race: the name holds this process's pid
/// and a sequence unique within it, so only a dead process of the same pid can have made it.
/// (Creating the file empty with `O_EXCL` would leave an unreadable registry if the run died
/// before its first save.)
fn claim(path: &Path) -> Result<(), RegistryError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Err(RegistryError::Taken {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(RegistryError::CreateFile {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Reads a registry file of either schema version; `Ok(None)` when it does not exist.
pub fn load(path: &Path) -> Result<Option<RegistryBody>, DurableError> {
    match durable::load(path, REGISTRY_SCHEMA) {
        Err(DurableError::Version { found, .. }) if found == REGISTRY_SCHEMA_V1 => {
            durable::load(path, REGISTRY_SCHEMA_V1)
        }
        other => other,
    }
}

/// Removes `objects` of the run `owner` last first, carrying on past failures so one stuck
/// object does not keep the others alive; reports the count and the first failure.
pub fn remove_all(
    root: &Root,
    objects: &[LabObject],
    owner: u32,
    remover: Remover,
) -> Result<(), RegistryError> {
    let mut failures = objects
        .iter()
        .rev()
        .filter_map(|o| o.remove(root, owner, remover).err());
    let Some(first) = failures.next() else {
        return Ok(());
    };
    Err(RegistryError::Cleanup {
        failed: 1 + failures.count(),
        first,
    })
}

/// The start time of `pid`, in clock ticks since boot.
pub fn start_time_of(root: &Root, pid: u32) -> Result<u64, ReadError> {
    let path = format!("/proc/{pid}/stat");
    let text = root.read_to_string(&path)?;
    parse_start_time(&text).ok_or_else(|| ReadError::Parse {
        path: path.into(),
        value: text.chars().take(80).collect(),
        reason: "no start time (field 22)".into(),
    })
}

/// Field 22 of a `/proc/<pid>/stat` line. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

/// True when the run that wrote `body` is still alive: its pid exists with the same start time.
pub fn owner_alive(root: &Root, body: &RegistryBody) -> bool {
    start_time_of(root, body.pid).is_ok_and(|t| t == body.start_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_start_time_past_odd_command_names() {
        let cases = [
            (
                "plain",
                "42 (cargo) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10",
                Some(987_654),
            ),
            (
                "spaces and parens in comm",
                "42 (a) b (c) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 55 1000 10",
                Some(55),
            ),
            ("cut short", "42 (x) S 1 42", None),
            ("empty", "", None),
        ];
        for (what, text, want) in cases {
            assert_eq!(parse_start_time(text), want, "{what}");
        }
    }

    #[test]
    fn own_process_is_alive_and_a_changed_start_time_is_not() {
        let root = Root::default();
        let pid = std::process::id();
        let mut body = RegistryBody {
            pid,
            start_time: start_time_of(&root, pid).unwrap(),
            objects: vec![],
        };
        assert!(owner_alive(&root, &body));
        body.start_time += 1;
        assert!(!owner_alive(&root, &body));
    }

    #[test]
    fn a_version_1_registry_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lab-1aa.json");
        let body = RegistryBody {
            pid: 1,
            start_time: 2,
            objects: vec![LabObject::Netns {
                name: "nnlab-1aa-veth-c".into(),
            }],
        };
        durable::store(&path, REGISTRY_SCHEMA_V1, &body).unwrap();
        assert_eq!(load(&path).unwrap(), Some(body));
        durable::store(&path, 99, &()).unwrap();
        assert!(load(&path).is_err());
    }

    #[test]
    fn never_overwrites_an_existing_registry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lab-1aa.json");
        let leftover = RegistryBody {
            pid: 1,
            start_time: 2,
            objects: vec![LabObject::Netns {
                name: "nnlab-1aa-veth-c".into(),
            }],
        };
        durable::store(&path, REGISTRY_SCHEMA, &leftover).unwrap();
        let err = Registry::create(dir.path(), "lab-1aa.json", Root::default()).unwrap_err();
        assert!(matches!(err, RegistryError::Taken { .. }), "{err}");
        assert_eq!(load(&path).unwrap(), Some(leftover));
    }

    #[test]
    fn registers_before_creating_and_refuses_after_cleanup() {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = Registry::create(dir.path(), "lab-1aa.json", Root::default()).unwrap();
        let object = LabObject::Netns {
            name: "nnlab-1aa-unit".into(),
        };
        let path = registry.path().to_owned();
        let seen = registry
            .create_with(object.clone(), || {
                let body: RegistryBody = durable::load(&path, REGISTRY_SCHEMA)?.unwrap();
                Ok::<_, Box<dyn std::error::Error>>(body.objects)
            })
            .unwrap();
        assert_eq!(seen, vec![object.clone()]);
        registry.cleanup().unwrap();
        assert!(!path.exists());
        let err = registry
            .create_with(object, || Ok::<_, RegistryError>(()))
            .unwrap_err();
        assert!(matches!(err, RegistryError::Closed), "{err}");
    }
}
