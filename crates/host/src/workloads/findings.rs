//! Latency risks in how VMs' threads are placed: vCPUs free to wander, vCPUs sharing a CPU,
//! vCPUs under the fair scheduler, and helper threads (emulator, I/O, vhost) allowed onto the
//! CPUs of pinned vCPUs.

use std::collections::BTreeMap;

use super::{VmThread, Workload};
use crate::tasks::SchedPolicy;
use crate::{CpuSet, Finding, Mechanism, Severity};

/// Threads or vCPUs named in one finding before "and N more".
const MAX_LISTED: usize = 4;

/// Every finding about `workloads`, VM by VM, then CPUs shared between vCPUs.
pub fn findings(workloads: &[Workload]) -> Vec<Finding> {
    let pinned = pinned_vcpus(workloads);
    let pinned_cpus: CpuSet = pinned.keys().copied().collect();
    let mut found = Vec::new();
    for workload in workloads {
        found.extend(wide_vcpus(workload));
        found.extend(fair_class_vcpus(workload));
        found.extend(helpers_on_vcpu_cpus(workload, &pinned));
        found.extend(unpinned_vhost(workload, &pinned_cpus));
    }
    found.extend(shared_cpus(&pinned));
    found
}

/// vCPUs pinned to exactly one CPU, by that CPU: `(VM name, vCPU index)`.
fn pinned_vcpus(workloads: &[Workload]) -> BTreeMap<u32, Vec<(&str, u32)>> {
    let mut pinned: BTreeMap<u32, Vec<(&str, u32)>> = BTreeMap::new();
    for workload in workloads {
        for vcpu in &workload.vcpus {
            if let (Some(cpu), 1) = (vcpu.thread.affinity.first(), vcpu.thread.affinity.len()) {
                pinned
                    .entry(cpu)
                    .or_default()
                    .push((&workload.name, vcpu.index));
            }
        }
    }
    pinned
}

fn wide_vcpus(workload: &Workload) -> impl Iterator<Item = Finding> + '_ {
    workload
        .vcpus
        .iter()
        .filter(|vcpu| vcpu.thread.affinity.len() > 1)
        .map(|vcpu| Finding {
            severity: Severity::Warning,
            object: format!("vCPU {} of VM {}", vcpu.index, workload.name),
            evidence: format!(
                "may run on {} CPUs ({})",
                vcpu.thread.affinity.len(),
                vcpu.thread.affinity
            ),
            mechanism: Mechanism::Exclusivity,
        })
}

/// Info only: a vCPU alone on its core needs no real-time class, but without one any
/// runnable kernel thread on that CPU gets a fair share of it.
fn fair_class_vcpus(workload: &Workload) -> Option<Finding> {
    let fair: Vec<u32> = workload
        .vcpus
        .iter()
        .filter(|vcpu| !vcpu.thread.policy.is_realtime())
        .map(|vcpu| vcpu.index)
        .collect();
    let policies: Vec<SchedPolicy> = workload
        .vcpus
        .iter()
        .map(|vcpu| vcpu.thread.policy)
        .filter(|policy| !policy.is_realtime())
        .fold(Vec::new(), |mut seen, policy| {
            if !seen.contains(&policy) {
                seen.push(policy);
            }
            seen
        });
    (!fair.is_empty()).then(|| Finding {
        severity: Severity::Info,
        object: format!("VM {}", workload.name),
        evidence: format!(
            "{} under {}, not SCHED_FIFO",
            match fair.len() {
                1 => format!("vCPU {} runs", fair[0]),
                _ => format!("vCPUs {} run", ranges(&fair)),
            },
            policies
                .iter()
                .map(|p| policy_name(*p))
                .collect::<Vec<_>>()
                .join("/")
        ),
        mechanism: Mechanism::Exclusivity,
    })
}

/// The VM's non-vCPU threads that may run where some VM's vCPU is pinned, one finding per
/// role.
fn helpers_on_vcpu_cpus<'a>(
    workload: &'a Workload,
    pinned: &'a BTreeMap<u32, Vec<(&'a str, u32)>>,
) -> impl Iterator<Item = Finding> + 'a {
    let pinned_cpus: CpuSet = pinned.keys().copied().collect();
    let roles: [(&str, Vec<&VmThread>); 4] = [
        ("emulator thread", workload.emulator.iter().collect()),
        (
            "I/O threads",
            workload.io_threads.iter().map(|t| &t.thread).collect(),
        ),
        ("vhost threads", workload.vhost_threads.iter().collect()),
        ("helper threads", workload.other_threads.iter().collect()),
    ];
    roles.into_iter().filter_map(move |(role, threads)| {
        let intruding: Vec<&VmThread> = threads
            .into_iter()
            .filter(|t| !t.affinity.is_disjoint(&pinned_cpus))
            .collect();
        let overlap = intruding
            .iter()
            .fold(CpuSet::new(), |all, t| all.union(&t.affinity))
            .intersection(&pinned_cpus);
        let victims: Vec<String> = overlap
            .iter()
            .flat_map(|cpu| pinned.get(&cpu).into_iter().flatten())
            .map(|(vm, index)| format!("vCPU {index} of VM {vm}"))
            .collect();
        (!intruding.is_empty()).then(|| Finding {
            severity: Severity::Warning,
            object: format!("{role} of VM {}", workload.name),
            evidence: format!(
                "{} may run on {}, where {} pinned",
                thread_list(&intruding),
                cpus_phrase(&overlap),
                listed(&victims, "is", "are"),
            ),
            mechanism: Mechanism::Exclusivity,
        })
    })
}

/// vhost threads on several CPUs that no pinned vCPU uses (those are already a warning).
fn unpinned_vhost(workload: &Workload, pinned_cpus: &CpuSet) -> Option<Finding> {
    let unpinned: Vec<&VmThread> = workload
        .vhost_threads
        .iter()
        .filter(|t| t.affinity.len() > 1 && t.affinity.is_disjoint(pinned_cpus))
        .collect();
    (!unpinned.is_empty()).then(|| Finding {
        severity: Severity::Info,
        object: format!("vhost threads of VM {}", workload.name),
        evidence: format!(
            "{} not pinned: may run on {}",
            thread_list(&unpinned),
            cpus_phrase(
                &unpinned
                    .iter()
                    .fold(CpuSet::new(), |all, t| all.union(&t.affinity))
            )
        ),
        mechanism: Mechanism::Exclusivity,
    })
}

fn shared_cpus<'a>(
    pinned: &'a BTreeMap<u32, Vec<(&'a str, u32)>>,
) -> impl Iterator<Item = Finding> + 'a {
    pinned
        .iter()
        .filter(|(_, vcpus)| vcpus.len() > 1)
        .map(|(cpu, vcpus)| Finding {
            severity: Severity::Critical,
            object: format!("CPU {cpu}"),
            evidence: format!(
                "{} are all pinned to it",
                vcpus
                    .iter()
                    .map(|(vm, index)| format!("vCPU {index} of VM {vm}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            mechanism: Mechanism::Exclusivity,
        })
}

fn thread_list(threads: &[&VmThread]) -> String {
    let names: Vec<String> = threads
        .iter()
        .map(|t| format!("{} ({})", t.comm, t.tid))
        .collect();
    listed(&names, "", "")
}

/// Items joined by commas, at most [`MAX_LISTED`] of them, then the verb for their number.
fn listed(items: &[String], verb_one: &str, verb_many: &str) -> String {
    let mut text = items[..items.len().min(MAX_LISTED)].join(", ");
    if items.len() > MAX_LISTED {
        text.push_str(&format!(" and {} more", items.len() - MAX_LISTED));
    }
    let verb = if items.len() == 1 {
        verb_one
    } else {
        verb_many
    };
    match verb {
        "" => text,
        verb => format!("{text} {verb}"),
    }
}

fn cpus_phrase(cpus: &CpuSet) -> String {
    match cpus.len() {
        1 => format!("CPU {cpus}"),
        _ => format!("CPUs {cpus}"),
    }
}

fn policy_name(policy: SchedPolicy) -> String {
    match policy {
        SchedPolicy::Other => "SCHED_OTHER".into(),
        SchedPolicy::Batch => "SCHED_BATCH".into(),
        SchedPolicy::Idle => "SCHED_IDLE".into(),
        SchedPolicy::Fifo => "SCHED_FIFO".into(),
        SchedPolicy::Rr => "SCHED_RR".into(),
        SchedPolicy::Deadline => "SCHED_DEADLINE".into(),
        SchedPolicy::Unknown(number) => format!("policy {number}"),
    }
}

/// `0-3,6` for sorted indexes; vCPU indexes can exceed what a CpuSet holds, so they are
/// folded here.
fn ranges(sorted: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while let Some(&first) = sorted.get(i) {
        let mut last = first;
        while let Some(&next) = sorted
            .get(i + 1)
            .filter(|&&n| Some(n) == last.checked_add(1))
        {
            last = next;
            i += 1;
        }
        parts.push(match last - first {
            0 => first.to_string(),
            _ => format!("{first}-{last}"),
        });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::{Vcpu, VcpuSource, VmmKind};

    fn thread(tid: u32, comm: &str, cpus: &[u32], policy: SchedPolicy) -> VmThread {
        VmThread {
            tid,
            comm: comm.into(),
            affinity: CpuSet::from_ids(cpus.iter().copied()),
            policy,
            rt_priority: 0,
            last_cpu: 0,
        }
    }

    fn vm(name: &str, pid: u32, vcpu_cpus: &[&[u32]]) -> Workload {
        Workload {
            kind: VmmKind::Qemu,
            name: name.into(),
            pid,
            vcpus: vcpu_cpus
                .iter()
                .enumerate()
                .map(|(i, cpus)| Vcpu {
                    index: i as u32,
                    thread: thread(pid + 1 + i as u32, "CPU n/KVM", cpus, SchedPolicy::Fifo),
                })
                .collect(),
            vcpu_source: Some(VcpuSource::ThreadNames),
            emulator: Some(thread(pid, "qemu-system-x86", &[0], SchedPolicy::Other)),
            io_threads: Vec::new(),
            vhost_threads: Vec::new(),
            other_threads: Vec::new(),
            qmp_socket: None,
        }
    }

    fn evidence_of<'a>(found: &'a [Finding], object: &str) -> Vec<&'a str> {
        found
            .iter()
            .filter(|f| f.object == object)
            .map(|f| f.evidence.as_str())
            .collect()
    }

    #[test]
    fn a_well_placed_vm_has_no_findings() {
        assert_eq!(findings(&[vm("ok", 100, &[&[2], &[3]])]), []);
    }

    #[test]
    fn wide_and_shared_vcpus_are_found() {
        let mut web = vm("web1", 100, &[&[0, 1, 2, 3, 4, 5, 6, 7], &[2]]);
        web.vcpus[1].thread.policy = SchedPolicy::Other;
        let db = vm("db", 200, &[&[2]]);
        let found = findings(&[web, db]);
        assert_eq!(
            evidence_of(&found, "vCPU 0 of VM web1"),
            ["may run on 8 CPUs (0-7)"]
        );
        assert_eq!(
            evidence_of(&found, "CPU 2"),
            ["vCPU 1 of VM web1, vCPU 0 of VM db are all pinned to it"]
        );
        let shared = found.iter().find(|f| f.object == "CPU 2").unwrap();
        assert_eq!(shared.severity, Severity::Critical);
        let fair = found.iter().find(|f| f.object == "VM web1").unwrap();
        assert_eq!(
            (fair.severity, fair.evidence.as_str()),
            (
                Severity::Info,
                "vCPU 1 runs under SCHED_OTHER, not SCHED_FIFO"
            )
        );
    }

    #[test]
    fn helpers_near_pinned_vcpus_and_unpinned_vhost_are_found() {
        let mut web = vm("web1", 100, &[&[2], &[3]]);
        web.vhost_threads = vec![thread(150, "vhost-100", &[0, 1], SchedPolicy::Other)];
        web.other_threads = vec![thread(104, "worker", &[0, 1, 2, 3], SchedPolicy::Other)];
        let found = findings(&[web]);
        assert_eq!(
            evidence_of(&found, "helper threads of VM web1"),
            ["worker (104) may run on CPUs 2-3, where vCPU 0 of VM web1, vCPU 1 of VM web1 are pinned"]
        );
        assert_eq!(
            evidence_of(&found, "vhost threads of VM web1"),
            ["vhost-100 (150) not pinned: may run on CPUs 0-1"]
        );
        assert!(evidence_of(&found, "emulator thread of VM web1").is_empty());
    }

    #[test]
    fn long_lists_are_cut() {
        let items: Vec<String> = (0..6).map(|i| i.to_string()).collect();
        assert_eq!(listed(&items, "is", "are"), "0, 1, 2, 3 and 2 more are");
        assert_eq!(listed(&items[..1], "is", "are"), "0 is");
        assert_eq!(cpus_phrase(&CpuSet::from_ids([1])), "CPU 1");
    }

    #[test]
    fn index_ranges_fold() {
        assert_eq!(ranges(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
        assert_eq!(ranges(&[]), "");
        assert_eq!(ranges(&[u32::MAX]), "4294967295");
    }
}
