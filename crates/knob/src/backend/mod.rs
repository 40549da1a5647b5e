//! How a knob touches the host: the live machine ([`LiveBackend`]) or a captured tree
//! ([`TreeBackend`]).
//!
//! Reads always go through the backend's [`Root`], so both backends read the same way. Writes
//! are the few primitive effects the whitelist needs — write a file, set a thread's affinity or
//! policy, move a task between cgroups, create or remove a cgroup, set NIC coalescing or an
//! offload — so the tree can play the kernel's part for each (a read after a write returns what
//! the kernel would show) and nothing else can be written.

mod libvirt;
mod live;
mod tree;
mod tree_cgroup_v2;
mod tree_kernel;

use std::io;
use std::path::{Path, PathBuf};

use nearnative_host::nic::Coalescing;
use nearnative_host::{CpuSet, Root};

use crate::exclusivity::sched::Policy;

pub use libvirt::LibvirtPinCall;
pub use live::LiveBackend;
pub use nearnative_host::cgroup::CgroupLine;
pub use tree::TreeBackend;

/// A thread, by the ids `/proc/PID/task/TID` is found under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    pub pid: u32,
    pub tid: u32,
}

impl TaskId {
    /// `/proc/PID/task/TID`.
    pub fn proc_dir(self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/task/{}", self.pid, self.tid))
    }
}

/// Moving a task into a cgroup: write `id` into `file` of the cgroup `to` under `mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskMove {
    pub task: TaskId,
    /// The hierarchy's mount point, a host path (`/sys/fs/cgroup/cpuset`).
    pub mount: PathBuf,
    pub line: CgroupLine,
    /// The cgroup path inside the hierarchy, `/` or `/a/b`.
    pub to: String,
    /// `tasks` (v1, per thread), `cgroup.threads` (v2 threaded) or `cgroup.procs` (v2).
    pub file: &'static str,
    /// The id written: the tid, or the pid for `cgroup.procs`.
    pub id: u32,
}

impl TaskMove {
    /// The host path written to.
    pub fn target_file(&self) -> PathBuf {
        cgroup_dir(&self.mount, &self.to).join(self.file)
    }
}

/// The directory of cgroup `path` (`/` or `/a/b`) under `mount`.
pub fn cgroup_dir(mount: &Path, path: &str) -> PathBuf {
    mount.join(path.trim_start_matches('/'))
}

/// A receive offload the NIC knobs may switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Offload {
    Lro,
    Gro,
}

/// The host's write side. Each method is one kernel effect; errors are the kernel's errno
/// (as `io::Error`), which the knob turns into a [`crate::KnobError`] naming itself.
pub trait Backend {
    /// Where every read goes.
    fn root(&self) -> &Root;
    /// True for the running host, where writes change the machine.
    fn is_live(&self) -> bool;
    /// Writes `text` to an existing kernel file in one `write`, as `echo text > file` does.
    fn write_file(&self, host_path: &Path, text: &str) -> io::Result<()>;
    fn set_thread_affinity(&self, task: TaskId, cpus: &CpuSet) -> io::Result<()>;
    /// The thread's affinity exactly as its `status` shows it (`Cpus_allowed_list`), when the
    /// backend can tell it without opening that file; `None`: read `status`. With 10 000
    /// threads, an open of each thread's `status` is a large part of an apply.
    fn thread_affinity(&self, _task: TaskId) -> io::Result<Option<CpuSet>> {
        Ok(None)
    }
    fn set_sched_policy(&self, task: TaskId, policy: Policy) -> io::Result<()>;
    fn move_task(&self, task_move: &TaskMove) -> io::Result<()>;
    /// `mkdir` of a cgroup directory: the kernel fills it with the controllers' files.
    fn create_cgroup(&self, host_dir: &Path) -> io::Result<()>;
    /// `rmdir` of a cgroup directory: refused (EBUSY) while it holds tasks or children.
    fn remove_cgroup(&self, host_dir: &Path) -> io::Result<()>;
    fn coalescing(&self, iface: &str) -> io::Result<Coalescing>;
    fn set_coalescing(&self, iface: &str, coalescing: &Coalescing) -> io::Result<()>;
    fn offload(&self, iface: &str, offload: Offload) -> io::Result<bool>;
    fn set_offload(&self, iface: &str, offload: Offload, on: bool) -> io::Result<()>;
    /// Pins a libvirt domain's vCPU, emulator or iothread through libvirt, which writes the
    /// child cgroup's `cpuset.cpus` and its threads' affinity and remembers the pinning. A
    /// domain libvirt does not know is `ErrorKind::NotFound`; no virsh is `Unsupported`, as
    /// is a backend that stands for neither the host nor a tree.
    fn libvirt_pin(&self, _call: &LibvirtPinCall) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this backend does not reach libvirt",
        ))
    }
}
