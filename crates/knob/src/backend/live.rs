//! The running host: real file writes, `sched_setaffinity`, `sched_setscheduler`, cgroup
//! `mkdir`/`rmdir` and SIOCETHTOOL.
//!
//! An apply moves thousands of threads into a handful of cgroups, so the backend keeps each
//! cgroup file it moved a task through open, as `echo` in a loop would not: an open of a
//! cgroup file costs more than the write. A kept file whose cgroup was removed since refuses
//! the write; the move is then tried once more through a fresh open, which answers as a
//! first open would.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use nearnative_host::nic::ethtool::EthtoolSocket;
use nearnative_host::nic::Coalescing;
use nearnative_host::tasks::affinity;
use nearnative_host::{CpuSet, Root};
use nix::unistd::Pid;

use super::{Backend, LibvirtPinCall, Offload, TaskId, TaskMove};
use crate::exclusivity::sched::Policy;

/// The machine we run on, through `/`.
#[derive(Debug, Default)]
pub struct LiveBackend {
    root: Root,
    /// The cgroup files tasks were moved through, kept open, by host path.
    open_files: Mutex<HashMap<PathBuf, File>>,
    /// Whether `sched_getaffinity` tells a thread's affinity exactly (see
    /// [`nearnative_host::tasks::affinity`]); found at the first use. CPUs going offline in
    /// the middle of an apply would fail it anyway, since its plan names them.
    exact_getaffinity: OnceLock<Option<u32>>,
}

impl Clone for LiveBackend {
    /// A clone opens its own files.
    fn clone(&self) -> Self {
        LiveBackend {
            root: self.root.clone(),
            ..LiveBackend::default()
        }
    }
}

impl LiveBackend {
    pub fn new() -> Self {
        LiveBackend::default()
    }

    /// Writes `text` through the kept file for `host_path`, opening it if none is kept.
    fn write_kept(&self, host_path: &Path, text: &str) -> io::Result<()> {
        let mut files = self
            .open_files
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(file) = files.get_mut(host_path) {
            if write_line(file, text).is_ok() {
                return Ok(());
            }
            files.remove(host_path);
        }
        let mut file = OpenOptions::new().write(true).open(host_path)?;
        write_line(&mut file, text)?;
        files.insert(host_path.to_owned(), file);
        Ok(())
    }

    fn forget_files(&self) {
        self.open_files
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }
}

/// sysfs, procfs and cgroupfs take a value in one write; a short write would apply a prefix.
fn write_line(file: &mut File, text: &str) -> io::Result<()> {
    let line = format!("{text}\n");
    let written = file.write(line.as_bytes())?;
    match written == line.len() {
        true => Ok(()),
        false => Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("short write: {written} of {} bytes", line.len()),
        )),
    }
}

fn errno_to_io(errno: nix::errno::Errno) -> io::Error {
    io::Error::from_raw_os_error(errno as i32)
}

fn pid_of(id: u32) -> io::Result<Pid> {
    i32::try_from(id)
        .map(Pid::from_raw)
        .map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))
}

fn ethtool() -> io::Result<EthtoolSocket> {
    EthtoolSocket::open().map_err(errno_to_io)
}

impl Backend for LiveBackend {
    fn root(&self) -> &Root {
        &self.root
    }

    fn is_live(&self) -> bool {
        true
    }

    fn write_file(&self, host_path: &Path, text: &str) -> io::Result<()> {
        let mut file = OpenOptions::new().write(true).open(host_path)?;
        write_line(&mut file, text)
    }

    fn set_thread_affinity(&self, task: TaskId, cpus: &CpuSet) -> io::Result<()> {
        nearnative_sys::pin::set_thread_affinity(task.tid, cpus).map_err(errno_to_io)
    }

    fn thread_affinity(&self, task: TaskId) -> io::Result<Option<CpuSet>> {
        let span = self
            .exact_getaffinity
            .get_or_init(|| affinity::exact_getaffinity_span(&self.root));
        match span {
            Some(span) => affinity::thread_affinity(task.tid, *span).map(Some),
            None => Ok(None),
        }
    }

    fn set_sched_policy(&self, task: TaskId, policy: Policy) -> io::Result<()> {
        let tid = pid_of(task.tid)?.as_raw();
        let param = libc::sched_param {
            sched_priority: policy.rt_priority() as libc::c_int,
        };
        let number = policy.class().number() as libc::c_int;
        // SAFETY: sched_setscheduler reads the sched_param we pass by reference and nothing
        // else; a bad tid or value comes back as an errno.
        let rc = unsafe { libc::sched_setscheduler(tid, number, &param) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        if let Some(nice) = policy.nice() {
            // SAFETY: setpriority takes plain integers; PRIO_PROCESS with a tid sets that
            // thread's nice value on Linux.
            let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    fn move_task(&self, task_move: &TaskMove) -> io::Result<()> {
        self.write_kept(&task_move.target_file(), &task_move.id.to_string())
    }

    fn create_cgroup(&self, host_dir: &Path) -> io::Result<()> {
        std::fs::create_dir(host_dir)
    }

    fn remove_cgroup(&self, host_dir: &Path) -> io::Result<()> {
        // A kept file of a removed cgroup would only refuse writes.
        self.forget_files();
        std::fs::remove_dir(host_dir)
    }

    fn coalescing(&self, iface: &str) -> io::Result<Coalescing> {
        ethtool()?.coalescing(iface).map_err(errno_to_io)
    }

    fn set_coalescing(&self, iface: &str, coalescing: &Coalescing) -> io::Result<()> {
        ethtool()?
            .set_coalescing(iface, coalescing)
            .map_err(errno_to_io)
    }

    fn offload(&self, iface: &str, offload: Offload) -> io::Result<bool> {
        let offloads = ethtool()?.offloads(iface).map_err(errno_to_io)?;
        let state = match offload {
            Offload::Lro => offloads.lro,
            Offload::Gro => offloads.gro,
        };
        state.ok_or_else(|| io::Error::from_raw_os_error(libc::EOPNOTSUPP))
    }

    fn set_offload(&self, iface: &str, offload: Offload, on: bool) -> io::Result<()> {
        ethtool()?
            .set_offload(iface, offload == Offload::Lro, on)
            .map_err(errno_to_io)
    }

    fn libvirt_pin(&self, call: &LibvirtPinCall) -> io::Result<()> {
        call.run_virsh()
    }
}
