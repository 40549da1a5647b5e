//! cpuset cgroups: a directory nearnative creates (and removes on revert), its CPUs, memory
//! nodes and exclusivity (v1 `cpu_exclusive`, v2 partition), and which cgroup a thread is in.
//!
//! v1 cpuset files are taken to carry the `cpuset.` prefix (no `noprefix` mount option, as
//! systemd and every distribution mount it).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::task::{check_same_thread, gone_if_exited};
use crate::backend::{cgroup_dir, Backend, CgroupLine, TaskId, TaskMove};
use crate::error::{Described, KnobError, Object};
use crate::knob::{described, file_knob, read_file, write_file, Knob};
use crate::values::{CgroupMount, CgroupPath};
use nearnative_host::cgroup::path_in_table;
use nearnative_host::kernel::cgroup::{CgroupAt, CgroupFile, CgroupKind};
use nearnative_host::kernel::KernelFile;
use nearnative_host::CpuSet;

pub use nearnative_host::cgroup::{Controller, Hierarchy};
pub use nearnative_host::kernel::cgroup::Partition;

/// One cgroup directory: a hierarchy's mount point and the path inside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    pub mount: CgroupMount,
    pub path: CgroupPath,
}

impl Cgroup {
    /// The directory, as a host path.
    pub fn dir(&self) -> PathBuf {
        cgroup_dir(self.mount.as_path(), self.path.as_str())
    }

    /// The directory's kernel files, as `nearnative_host::kernel::cgroup` defines them.
    pub fn at(&self) -> CgroupAt {
        CgroupAt::new(self.dir(), self.path.as_str())
    }
}

/// Whether a cgroup directory exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    Absent,
    Present,
}

/// A cgroup directory. Planned `Absent → Present` when nearnative creates it; revert removes it
/// again, which the kernel allows only once it holds no tasks and no children.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupDir {
    pub cgroup: Cgroup,
}

impl Knob for CgroupDir {
    type Value = Presence;

    fn describe(&self) -> Described {
        Described::new(
            format!("cgroup {}", self.cgroup.path),
            self.cgroup.dir().display().to_string(),
        )
    }

    fn read(&self, backend: &dyn Backend) -> Result<Presence, KnobError> {
        match backend.root().exists(self.cgroup.dir()) {
            true => Ok(Presence::Present),
            false => Ok(Presence::Absent),
        }
    }

    fn write(&self, backend: &dyn Backend, presence: &Presence) -> Result<(), KnobError> {
        let dir = self.cgroup.dir();
        let result = match presence {
            Presence::Present => backend.create_cgroup(&dir),
            Presence::Absent => backend.remove_cgroup(&dir),
        };
        result.map_err(|e| KnobError::from_write(self.describe(), Object::File, e))
    }
}

impl CgroupDir {
    /// Moves every task still in the cgroup out of it: the threads a workload started after
    /// the apply, which the journal does not know, would otherwise keep the cgroup from being
    /// emptied and removed on revert. Each goes where `home` says its process (by pid) was
    /// before the apply, else to the parent cgroup. A v1 cpuset lists its threads in `tasks`;
    /// a v2 cgroup its processes in `cgroup.procs`, except a threaded one, whose `cgroup.procs`
    /// the kernel does not list: its threads go one by one through `cgroup.threads`, inside
    /// the same threaded domain. Every task is tried; a task that exits meanwhile is skipped;
    /// the first failure is returned after the rest were moved.
    pub fn evacuate(
        &self,
        backend: &dyn Backend,
        home: &dyn Fn(u32) -> Option<String>,
    ) -> Result<Vec<TaskId>, KnobError> {
        let dir = self.cgroup.dir();
        let (file, line) = match self.residents(backend) {
            Residents::V1 => (
                "tasks",
                CgroupLine::V1 {
                    controller: "cpuset".to_owned(),
                },
            ),
            Residents::Processes => ("cgroup.procs", CgroupLine::V2),
            Residents::Threads => ("cgroup.threads", CgroupLine::V2),
        };
        let listed = match backend.root().read_to_string(dir.join(file)) {
            Ok(text) => text,
            Err(err) if err.is_not_found() => return Ok(Vec::new()),
            Err(err) => return Err(KnobError::from_read(self.describe(), Object::File, err)),
        };
        let mut moved = Vec::new();
        let mut failure = None;
        for id in listed
            .split_whitespace()
            .filter_map(|id| id.parse::<u32>().ok())
        {
            let task = TaskId {
                pid: thread_group(backend, id),
                tid: id,
            };
            let task_move = TaskMove {
                task,
                mount: self.cgroup.mount.as_path().to_owned(),
                line: line.clone(),
                to: home(task.pid).unwrap_or_else(|| self.parent()),
                file,
                id,
            };
            match backend.move_task(&task_move) {
                Ok(()) => moved.push(task),
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) => {
                    failure.get_or_insert(KnobError::from_write(self.describe(), Object::File, e));
                }
            }
        }
        match failure {
            Some(err) => Err(err),
            None => Ok(moved),
        }
    }

    /// Whether any task is still listed in the cgroup (an exiting one included, until the
    /// kernel drops it). Unreadable counts as not known to be empty.
    pub fn holds_tasks(&self, backend: &dyn Backend) -> bool {
        let file = match self.residents(backend) {
            Residents::V1 => "tasks",
            Residents::Processes => "cgroup.procs",
            Residents::Threads => "cgroup.threads",
        };
        match backend.root().read_to_string(self.cgroup.dir().join(file)) {
            Ok(listed) => !listed.trim().is_empty(),
            Err(err) => !err.is_not_found(),
        }
    }

    fn residents(&self, backend: &dyn Backend) -> Residents {
        let dir = self.cgroup.dir();
        if backend.root().exists(dir.join("tasks")) {
            return Residents::V1;
        }
        match self.cgroup.at().kind().read(backend.root()) {
            Ok(CgroupKind::Threaded) => Residents::Threads,
            _ => Residents::Processes,
        }
    }

    /// The parent cgroup's path: `/a` for `/a/b`, `/` for `/a`.
    fn parent(&self) -> String {
        match self
            .cgroup
            .path
            .as_str()
            .trim_end_matches('/')
            .rsplit_once('/')
        {
            Some(("", _)) | None => "/".to_owned(),
            Some((parent, _)) => parent.to_owned(),
        }
    }
}

/// How a cgroup lists what is in it.
enum Residents {
    /// v1: threads in `tasks`.
    V1,
    /// v2 domain: processes in `cgroup.procs`.
    Processes,
    /// v2 threaded: threads in `cgroup.threads`.
    Threads,
}

/// The process a thread belongs to: `Tgid` in `/proc/TID/status` (which the kernel answers
/// for any thread id), else the process whose `task/` holds it (a captured tree lists only
/// processes), else the id itself.
fn thread_group(backend: &dyn Backend, tid: u32) -> u32 {
    let root = backend.root();
    let status = root.read_to_string(format!("/proc/{tid}/status"));
    let tgid = status.ok().and_then(|text| {
        text.lines()
            .find_map(|l| l.strip_prefix("Tgid:"))
            .and_then(|v| v.trim().parse().ok())
    });
    tgid.or_else(|| {
        let pids = root.list_dir("/proc").ok()?;
        pids.iter()
            .filter_map(|p| p.parse::<u32>().ok())
            .find(|pid| root.exists(format!("/proc/{pid}/task/{tid}")))
    })
    .unwrap_or(tid)
}

macro_rules! cpuset_knob {
    ($(#[$doc:meta])* $knob:ident, $value:ty, $file:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub struct $knob {
            pub cgroup: Cgroup,
        }
        file_knob!($knob, CgroupFile<$value>, |this| this.cgroup.at().$file());
    };
}

cpuset_knob!(
    /// `cpuset.cpus`: the CPUs the cgroup's tasks may use.
    CpusetCpus, CpuSet, cpus
);
cpuset_knob!(
    /// `cpuset.mems`: the memory nodes the cgroup's tasks may allocate from.
    CpusetMems, CpuSet, mems
);
cpuset_knob!(
    /// v1 `cpuset.cpu_exclusive`: no sibling cgroup may share these CPUs.
    CpusetCpuExclusive, bool, cpu_exclusive
);
/// v2 `cpuset.cpus.partition`. Best effort: kernels before 6.x answer a write that breaks a
/// partition rule with EINVAL (newer ones take it and show ` invalid (reason)`), and a
/// partition only adds to what the cgroup's `cpuset.cpus` already enforces, so a refusal is
/// recorded and the apply goes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpusetPartition {
    pub cgroup: Cgroup,
}

impl CpusetPartition {
    /// The kernel file this knob is.
    pub fn file(&self) -> CgroupFile<Partition> {
        self.cgroup.at().partition()
    }
}

impl Knob for CpusetPartition {
    type Value = Partition;

    fn describe(&self) -> Described {
        described(&self.file())
    }

    fn read(&self, backend: &dyn Backend) -> Result<Partition, KnobError> {
        read_file(backend, &self.file())
    }

    fn write(&self, backend: &dyn Backend, partition: &Partition) -> Result<(), KnobError> {
        write_file(backend, &self.file(), partition)
    }

    fn best_effort(&self) -> bool {
        true
    }
}

/// Which cgroup of `hierarchy` a thread is in, read from `/proc/PID/task/TID/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCgroup {
    pub pid: u32,
    pub tid: u32,
    pub start_time: u64,
    pub hierarchy: Hierarchy,
}

impl TaskCgroup {
    fn task(&self) -> TaskId {
        TaskId {
            pid: self.pid,
            tid: self.tid,
        }
    }

    fn task_move(&self, backend: &dyn Backend, to: &CgroupPath) -> TaskMove {
        let mount = self.hierarchy.mount().as_path().to_owned();
        let (file, id) = match &self.hierarchy {
            Hierarchy::V1 { .. } => ("tasks", self.tid),
            Hierarchy::V2 { .. } => {
                let target = CgroupAt::new(cgroup_dir(&mount, to.as_str()), to.as_str());
                match target.kind().read(backend.root()) {
                    Ok(CgroupKind::Threaded) => ("cgroup.threads", self.tid),
                    _ => ("cgroup.procs", self.pid),
                }
            }
        };
        TaskMove {
            task: self.task(),
            mount,
            line: self.hierarchy.line(),
            to: to.as_str().to_owned(),
            file,
            id,
        }
    }
}

impl Knob for TaskCgroup {
    type Value = CgroupPath;

    fn describe(&self) -> Described {
        Described::new(
            format!(
                "cgroup of thread {} of process {} in {}",
                self.tid,
                self.pid,
                self.hierarchy.mount().as_path().display()
            ),
            format!("{}/cgroup", self.task().proc_dir().display()),
        )
    }

    fn read(&self, backend: &dyn Backend) -> Result<CgroupPath, KnobError> {
        let knob = self.describe();
        check_same_thread(backend, &knob, self.task(), self.start_time)?;
        let line = self.hierarchy.line();
        let parse = |table: &str| {
            let path = path_in_table(table, &line)
                .ok_or_else(|| "no line for this hierarchy".to_owned())?;
            CgroupPath::try_from(path)
        };
        backend
            .root()
            .read_parsed(self.task().proc_dir().join("cgroup"), parse)
            .map_err(|e| KnobError::from_read(knob, Object::Task, e))
    }

    fn write(&self, backend: &dyn Backend, to: &CgroupPath) -> Result<(), KnobError> {
        let knob = self.describe();
        check_same_thread(backend, &knob, self.task(), self.start_time)?;
        let task_move = self.task_move(backend, to);
        let target = task_move.target_file();
        if !backend.root().exists(&target) {
            return Err(KnobError::Missing {
                knob: Described::new(knob.object, target.display().to_string()),
            });
        }
        backend.move_task(&task_move).map_err(|e| {
            let knob = Described::new(knob.object, target.display().to_string());
            let err = KnobError::from_write(knob, Object::Task, e);
            gone_if_exited(backend, self.task(), self.start_time, err)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nearnative_host::kernel::KernelFile;

    #[test]
    fn an_invalid_partition_is_neither_root_nor_member() {
        let knob = CpusetPartition {
            cgroup: Cgroup {
                mount: CgroupMount::try_from("/sys/fs/cgroup").unwrap(),
                path: CgroupPath::try_from("/a").unwrap(),
            },
        };
        let file = knob.file();
        let invalid = file.parse("root invalid (Cpu list empty)").unwrap();
        assert!(invalid != Partition::Root && invalid != Partition::Member);
        assert_eq!(file.format(&invalid), "root", "restored by asking again");
        assert_eq!(
            knob.describe().location,
            "/sys/fs/cgroup/a/cpuset.cpus.partition"
        );
    }

    #[test]
    fn controller_names_are_checked() {
        assert!(Controller::try_from("cpuset".to_owned()).is_ok());
        assert!(Controller::try_from("cpu,cpuacct".to_owned()).is_err());
    }
}
