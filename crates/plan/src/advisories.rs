//! Advisories: what a plan cannot change live, as exact text to paste — the kernel command
//! line, VMM launch flags, libvirt XML, the guest's side, pass-through — and the warnings that
//! go with the live changes (irqbalance, RT throttling, affinity-only fencing).

use std::fmt;

use nearnative_host::knobs::RtRuntime;
use nearnative_host::workloads::{VmmKind, Workload};
use nearnative_host::{CpuSet, Mechanism};

use crate::changes::Context;
use crate::plan::Advisory;
use crate::request::IoPlacement;
use crate::scope::Fencing;
use serde::{Deserialize, Serialize};

/// Where an advisory's text goes. The JSON spells it in snake case; a plan recorded before
/// topics were typed spelt it as the phrase `Display` gives, which still loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    #[serde(alias = "kernel command line")]
    KernelCommandLine,
    /// Affinity-only fencing and what it does not cover.
    #[serde(alias = "fencing")]
    Fencing,
    #[serde(alias = "/etc/default/irqbalance")]
    Irqbalance,
    #[serde(alias = "sysctl")]
    Sysctl,
    #[serde(alias = "QEMU command line")]
    QemuCommandLine,
    #[serde(alias = "Cloud Hypervisor command line")]
    CloudHypervisorCommandLine,
    #[serde(alias = "libvirt domain XML")]
    LibvirtDomainXml,
    #[serde(alias = "inside the guest")]
    Guest,
    #[serde(alias = "pass-through")]
    PassThrough,
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Topic::KernelCommandLine => "kernel command line",
            Topic::Fencing => "fencing",
            Topic::Irqbalance => "/etc/default/irqbalance",
            Topic::Sysctl => "sysctl",
            Topic::QemuCommandLine => "QEMU command line",
            Topic::CloudHypervisorCommandLine => "Cloud Hypervisor command line",
            Topic::LibvirtDomainXml => "libvirt domain XML",
            Topic::Guest => "inside the guest",
            Topic::PassThrough => "pass-through",
        })
    }
}

fn advisory(mechanism: Mechanism, topic: Topic, text: String) -> Advisory {
    Advisory {
        mechanism,
        topic,
        text,
    }
}

/// Every advisory for the plan; `others` are the CPUs other workloads hold.
pub fn all(context: &Context, others: &CpuSet) -> Vec<Advisory> {
    let mut advisories = vec![cmdline(context, others), vmstat(context)];
    if let Fencing::AffinityOnly { why } = &context.scope.fencing {
        advisories.push(advisory(
            Mechanism::Exclusivity,
            Topic::Fencing,
            format!(
                "Thread affinity alone keeps other tasks off CPUs {} ({why}): threads created \
                 later by processes outside the plan are not fenced.",
                context.exclusive
            ),
        ));
    }
    advisories.extend(irqbalance(context, others));
    advisories.extend(rt_throttling(context));
    if let Some(workload) = context.target.workload {
        advisories.extend(vmm(context, workload));
        advisories.push(guest());
    }
    advisories.extend(sriov(context));
    advisories
}

/// The boot-time isolation of every exclusive CPU on the host, this workload's and others'.
fn cmdline(context: &Context, others: &CpuSet) -> Advisory {
    let isolated = context.exclusive.union(others);
    let housekeeping = context.host.topology.online.difference(&isolated);
    let x = isolated.to_list();
    advisory(
        Mechanism::Exclusivity,
        Topic::KernelCommandLine,
        format!(
            "isolcpus=domain,managed_irq,{x} nohz_full={x} rcu_nocbs={x} irqaffinity={}",
            housekeeping.to_list()
        ),
    )
}

/// The VM counters' per-CPU fold, which no live knob keeps off a CPU: kernel 6.1 has no
/// per-CPU switch for it, and `vm.stat_interval` is host-wide, so raising it slows statistics
/// (and, on NUMA hosts, the per-CPU page list drain it drives) on every CPU. Left as advice.
fn vmstat(context: &Context) -> Advisory {
    advisory(
        Mechanism::Exclusivity,
        Topic::Sysctl,
        format!(
            "vmstat_update, the per-CPU work that folds VM counters, still runs on CPUs {} \
             once per vm.stat_interval (1 s by default) while their counters change: no live \
             per-CPU switch exists. nohz_full (the kernel command line above) stops it with the \
             tick; `sysctl vm.stat_interval=N` slows it, but on every CPU, with statistics N \
             seconds stale.",
            context.exclusive
        ),
    )
}

fn irqbalance(context: &Context, others: &CpuSet) -> Option<Advisory> {
    let balance = &context.host.irqs.irqbalance;
    if balance.pids.is_empty() {
        return None;
    }
    let banned = balance
        .banned_cpus
        .clone()
        .unwrap_or_default()
        .union(&context.exclusive)
        .union(others);
    Some(advisory(
        Mechanism::Exclusivity,
        Topic::Irqbalance,
        format!(
            "IRQBALANCE_BANNED_CPULIST={} (irqbalance before 1.8: IRQBALANCE_BANNED_CPUS={}); \
             then restart irqbalance, or it moves IRQs back onto the exclusive CPUs",
            banned.to_list(),
            banned.to_mask(mask_words(&banned))
        ),
    ))
}

/// 32-bit words needed for the highest CPU of `set`.
fn mask_words(set: &CpuSet) -> usize {
    set.iter().last().map_or(1, |cpu| cpu as usize / 32 + 1)
}

fn rt_throttling(context: &Context) -> Option<Advisory> {
    let priority = context.request.rt?;
    let runtime = match context.host.knobs.sched_rt_runtime {
        Some(RtRuntime::Unlimited) => "-1 (unlimited)".to_owned(),
        Some(RtRuntime::Microseconds(us)) => format!("{us} µs per period"),
        None => "unknown".to_owned(),
    };
    Some(advisory(
        Mechanism::Exclusivity,
        Topic::Sysctl,
        format!(
            "SCHED_FIFO {priority} threads are throttled by RT bandwidth control \
             (kernel.sched_rt_runtime_us is {runtime}): a thread that spins past it is stopped \
             for the rest of the period. On exclusive CPUs, consider \
             `sysctl kernel.sched_rt_runtime_us=-1`, knowing a runaway RT thread then owns its CPU."
        ),
    ))
}

fn vmm(context: &Context, workload: &Workload) -> Vec<Advisory> {
    match workload.kind {
        VmmKind::Qemu => vec![
            advisory(
                Mechanism::Bypass,
                Topic::QemuCommandLine,
                "-overcommit cpu-pm=on,mem-lock=on  (and for each tap netdev: \
                 -netdev tap,...,vhost=on,poll-us=50)"
                    .to_owned(),
            ),
            libvirt(context, workload),
        ],
        VmmKind::CloudHypervisor => vec![advisory(
            Mechanism::Exclusivity,
            Topic::CloudHypervisorCommandLine,
            format!(
                "--cpus boot={},affinity=[{}]",
                workload.vcpus.len(),
                pins(context, |index, cpus| {
                    let ids: Vec<String> = cpus.iter().map(|cpu| cpu.to_string()).collect();
                    format!("{index}@[{}]", ids.join(","))
                })
                .join(",")
            ),
        )],
        VmmKind::Firecracker => Vec::new(),
    }
}

/// `f(vCPU index, its CPUs)` for each exclusive vCPU, in slot order: its own CPU, or the
/// whole pool.
fn pins(context: &Context, f: impl Fn(u32, &CpuSet) -> String) -> Vec<String> {
    let labels = context.target.labels.iter();
    match context.allocation.pool_cpus() {
        Some(pool) => labels.map(|&index| f(index, &pool)).collect(),
        None => labels
            .zip(&context.allocation.slots)
            .map(|(&index, slot)| f(index, &CpuSet::from_ids([slot.cpu])))
            .collect(),
    }
}

fn libvirt(context: &Context, workload: &Workload) -> Advisory {
    let housekeeping = context.housekeeping.to_list();
    let io_cpus = match context.request.io {
        IoPlacement::Dedicated => context.allocation.io_cpus.to_list(),
        IoPlacement::Housekeeping => housekeeping.clone(),
    };
    let mut lines = vec!["<cputune>".to_owned()];
    lines.extend(pins(context, |index, cpu| {
        format!("  <vcpupin vcpu='{index}' cpuset='{cpu}'/>")
    }));
    lines.push(format!("  <emulatorpin cpuset='{housekeeping}'/>"));
    // libvirt names its iothreads `iothreadN` and pins them by N; the monitor's thread
    // (`mon_iothread`) is not one of them and follows the emulator.
    let iothread_ids = workload
        .io_threads
        .iter()
        .filter_map(|t| t.id.strip_prefix("iothread")?.parse::<u32>().ok());
    for id in iothread_ids {
        lines.push(format!(
            "  <iothreadpin iothread='{id}' cpuset='{io_cpus}'/>"
        ));
    }
    if let Some(priority) = context.request.rt {
        let vcpus: Vec<String> = context.target.labels.iter().map(u32::to_string).collect();
        lines.push(format!(
            "  <vcpusched vcpus='{}' scheduler='fifo' priority='{priority}'/>",
            vcpus.join(",")
        ));
    }
    lines.push("</cputune>".to_owned());
    lines.push("<features><kvm><hint-dedicated state='on'/></kvm></features>".to_owned());
    lines.push("<memoryBacking><locked/></memoryBacking>".to_owned());
    advisory(
        Mechanism::Exclusivity,
        Topic::LibvirtDomainXml,
        lines.join("\n"),
    )
}

fn guest() -> Advisory {
    advisory(
        Mechanism::Bypass,
        Topic::Guest,
        "modprobe cpuidle-haltpoll (or boot with cpuidle_haltpoll.force=1); \
         ethtool -C eth0 rx-usecs 0 adaptive-rx off"
            .to_owned(),
    )
}

fn sriov(context: &Context) -> Option<Advisory> {
    let nic = context.nic?;
    let sriov = nic.sriov.as_ref().filter(|s| s.total_vfs > 0)?;
    Some(advisory(
        Mechanism::Bypass,
        Topic::PassThrough,
        format!(
            "{} offers SR-IOV ({} of {} VFs enabled): a VF passed to the workload with VFIO \
             skips the host network stack entirely (at the cost of live migration): \
             echo N > /sys/class/net/{}/device/sriov_numvfs",
            nic.name, sriov.enabled_vfs, sriov.total_vfs, nic.name
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY_TOPIC: [Topic; 9] = [
        Topic::KernelCommandLine,
        Topic::Fencing,
        Topic::Irqbalance,
        Topic::Sysctl,
        Topic::QemuCommandLine,
        Topic::CloudHypervisorCommandLine,
        Topic::LibvirtDomainXml,
        Topic::Guest,
        Topic::PassThrough,
    ];

    #[test]
    fn topics_round_trip_and_old_spellings_still_load() {
        for topic in EVERY_TOPIC {
            let json = serde_json::to_string(&topic).unwrap();
            assert_eq!(serde_json::from_str::<Topic>(&json).unwrap(), topic);
            let old = serde_json::to_string(&topic.to_string()).unwrap();
            assert_eq!(serde_json::from_str::<Topic>(&old).unwrap(), topic, "{old}");
        }
        assert_eq!(
            serde_json::to_string(&Topic::LibvirtDomainXml).unwrap(),
            "\"libvirt_domain_xml\""
        );
    }
}
