//! Finding the VMs in a task table and sorting each VM's threads into vCPUs, I/O threads,
//! vhost threads and the rest, asking QMP where thread names do not tell.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::cmdline::read_args;
use super::qmp::{query_threads, QmpError, QmpThreads};
use super::{qemu, IoThread, Vcpu, VcpuSource, VmThread, VmmKind, Workload};
use crate::tasks::{Process, Task, Tasks};
use crate::{Root, Unknown};

/// How long one QEMU may take to answer all our QMP commands.
pub const QMP_TIMEOUT: Duration = Duration::from_secs(1);

/// A QMP socket the user named cannot be used. [`check_qmp_sockets`] returns it before
/// anything is read, so a mistyped `--qmp` stops inspect with one line; sockets found on a
/// command line never cause it (their failures are unknowns).
#[derive(Debug, thiserror::Error)]
pub enum WorkloadsError {
    #[error("QMP socket {socket}: QMP is only used on the live host, not on the tree at {root}")]
    QmpNotLive { socket: PathBuf, root: PathBuf },
    #[error("QMP socket {socket}")]
    Qmp {
        socket: PathBuf,
        #[source]
        source: QmpError,
    },
}

/// Checks that every given socket answers QMP, on the live host.
pub fn check_qmp_sockets(root: &Root, sockets: &[PathBuf]) -> Result<(), WorkloadsError> {
    sockets
        .iter()
        .try_for_each(|socket| query_given_socket(root, socket).map(drop))
}

/// Finds the VMs among `tasks` (read from the same `root`), in pid order, adding what cannot
/// be determined to `unknowns`. `qmp_sockets` are asked first and matched to VMs by their
/// thread ids; a QEMU whose threads are not named and that no given socket covers is asked
/// over the QMP socket its command line opens.
pub fn read_workloads(
    root: &Root,
    tasks: &Tasks,
    qmp_sockets: &[PathBuf],
    unknowns: &mut Vec<Unknown>,
) -> Vec<Workload> {
    let given: Vec<(PathBuf, QmpThreads)> = qmp_sockets
        .iter()
        .filter_map(|socket| match query_given_socket(root, socket) {
            Ok(threads) => Some((socket.clone(), threads)),
            Err(err) => {
                unknowns.push(given_socket_unknown(socket, with_causes(&err)));
                None
            }
        })
        .collect();
    let vhost = vhost_threads_by_owner(tasks);
    let mut found = Vec::new();
    for process in &tasks.processes {
        let Some((kind, args)) = recognise(root, process, unknowns) else {
            continue;
        };
        let mut workload = sort_threads(kind, process, &args, &vhost);
        match given.iter().find(|(_, threads)| covers(process, threads)) {
            Some((socket, threads)) => {
                apply_qmp(&mut workload, process, socket, threads, unknowns);
            }
            None if workload.vcpus.is_empty() => {
                ask_own_socket(root, &mut workload, process, &args, unknowns);
            }
            None => {}
        }
        found.push(workload);
    }
    for (socket, _) in &given {
        if !found.iter().any(|w| w.qmp_socket.as_ref() == Some(socket)) {
            let reason = "its vCPU threads are not threads of any QEMU process found";
            unknowns.push(given_socket_unknown(socket, reason.to_owned()));
        }
    }
    found
}

fn query_given_socket(root: &Root, socket: &Path) -> Result<QmpThreads, WorkloadsError> {
    if !root.is_live() {
        return Err(WorkloadsError::QmpNotLive {
            socket: socket.to_owned(),
            root: root.dir().to_owned(),
        });
    }
    query_threads(socket, QMP_TIMEOUT).map_err(|source| WorkloadsError::Qmp {
        socket: socket.to_owned(),
        source,
    })
}

/// The error's message followed by each of its causes', as `a: b: c`.
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        text = format!("{text}: {err}");
        cause = err.source();
    }
    text
}

fn given_socket_unknown(socket: &Path, reason: String) -> Unknown {
    Unknown {
        object: "the VM behind a given QMP socket".to_owned(),
        path: socket.to_owned(),
        reason,
    }
}

/// The VMM kind and arguments of a process, if it is a VMM. Kernel threads are never VMMs,
/// nor are exited processes not yet reaped (such as the parent QEMU leaves behind when it
/// daemonizes); a command line that cannot be read only matters when the name says VMM.
fn recognise(
    root: &Root,
    process: &Process,
    unknowns: &mut Vec<Unknown>,
) -> Option<(VmmKind, Vec<String>)> {
    if process.threads.first()?.kind.is_kernel() || process.threads.iter().all(Task::has_exited) {
        return None;
    }
    let args = match read_args(root, process.pid) {
        Ok(args) => args,
        Err(err) => {
            let kind = VmmKind::detect(&process.comm, &[])?;
            let vanished = err.is_not_found() && !root.exists(format!("/proc/{}", process.pid));
            if vanished {
                return None;
            }
            unknowns.push(Unknown::from_error(
                format!("command line of {} process {}", kind.label(), process.pid),
                &err,
            ));
            return Some((kind, Vec::new()));
        }
    };
    Some((VmmKind::detect(&process.comm, &args)?, args))
}

/// `vhost-<pid>` threads, wherever they live, by the pid in their name.
fn vhost_threads_by_owner(tasks: &Tasks) -> HashMap<u32, Vec<VmThread>> {
    let mut owners: HashMap<u32, Vec<VmThread>> = HashMap::new();
    for (_, task) in tasks.threads() {
        if let Some(owner) = vhost_owner(&task.comm) {
            owners.entry(owner).or_default().push(VmThread::from(task));
        }
    }
    owners
}

fn vhost_owner(comm: &str) -> Option<u32> {
    comm.strip_prefix("vhost-")?.parse().ok()
}

/// Sorts the process's threads by name: the main thread, vCPUs, I/O threads, vhost, others.
fn sort_threads(
    kind: VmmKind,
    process: &Process,
    args: &[String],
    vhost: &HashMap<u32, Vec<VmThread>>,
) -> Workload {
    let pid = process.pid;
    let mut workload = Workload {
        kind,
        name: kind
            .vm_name(args)
            .unwrap_or_else(|| format!("{}-{pid}", kind.label())),
        pid,
        vcpus: Vec::new(),
        vcpu_source: None,
        emulator: None,
        io_threads: Vec::new(),
        vhost_threads: vhost.get(&pid).cloned().unwrap_or_default(),
        other_threads: Vec::new(),
        qmp_socket: None,
    };
    for task in &process.threads {
        let thread = VmThread::from(task);
        if task.tid == pid {
            workload.emulator = Some(thread);
        } else if let Some(index) = kind.vcpu_index(&task.comm) {
            workload.vcpus.push(Vcpu { index, thread });
        } else if let Some(id) = qemu::io_thread_id(&task.comm).filter(|_| kind == VmmKind::Qemu) {
            let id = id.to_owned();
            workload.io_threads.push(IoThread { id, thread });
        } else if vhost_owner(&task.comm) != Some(pid) {
            workload.other_threads.push(thread);
        }
    }
    workload.vcpus.sort_by_key(|v| v.index);
    if !workload.vcpus.is_empty() {
        workload.vcpu_source = Some(VcpuSource::ThreadNames);
    }
    workload
}

/// True when QMP's vCPU threads are threads of `process`.
fn covers(process: &Process, threads: &QmpThreads) -> bool {
    threads
        .vcpus
        .iter()
        .any(|&(_, tid)| process.thread(tid).is_some())
}

/// Re-sorts the threads QMP names: its vCPU and iothread ids win over thread names.
fn apply_qmp(
    workload: &mut Workload,
    process: &Process,
    socket: &Path,
    threads: &QmpThreads,
    unknowns: &mut Vec<Unknown>,
) {
    let named: HashSet<u32> = threads
        .vcpus
        .iter()
        .map(|&(_, tid)| tid)
        .chain(threads.io_threads.iter().map(|(_, tid)| *tid))
        .collect();
    workload.other_threads.retain(|t| !named.contains(&t.tid));
    workload
        .io_threads
        .retain(|t| !named.contains(&t.thread.tid));
    let mut thread_of = |what: String, tid: u32| match process.thread(tid) {
        Some(task) => Some(VmThread::from(task)),
        None => {
            unknowns.push(Unknown {
                object: format!("{what} of VM {}", workload.name),
                path: socket.to_owned(),
                reason: format!(
                    "QMP names thread {tid}, which is not in process {}",
                    process.pid
                ),
            });
            None
        }
    };
    let mut vcpus: Vec<Vcpu> = threads
        .vcpus
        .iter()
        .filter_map(|&(index, tid)| {
            let thread = thread_of(format!("vCPU {index}"), tid)?;
            Some(Vcpu { index, thread })
        })
        .collect();
    let io_threads: Vec<IoThread> = threads
        .io_threads
        .iter()
        .filter_map(|(id, tid)| {
            let thread = thread_of(format!("iothread {id}"), *tid)?;
            Some(IoThread {
                id: id.clone(),
                thread,
            })
        })
        .collect();
    vcpus.sort_by_key(|v| v.index);
    workload.vcpus = vcpus;
    workload.io_threads.extend(io_threads);
    workload.io_threads.sort_by_key(|t| t.thread.tid);
    workload.vcpu_source = Some(VcpuSource::Qmp);
    workload.qmp_socket = Some(socket.to_owned());
}

/// For a VM whose vCPU threads have no telling names: asks the QMP socket from its command
/// line (live host only), or says in `unknowns` why the vCPUs stay unknown.
fn ask_own_socket(
    root: &Root,
    workload: &mut Workload,
    process: &Process,
    args: &[String],
    unknowns: &mut Vec<Unknown>,
) {
    let object = format!("vCPU threads of VM {}", workload.name);
    let task_dir = root.path(format!("/proc/{}/task", process.pid));
    let unnamed = |reason: &str| Unknown {
        object: object.clone(),
        path: task_dir.clone(),
        reason: format!("no thread is named like a vCPU, {reason}"),
    };
    if workload.kind != VmmKind::Qemu {
        return unknowns.push(unnamed("and this VMM has no QMP"));
    }
    let Some(socket) = qemu::qmp_socket(args) else {
        return unknowns.push(unnamed(
            "and the command line opens no QMP unix socket: give one with --qmp SOCKET",
        ));
    };
    if !root.is_live() {
        return unknowns.push(unnamed("and QMP is only used on the live host"));
    }
    let reachable = reachable_socket(root, process.pid, &socket);
    match query_threads(&reachable, QMP_TIMEOUT) {
        Ok(threads) => apply_qmp(workload, process, &reachable, &threads, unknowns),
        Err(err) => unknowns.push(Unknown {
            object,
            path: reachable,
            reason: format!("QMP: {}", with_causes(&err)),
        }),
    }
}

/// A relative socket path is relative to QEMU's working directory, which its `cwd` link
/// reaches from here.
fn reachable_socket(root: &Root, pid: u32, socket: &Path) -> PathBuf {
    if socket.is_absolute() {
        socket.to_owned()
    } else {
        root.path(format!("/proc/{pid}/cwd")).join(socket)
    }
}
