//! The summary's workloads and tasks sections: each VM with where its vCPU threads may run,
//! then one line counting the host's threads by kind.

use nearnative_host::tasks::{SchedPolicy, TaskKind, Tasks};
use nearnative_host::workloads::{VcpuSource, VmThread, Workload};

use super::{name, plural};

/// vCPU lines shown per VM before "... and N more".
const MAX_VCPU_LINES: usize = 16;

pub fn workloads(workloads: &[Workload]) -> Vec<String> {
    if workloads.is_empty() {
        return vec!["Workloads: no VMs running".to_owned()];
    }
    let mut lines = vec![format!(
        "Workloads: {}",
        plural(workloads.len(), "VM", "VMs")
    )];
    for vm in workloads {
        lines.extend(vm_lines(vm));
    }
    lines
}

fn vm_lines(vm: &Workload) -> Vec<String> {
    let source = match vm.vcpu_source {
        Some(VcpuSource::ThreadNames) => "found by thread name".to_owned(),
        Some(VcpuSource::Qmp) => match &vm.qmp_socket {
            Some(socket) => format!("found over QMP {}", socket.display()),
            None => "found over QMP".to_owned(),
        },
        None => "threads unknown".to_owned(),
    };
    let mut lines = vec![format!(
        "  {} {} (pid {}): {}, {source}",
        vm.kind.label(),
        vm.name,
        vm.pid,
        plural(vm.vcpus.len(), "vCPU", "vCPUs"),
    )];
    lines.extend(
        vm.vcpus
            .iter()
            .take(MAX_VCPU_LINES)
            .map(|vcpu| format!("    vCPU {}: {}", vcpu.index, placement(&vcpu.thread))),
    );
    if vm.vcpus.len() > MAX_VCPU_LINES {
        lines.push(format!(
            "    ... and {} more (--json lists all)",
            vm.vcpus.len() - MAX_VCPU_LINES
        ));
    }
    if let Some(emulator) = &vm.emulator {
        lines.push(format!("    emulator: {}", placement(emulator)));
    }
    lines.extend(
        vm.io_threads
            .iter()
            .map(|io| format!("    I/O {}: {}", io.id, placement(&io.thread))),
    );
    lines.extend(
        vm.vhost_threads
            .iter()
            .map(|t| format!("    {}: {}", t.comm, placement(t))),
    );
    if !vm.other_threads.is_empty() {
        lines.push(format!(
            "    and {}",
            plural(vm.other_threads.len(), "other thread", "other threads")
        ));
    }
    lines
}

/// "thread 1237 on CPU 1, fifo 10" or "thread 1236 on CPUs 0-1, other".
fn placement(thread: &VmThread) -> String {
    let cpus = if thread.affinity.len() == 1 {
        "CPU"
    } else {
        "CPUs"
    };
    let policy = match thread.policy {
        SchedPolicy::Fifo | SchedPolicy::Rr => {
            format!("{} {}", name(&thread.policy), thread.rt_priority)
        }
        SchedPolicy::Unknown(number) => format!("policy {number}"),
        policy => name(&policy),
    };
    format!(
        "thread {} on {cpus} {}, {policy}",
        thread.tid, thread.affinity
    )
}

pub fn tasks(tasks: &Tasks) -> Vec<String> {
    let count = |kind: TaskKind| tasks.threads().filter(|(_, t)| t.kind == kind).count();
    let realtime = tasks
        .threads()
        .filter(|(_, t)| t.policy.is_realtime())
        .count();
    vec![format!(
        "Tasks: {} in {} ({} user, {} per-CPU kernel, {} unbound kernel), {realtime} real-time",
        plural(tasks.threads().count(), "thread", "threads"),
        plural(tasks.processes.len(), "process", "processes"),
        count(TaskKind::User),
        count(TaskKind::KernelPerCpu),
        count(TaskKind::KernelUnbound),
    )]
}
