//! The lab's own cgroup. The lab process moves into it whole (every thread) before it starts
//! anything, so every thread and process it starts afterwards lives there too, and the
//! latency-sensitive apply, scoped to it, moves nothing the lab did not start.
//!
//! It lives in the cgroup v1 cpuset hierarchy when there is one (the one the planner fences
//! with), as a child of the process's cpuset cgroup with the same CPUs and memory nodes; else
//! in the cgroup v2 (unified) hierarchy, next to the process's cgroup (see [`choose`]). Removing
//! it moves this process back where it came from, then removes the directory; the kernel
//! refuses to remove a cgroup that still holds a task or a child, so nothing else can be lost
//! with it.

mod choose;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nearnative_host::cgroup::Hierarchy;
use serde::{Deserialize, Serialize};

use crate::names::is_lab_cgroup;

pub use choose::{choose, parse_unified_cgroup, CgroupChoice, Site, UnknownChoice, Unusable};

/// How often, and how long apart, removal retries a cgroup the kernel still calls busy (a
/// task that just left it may take a moment to be accounted elsewhere).
const RMDIR_ATTEMPTS: u32 = 25;
const RMDIR_PAUSE: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("nearnative lab needs a cgroup hierarchy to run in: the cgroup v1 cpuset hierarchy ({v1}) or the cgroup v2 hierarchy ({v2})")]
    NoHierarchy { v1: Unusable, v2: Unusable },
    #[error("--cgroup {choice}: {} is not usable: {why}", choice.hierarchy())]
    Unusable { choice: CgroupChoice, why: Unusable },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {value:?} to {path}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot create cgroup {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot remove cgroup {path} (a task or a child cgroup is still in it?)")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A cgroup, by its hierarchy's mount point and its path there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabCgroup {
    pub mount: PathBuf,
    /// Inside the hierarchy, `/` for its root.
    pub path: String,
}

impl LabCgroup {
    pub fn dir(&self) -> PathBuf {
        self.mount.join(self.path.trim_start_matches('/'))
    }

    /// The child `name` of this cgroup.
    pub fn child(&self, name: &str) -> LabCgroup {
        LabCgroup {
            mount: self.mount.clone(),
            path: format!("{}/{name}", self.path.trim_end_matches('/')),
        }
    }

    /// Moves every thread of this process into the cgroup (a `cgroup.procs` write moves the
    /// whole thread group, in v1 and v2). A cpuset cgroup resets each thread's affinity to its
    /// CPUs.
    pub fn move_this_process_in(&self) -> Result<(), CgroupError> {
        write(
            &self.dir().join("cgroup.procs"),
            &std::process::id().to_string(),
        )
    }
}

/// Creates `cgroup` in `site`'s parent, ready for tasks: in the v1 cpuset hierarchy with the
/// parent's CPUs and memory nodes (v1 leaves them empty, which admits no task); in v2 as it
/// comes (an empty `cpuset.cpus` inherits). A cgroup that exists already is refused: it is not
/// this run's.
pub fn create(cgroup: &LabCgroup, site: &Site) -> Result<(), CgroupError> {
    let dir = cgroup.dir();
    fs::create_dir(&dir).map_err(|source| CgroupError::Create {
        path: dir.clone(),
        source,
    })?;
    if matches!(site.hierarchy, Hierarchy::V1 { .. }) {
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let value = read(&site.parent.dir().join(file))?;
            write(&dir.join(file), value.trim())?;
        }
    }
    Ok(())
}

/// Removes the lab cgroup `cgroup`, first moving this process back to `origin` when
/// `this_process` says the cgroup is this process's own. Idempotent; only lab-named cgroups
/// are touched (checked by the caller through [`is_lab_cgroup_path`]).
pub fn remove(
    cgroup: &LabCgroup,
    origin: &LabCgroup,
    this_process: bool,
) -> Result<(), CgroupError> {
    let dir = cgroup.dir();
    if !dir.is_dir() {
        return Ok(());
    }
    if this_process {
        origin.move_this_process_in()?;
    }
    let mut attempt = 0;
    loop {
        match fs::remove_dir(&dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if attempt + 1 < RMDIR_ATTEMPTS && e.raw_os_error() == Some(libc::EBUSY) => {
                attempt += 1;
                std::thread::sleep(RMDIR_PAUSE);
            }
            Err(source) => return Err(CgroupError::Remove { path: dir, source }),
        }
    }
}

/// True when `path` (inside a hierarchy) ends in a lab cgroup name and climbs nowhere.
pub fn is_lab_cgroup_path(path: &str) -> bool {
    let mut components = path.split('/').filter(|c| !c.is_empty());
    let last = components.next_back();
    last.is_some_and(is_lab_cgroup) && components.all(|c| c != ".." && c != ".")
}

/// True when `path` is a plain absolute path inside a hierarchy: no `.` or `..`.
pub fn is_plain_path(path: &str) -> bool {
    path.starts_with('/') && path.split('/').all(|c| c != ".." && c != ".")
}

fn read(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_owned(),
        source,
    })
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(|source| CgroupError::Write {
        path: path.to_owned(),
        value: value.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lab_cgroup_paths_are_lab_owned() {
        let cases = [
            ("under the root", "/nearnative-lab-12aa", true),
            ("under another cgroup", "/machine/nearnative-lab-12aa", true),
            (
                "a plan's cgroup",
                "/nearnative-lab-12aa/nearnative-pid-12-hk",
                false,
            ),
            ("climbing", "/../nearnative-lab-12aa", false),
            ("the root", "/", false),
            ("empty", "", false),
        ];
        for (what, path, want) in cases {
            assert_eq!(is_lab_cgroup_path(path), want, "{what}");
        }
    }

    #[test]
    fn child_paths_join_without_double_slashes() {
        let root = LabCgroup {
            mount: "/sys/fs/cgroup/cpuset".into(),
            path: "/".into(),
        };
        let child = root.child("nearnative-lab-1aa");
        assert_eq!(child.path, "/nearnative-lab-1aa");
        assert_eq!(
            child.dir(),
            PathBuf::from("/sys/fs/cgroup/cpuset/nearnative-lab-1aa")
        );
        assert_eq!(child.child("x").path, "/nearnative-lab-1aa/x");
    }

    #[test]
    fn plain_paths_do_not_climb() {
        assert!(is_plain_path("/"));
        assert!(is_plain_path("/a/b"));
        assert!(!is_plain_path("a"));
        assert!(!is_plain_path("/a/../b"));
    }
}
