//! What to make latency-sensitive, as the user names it (`vm:NAME`, `vm-pid:PID`, `pid:PID`,
//! `cgroup:PATH`), and its threads as the [`Host`] shows them: those that get an exclusive CPU
//! each (in slot order), its I/O threads, and the rest of its threads.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use nearnative_host::tasks::{Process, Task};
use nearnative_host::workloads::{VmThread, Workload};
use nearnative_host::{CpuSet, Host};
use serde::{Deserialize, Serialize};

use crate::ledger::Ledger;
use crate::plan_error::PlanError;
use crate::request::WorkloadKey;

/// The workload as named on the command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Target {
    /// A VM by name (QEMU `-name`, Cloud Hypervisor's socket, Firecracker `--id`).
    Vm(String),
    /// A VM by its VMM's process id.
    VmPid(u32),
    /// Any process: every thread, or those `--threads` lists.
    Pid(u32),
    /// Every process in a cgroup (a path in the cpuset hierarchy, else the unified one).
    Cgroup(String),
}

impl FromStr for Target {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let pid = |value: &str| {
            value
                .parse::<u32>()
                .map_err(|_| format!("target {text:?}: {value:?} is not a process id"))
        };
        match text.split_once(':') {
            Some(("vm", name)) if !name.is_empty() => Ok(Target::Vm(name.to_owned())),
            Some(("vm-pid", value)) => pid(value).map(Target::VmPid),
            Some(("pid", value)) => pid(value).map(Target::Pid),
            Some(("cgroup", path)) if path.starts_with('/') => Ok(Target::Cgroup(path.to_owned())),
            _ => Err(format!(
                "target {text:?} is not vm:NAME, vm-pid:PID, pid:PID or cgroup:/PATH"
            )),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Vm(name) => write!(f, "vm:{name}"),
            Target::VmPid(pid) => write!(f, "vm-pid:{pid}"),
            Target::Pid(pid) => write!(f, "pid:{pid}"),
            Target::Cgroup(path) => write!(f, "cgroup:{path}"),
        }
    }
}

/// One thread of the host, with its process.
#[derive(Debug, Clone, Copy)]
pub struct ThreadRef<'h> {
    pub process: &'h Process,
    pub task: &'h Task,
}

impl ThreadRef<'_> {
    pub fn pid(&self) -> u32 {
        self.process.pid
    }

    pub fn tid(&self) -> u32 {
        self.task.tid
    }
}

/// The target's threads, found in the host.
#[derive(Debug, Clone)]
pub struct ResolvedTarget<'h> {
    /// The ledger key: `vm:NAME` for a VM however it was named, `pid:PID`, `cgroup:PATH`.
    pub key: WorkloadKey,
    pub workload: Option<&'h Workload>,
    /// The threads that each get an exclusive CPU; thread `i` takes slot `i`.
    pub exclusive: Vec<ThreadRef<'h>>,
    /// vCPU index (VMs) or thread id of each exclusive thread, for messages and advice.
    pub labels: Vec<u32>,
    /// I/O threads: QEMU iothreads and vhost workers.
    pub io: Vec<ThreadRef<'h>>,
    /// Every other thread of the workload (emulator, workers, unselected vCPUs).
    pub rest: Vec<ThreadRef<'h>>,
    /// The target's processes, in pid order.
    pub pids: Vec<u32>,
}

impl<'h> ResolvedTarget<'h> {
    /// Whether `tid` of `pid` is one of the target's threads.
    pub fn holds(&self, pid: u32, tid: u32) -> bool {
        let matches = |t: &ThreadRef| t.pid() == pid && t.tid() == tid;
        self.exclusive.iter().any(matches)
            || self.io.iter().any(matches)
            || self.rest.iter().any(matches)
    }
}

/// Finds `target`'s threads. `vcpus` picks VM vCPUs by index, `threads` a process's threads.
pub fn resolve<'h>(
    host: &'h Host,
    target: &Target,
    vcpus: Option<&CpuSet>,
    threads: Option<&[u32]>,
) -> Result<ResolvedTarget<'h>, PlanError> {
    let is_vm = matches!(target, Target::Vm(_) | Target::VmPid(_));
    let misplaced = match (vcpus, threads) {
        (Some(_), _) if !is_vm => Some(("--vcpus", "vm: and vm-pid:")),
        (_, Some(_)) if !matches!(target, Target::Pid(_)) => Some(("--threads", "pid:")),
        _ => None,
    };
    if let Some((option, applies_to)) = misplaced {
        return Err(PlanError::OptionNotForTarget {
            option,
            applies_to,
            target: target.to_string(),
        });
    }
    match target {
        Target::Vm(name) => resolve_vm(host, vm_named(host, name)?, vcpus),
        Target::VmPid(pid) => {
            let workload = host.workloads.iter().find(|w| w.pid == *pid);
            let workload = workload.ok_or_else(|| PlanError::UnknownVmPid {
                pid: *pid,
                known: vm_list(host),
            })?;
            resolve_vm(host, workload, vcpus)
        }
        Target::Pid(pid) => resolve_pid(host, *pid, threads),
        Target::Cgroup(path) => resolve_cgroup(host, path),
    }
}

/// The processes of the workloads `ledger` holds other than `except`, found by their keys
/// (`vm:NAME`, `pid:PID`, `cgroup:PATH`): their threads already have CPUs of their own, so a
/// plan never moves or re-pins them.
pub fn ledger_pids(host: &Host, ledger: &Ledger, except: &WorkloadKey) -> BTreeSet<u32> {
    let mut pids = BTreeSet::new();
    let mut vms: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for workload in &host.workloads {
        vms.entry(workload.name.as_str())
            .or_default()
            .push(workload.pid);
    }
    for allocation in ledger.iter().filter(|a| a.workload() != except) {
        let key = allocation.workload().0.as_str();
        match key.split_once(':') {
            Some(("vm", name)) => pids.extend(vms.get(name).into_iter().flatten().copied()),
            Some(("pid", pid)) => pids.extend(pid.parse::<u32>().ok()),
            Some(("cgroup", path)) => pids.extend(
                host.tasks
                    .processes
                    .iter()
                    .filter(|p| {
                        p.cgroup.as_ref().is_some_and(|c| {
                            c.cpuset_v1.as_deref() == Some(path)
                                || c.unified.as_deref() == Some(path)
                        })
                    })
                    .map(|p| p.pid),
            ),
            _ => {}
        }
    }
    pids
}

/// The one VM called `name`. Two VMs may carry one name (QEMU does not check), and picking
/// either would pin the wrong one half the time, so a shared name is refused.
fn vm_named<'h>(host: &'h Host, name: &str) -> Result<&'h Workload, PlanError> {
    let named: Vec<&Workload> = host.workloads.iter().filter(|w| w.name == name).collect();
    match named.as_slice() {
        [] => Err(PlanError::UnknownVm {
            name: name.to_owned(),
            known: vm_list(host),
        }),
        [workload] => Ok(workload),
        several => {
            let pids: Vec<String> = several.iter().map(|w| w.pid.to_string()).collect();
            Err(PlanError::AmbiguousVm {
                name: name.to_owned(),
                pids: pids.join(" and "),
            })
        }
    }
}

/// `web1 (qemu, pid 4000), db (firecracker, pid 4100)`, or `none`.
fn vm_list(host: &Host) -> String {
    let names: Vec<String> = host
        .workloads
        .iter()
        .map(|w| format!("{} ({}, pid {})", w.name, w.kind.label(), w.pid))
        .collect();
    match names.is_empty() {
        true => "none".to_owned(),
        false => names.join(", "),
    }
}

fn resolve_vm<'h>(
    host: &'h Host,
    workload: &'h Workload,
    vcpus: Option<&CpuSet>,
) -> Result<ResolvedTarget<'h>, PlanError> {
    if workload.vcpus.is_empty() {
        return Err(PlanError::NoVcpus {
            name: workload.name.clone(),
        });
    }
    if let Some(missing) = vcpus.and_then(|wanted| {
        wanted
            .iter()
            .find(|&i| !workload.vcpus.iter().any(|v| v.index == i))
    }) {
        return Err(PlanError::UnknownVcpu {
            name: workload.name.clone(),
            index: missing,
            count: workload.vcpus.len(),
        });
    }
    let find = |thread: &VmThread| find_thread(host, workload.pid, thread.tid);
    let mut resolved = ResolvedTarget {
        key: WorkloadKey(format!("vm:{}", workload.name)),
        workload: Some(workload),
        exclusive: Vec::new(),
        labels: Vec::new(),
        io: Vec::new(),
        rest: Vec::new(),
        pids: vec![workload.pid],
    };
    for vcpu in &workload.vcpus {
        let Some(thread) = find(&vcpu.thread) else {
            continue;
        };
        if vcpus.map_or(true, |wanted| wanted.contains(vcpu.index)) {
            resolved.exclusive.push(thread);
            resolved.labels.push(vcpu.index);
        } else {
            resolved.rest.push(thread);
        }
    }
    let io = workload.io_threads.iter().map(|t| &t.thread);
    resolved.io = io.chain(&workload.vhost_threads).filter_map(find).collect();
    let rest = workload.emulator.iter().chain(&workload.other_threads);
    resolved.rest.extend(rest.filter_map(find));
    Ok(resolved)
}

/// A VM's thread: in the VM's process, or a `vhost-PID` kernel thread of its own.
fn find_thread(host: &Host, pid: u32, tid: u32) -> Option<ThreadRef<'_>> {
    [pid, tid].into_iter().find_map(|pid| {
        let process = host.tasks.process(pid)?;
        let task = process.thread(tid)?;
        (!task.has_exited()).then_some(ThreadRef { process, task })
    })
}

fn resolve_pid<'h>(
    host: &'h Host,
    pid: u32,
    threads: Option<&[u32]>,
) -> Result<ResolvedTarget<'h>, PlanError> {
    let process = host
        .tasks
        .process(pid)
        .ok_or_else(|| PlanError::UnknownPid {
            pid,
            processes: host.tasks.processes.len(),
            vms: vm_list(host),
        })?;
    if process.threads.iter().any(|t| t.kind.is_kernel()) {
        return Err(PlanError::KernelThreadTarget {
            pid,
            comm: process.comm.clone(),
        });
    }
    if let Some(missing) = threads.and_then(|tids| {
        tids.iter()
            .copied()
            .find(|&tid| process.thread(tid).is_none())
    }) {
        let known: Vec<String> = process.threads.iter().map(|t| t.tid.to_string()).collect();
        return Err(PlanError::UnknownThread {
            pid,
            tid: missing,
            known: known.join(","),
        });
    }
    let mut resolved = ResolvedTarget {
        key: WorkloadKey(format!("pid:{pid}")),
        workload: None,
        exclusive: Vec::new(),
        labels: Vec::new(),
        io: Vec::new(),
        rest: Vec::new(),
        pids: vec![pid],
    };
    if process.threads.iter().all(Task::has_exited) {
        return Err(PlanError::ProcessExited { pid });
    }
    for task in process.threads.iter().filter(|t| !t.has_exited()) {
        let thread = ThreadRef { process, task };
        if threads.map_or(true, |tids| tids.contains(&task.tid)) {
            resolved.exclusive.push(thread);
            resolved.labels.push(task.tid);
        } else {
            resolved.rest.push(thread);
        }
    }
    Ok(resolved)
}

fn resolve_cgroup<'h>(host: &'h Host, path: &str) -> Result<ResolvedTarget<'h>, PlanError> {
    let v1 = host.isolation.cgroups.cpuset_version == Some(1);
    let mut resolved = ResolvedTarget {
        key: WorkloadKey(format!("cgroup:{path}")),
        workload: None,
        exclusive: Vec::new(),
        labels: Vec::new(),
        io: Vec::new(),
        rest: Vec::new(),
        pids: Vec::new(),
    };
    for process in &host.tasks.processes {
        let Some(cgroup) = &process.cgroup else {
            continue;
        };
        let own = match v1 {
            true => cgroup.cpuset_v1.as_deref(),
            false => cgroup.unified.as_deref(),
        };
        if own != Some(path) {
            continue;
        }
        let live = process.threads.iter().filter(|t| !t.has_exited());
        let user = live.filter(|t| !t.kind.is_kernel());
        for task in user {
            resolved.exclusive.push(ThreadRef { process, task });
            resolved.labels.push(task.tid);
        }
        resolved.pids.push(process.pid);
    }
    match resolved.exclusive.is_empty() {
        true => Err(PlanError::EmptyCgroup {
            path: path.to_owned(),
        }),
        false => Ok(resolved),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_print_back() {
        let cases = [
            ("vm by name", "vm:web1", Some(Target::Vm("web1".into()))),
            ("vm by pid", "vm-pid:42", Some(Target::VmPid(42))),
            ("process", "pid:7", Some(Target::Pid(7))),
            ("cgroup", "cgroup:/a/b", Some(Target::Cgroup("/a/b".into()))),
            ("empty vm name", "vm:", None),
            ("pid not a number", "pid:x", None),
            ("relative cgroup", "cgroup:a", None),
            ("no kind", "web1", None),
        ];
        for (what, text, expected) in cases {
            let parsed = text.parse::<Target>().ok();
            assert_eq!(parsed, expected, "{what}");
            if let Some(target) = parsed {
                assert_eq!(target.to_string(), text, "{what}");
            }
        }
    }
}
