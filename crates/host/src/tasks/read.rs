//! Reading the task table from `/proc` under a root.
//!
//! Threads come and go while we read. A file that is missing because its thread or process
//! has exited (the directory is gone, or the kernel answers ESRCH) means the thread is skipped;
//! any other failure is kept as an [`Unknown`] naming the file.

use nix::errno::Errno;

use super::affinity;
use super::parallel::map_in_order;
use super::{
    parse_cgroup, parse_stat, parse_status, Process, ProcessCgroup, Task, TaskKind, Tasks,
};
use crate::libvirt::libvirt_child;
use crate::{ReadError, Root, Unknown};

/// Reads every process and thread under `root`'s `/proc`, adding what cannot be read to
/// `unknowns`. Never fails as a whole: a tree with no `/proc` (a sysfs-only snapshot) gives no
/// processes and one unknown.
pub fn read_tasks(root: &Root, unknowns: &mut Vec<Unknown>) -> Tasks {
    let mut tasks = Tasks::default();
    let pids = match numeric_entries(root, "/proc") {
        Ok(pids) => pids,
        Err(err) => {
            unknowns.push(Unknown::from_error("tasks", &err));
            return tasks;
        }
    };
    let listings = map_in_order(&pids, |&pid| list_process(root, pid));
    let thread_ids: Vec<(u32, u32)> = listings
        .iter()
        .filter_map(|l| Some((l.pid, l.tids.as_ref().ok()?)))
        .flat_map(|(pid, tids)| tids.iter().map(move |&tid| (pid, tid)))
        .collect();
    let span = affinity::exact_getaffinity_span(root);
    let mut threads = map_in_order(&thread_ids, |&(pid, tid)| {
        read_thread(root, &thread_dir(pid, tid), span)
    })
    .into_iter();
    for listing in listings {
        let process = assemble(root, listing, &mut threads, unknowns);
        tasks.processes.extend(process);
    }
    tasks
}

/// What is read once per process: its thread ids and its cgroup.
struct ProcessListing {
    pid: u32,
    tids: Result<Vec<u32>, ReadError>,
    cgroup: Result<ProcessCgroup, ReadError>,
}

fn list_process(root: &Root, pid: u32) -> ProcessListing {
    ProcessListing {
        pid,
        tids: numeric_entries(root, format!("/proc/{pid}/task")),
        cgroup: root.read_parsed(format!("/proc/{pid}/cgroup"), parse_cgroup),
    }
}

/// Builds one process from its listing and its threads' results, which `threads` yields in
/// the listing's order. Vanished threads are dropped; other failures become unknowns.
fn assemble(
    root: &Root,
    listing: ProcessListing,
    threads: &mut impl Iterator<Item = Result<Task, ReadError>>,
    unknowns: &mut Vec<Unknown>,
) -> Option<Process> {
    let pid = listing.pid;
    let process_dir = format!("/proc/{pid}");
    let mut keep = |object: String, err: ReadError, dir: &str| {
        if !has_vanished(root, &err, dir) {
            unknowns.push(Unknown::from_error(object, &err));
        }
    };
    let cgroup = listing
        .cgroup
        .map_err(|err| keep(format!("cgroup of process {pid}"), err, &process_dir))
        .ok();
    let tids = match listing.tids {
        Ok(tids) => tids,
        Err(err) => {
            keep(format!("threads of process {pid}"), err, &process_dir);
            return None;
        }
    };
    let mut read = Vec::with_capacity(tids.len());
    for (tid, result) in tids.into_iter().zip(threads) {
        match result {
            Ok(task) => read.push(task),
            Err(err) => keep(
                format!("thread {tid} of process {pid}"),
                err,
                &thread_dir(pid, tid),
            ),
        }
    }
    let comm = read
        .iter()
        .find(|t| t.tid == pid)
        .or(read.first())?
        .comm
        .clone();
    if cgroup.as_ref().is_some_and(in_libvirt_domain) {
        for task in &mut read {
            let dir = thread_dir(pid, task.tid);
            let own = root.read_parsed(format!("{dir}/cgroup"), parse_cgroup);
            task.cgroup = own
                .map_err(|err| {
                    keep(
                        format!("cgroup of thread {} of process {pid}", task.tid),
                        err,
                        &dir,
                    )
                })
                .ok();
        }
    }
    Some(Process {
        pid,
        comm,
        cgroup,
        threads: read,
    })
}

/// A process in a libvirt domain's cgroups: libvirt spreads its threads over the domain's
/// children (vcpuN, emulator, iothreadN), so each thread's cgroup is read.
fn in_libvirt_domain(cgroup: &ProcessCgroup) -> bool {
    [&cgroup.cpuset_v1, &cgroup.unified]
        .into_iter()
        .flatten()
        .any(|path| libvirt_child(path).is_some())
}

fn thread_dir(pid: u32, tid: u32) -> String {
    format!("/proc/{pid}/task/{tid}")
}

/// One thread; its affinity through `sched_getaffinity` when the call reads what `status`
/// shows (`span` is then the CPUs to look at), else from `status`.
fn read_thread(root: &Root, thread_dir: &str, span: Option<u32>) -> Result<Task, ReadError> {
    let stat = root.read_parsed(format!("{thread_dir}/stat"), parse_stat)?;
    let affinity = match span {
        Some(span) => {
            affinity::thread_affinity(stat.tid, span).map_err(|source| ReadError::Io {
                path: format!("{thread_dir}/status").into(),
                source,
            })?
        }
        None => {
            root.read_parsed(format!("{thread_dir}/status"), parse_status)?
                .cpus_allowed
        }
    };
    Ok(Task {
        tid: stat.tid,
        kind: TaskKind::classify(&stat, &affinity),
        affinity_fixed: stat.affinity_is_fixed(),
        comm: stat.comm,
        state: stat.state,
        affinity,
        policy: stat.policy,
        rt_priority: stat.rt_priority,
        nice: stat.nice,
        last_cpu: stat.processor,
        start_time: stat.start_time,
        ppid: stat.ppid,
        cgroup: None,
    })
}

/// True when `err` only says that the task owning `dir` has exited since we listed it.
pub fn has_vanished(root: &Root, err: &ReadError, dir: &str) -> bool {
    match err {
        ReadError::NotFound { .. } => !root.exists(dir),
        ReadError::Io { source, .. } => source.raw_os_error() == Some(Errno::ESRCH as i32),
        _ => false,
    }
}

/// The numeric entries of a directory (pids or tids), ascending.
pub fn numeric_entries(
    root: &Root,
    dir: impl AsRef<std::path::Path>,
) -> Result<Vec<u32>, ReadError> {
    let mut ids: Vec<u32> = root
        .list_dir(dir)?
        .iter()
        .filter_map(|name| name.parse().ok())
        .collect();
    ids.sort_unstable();
    Ok(ids)
}
