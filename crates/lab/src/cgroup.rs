//! The lab's own cpuset cgroup. The lab process moves into it whole (every thread) before it
//! starts anything, so every thread and process it starts afterwards lives there too, and the
//! latency-sensitive apply, scoped to it, moves nothing the lab did not start.
//!
//! It is a child of the cgroup the process was in, in the cgroup v1 cpuset hierarchy (the one
//! the planner fences with), with the same CPUs and memory nodes. Removing it moves this
//! process back where it came from, then removes the directory; the kernel refuses to remove a
//! cgroup that still holds a task or a child, so nothing else can be lost with it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nearnative_host::isolation::{Isolation, WalkLimits};
use nearnative_host::Root;
use serde::{Deserialize, Serialize};

use crate::names::is_lab_cgroup;

/// How often, and how long apart, removal retries a cgroup the kernel still calls busy (a
/// task that just left it may take a moment to be accounted elsewhere).
const RMDIR_ATTEMPTS: u32 = 25;
const RMDIR_PAUSE: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("nearnative lab needs the cgroup v1 cpuset hierarchy (mounted at /sys/fs/cgroup/cpuset on Debian 12), to fence the exclusive CPU; {found}")]
    NoHierarchy { found: String },
    #[error("cannot tell which cpuset cgroup this process is in (/proc/self/cgroup)")]
    Origin,
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

/// A cgroup in the v1 cpuset hierarchy, by the hierarchy's mount point and its path there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpusetCgroup {
    pub mount: PathBuf,
    /// Inside the hierarchy, `/` for its root.
    pub path: String,
}

impl CpusetCgroup {
    pub fn dir(&self) -> PathBuf {
        self.mount.join(self.path.trim_start_matches('/'))
    }

    /// The child `name` of this cgroup.
    pub fn child(&self, name: &str) -> CpusetCgroup {
        CpusetCgroup {
            mount: self.mount.clone(),
            path: format!("{}/{name}", self.path.trim_end_matches('/')),
        }
    }

    /// Moves every thread of this process into the cgroup (a v1 `cgroup.procs` write moves
    /// the whole thread group). The kernel resets each thread's affinity to the cgroup's CPUs.
    pub fn move_this_process_in(&self) -> Result<(), CgroupError> {
        write(
            &self.dir().join("cgroup.procs"),
            &std::process::id().to_string(),
        )
    }
}

/// The cgroup v1 cpuset hierarchy and this process's cgroup in it, or one line saying what is
/// missing.
pub fn own_cpuset(root: &Root) -> Result<CpusetCgroup, CgroupError> {
    let isolation = Isolation::read(root, WalkLimits::default(), &mut Vec::new());
    let cgroups = &isolation.cgroups;
    let mount = match (cgroups.cpuset_version, &cgroups.cpuset_mount) {
        (Some(1), Some(mount)) => mount.clone(),
        (Some(version), Some(mount)) => {
            return Err(CgroupError::NoHierarchy {
                found: format!(
                    "the cpuset controller is on cgroup v{version} at {}",
                    mount.display()
                ),
            })
        }
        _ => {
            return Err(CgroupError::NoHierarchy {
                found: "no mounted hierarchy has the cpuset controller".into(),
            })
        }
    };
    let origin = isolation.process_cpuset.ok_or(CgroupError::Origin)?;
    Ok(CpusetCgroup {
        mount,
        path: origin.cgroup,
    })
}

/// Creates `cgroup` with the CPUs and memory nodes of `parent`, ready for tasks. A cgroup
/// that exists already is refused: it is not this run's.
pub fn create(cgroup: &CpusetCgroup, parent: &CpusetCgroup) -> Result<(), CgroupError> {
    let dir = cgroup.dir();
    fs::create_dir(&dir).map_err(|source| CgroupError::Create {
        path: dir.clone(),
        source,
    })?;
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let value = read(&parent.dir().join(file))?;
        write(&dir.join(file), value.trim())?;
    }
    Ok(())
}

/// Removes the lab cgroup `cgroup`, first moving this process back to `origin` when
/// `this_process` says the cgroup is this process's own. Idempotent; only lab-named cgroups
/// are touched (checked by the caller through [`is_lab_cgroup_path`]).
pub fn remove(
    cgroup: &CpusetCgroup,
    origin: &CpusetCgroup,
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
        let root = CpusetCgroup {
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

    /// A host tree with `mountinfo` and the given files (path, text).
    fn host(mountinfo: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        let all = [("proc/self/mountinfo", mountinfo)];
        for (path, text) in all.iter().chain(files) {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        let root = Root::new(dir.path());
        (dir, root)
    }

    #[test]
    fn says_in_one_line_when_no_v1_cpuset_hierarchy_is_there() {
        let v2 = "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let cases = [
            (
                "v2 without cpuset",
                host(
                    v2,
                    &[("sys/fs/cgroup/cgroup.controllers", "cpu io memory\n")],
                ),
                "no mounted hierarchy has the cpuset controller",
            ),
            (
                "cpuset on v2",
                host(v2, &[("sys/fs/cgroup/cgroup.controllers", "cpuset cpu\n")]),
                "the cpuset controller is on cgroup v2 at /sys/fs/cgroup",
            ),
        ];
        for (what, (_dir, root), want) in cases {
            let err = own_cpuset(&root).unwrap_err().to_string();
            assert!(
                err.starts_with("nearnative lab needs the cgroup v1 cpuset"),
                "{what}: {err}"
            );
            assert!(err.contains(want), "{what}: {err}");
            assert!(!err.contains('\n'), "{what}: {err}");
        }
    }

    #[test]
    fn finds_this_processs_cgroup_in_a_v1_hierarchy() {
        let v1 = "34 31 0:31 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset\n";
        let (_dir, root) = host(
            v1,
            &[
                ("proc/self/cgroup", "3:cpuset:/machine\n"),
                (
                    "sys/fs/cgroup/cpuset/machine/cpuset.effective_cpus",
                    "0-3\n",
                ),
            ],
        );
        let own = own_cpuset(&root).unwrap();
        assert_eq!(own.mount, PathBuf::from("/sys/fs/cgroup/cpuset"));
        assert_eq!(own.path, "/machine");
    }

    #[test]
    fn plain_paths_do_not_climb() {
        assert!(is_plain_path("/"));
        assert!(is_plain_path("/a/b"));
        assert!(!is_plain_path("a"));
        assert!(!is_plain_path("/a/../b"));
    }
}
