//! Summary sections for IRQs, NICs, power and kernel knobs: one function per part, each
//! returning its lines for [`super::render`].

use nearnative_host::irq::{Irq, Irqs};
use nearnative_host::knobs::{Knobs, RtRuntime};
use nearnative_host::nic::{Ethtool, Nic, NicKind, Nics};
use nearnative_host::power::{CpuPower, Power, ResumeLatency};
use nearnative_host::CpuSet;

use super::{list_or_none, name, plural, MAX_LIST};

pub(super) fn irqs(irqs: &Irqs) -> Vec<String> {
    let balance = match (&irqs.irqbalance.pids[..], &irqs.irqbalance.banned_cpus) {
        ([], _) => "irqbalance not running".to_owned(),
        ([pid, ..], banned) => {
            format!(
                "irqbalance running (pid {pid}), banned CPUs {}",
                list_or_none(banned.as_ref())
            )
        }
    };
    let active: Vec<&Irq> = irqs
        .lines
        .iter()
        .filter(|l| !l.actions.is_empty())
        .collect();
    let mut lines = vec![format!(
        "IRQs: {}, default affinity {}, {balance}",
        plural(active.len(), "line", "lines"),
        list_or_none(irqs.default_affinity.as_ref()),
    )];
    let mut busiest = active.clone();
    busiest.sort_by_key(|l| std::cmp::Reverse(l.counts.iter().sum::<u64>()));
    for line in busiest.iter().take(MAX_LIST) {
        lines.push(format!("  {}", irq_line(line)));
    }
    if busiest.len() > MAX_LIST {
        lines.push(format!(
            "  ... and {} more (busiest first)",
            busiest.len() - MAX_LIST
        ));
    }
    lines
}

fn irq_line(line: &Irq) -> String {
    let effective = line
        .effective_affinity
        .as_ref()
        .map_or(String::new(), |e| format!(" -> {e}"));
    let managed = match line.affinity_settable {
        Some(false) => ", managed",
        _ => "",
    };
    let total = line.counts.iter().sum::<u64>() as usize;
    format!(
        "{}: CPUs {}{effective}{managed}, {}",
        line.label(),
        list_or_none(line.affinity.as_ref()),
        plural(total, "interrupt", "interrupts")
    )
}

pub(super) fn nics(nics: &Nics) -> Vec<String> {
    if nics.interfaces.is_empty() {
        return Vec::new();
    }
    let mut lines = vec!["NICs:".to_owned()];
    for nic in &nics.interfaces {
        lines.push(format!("  {}", nic_line(nic)));
        if nic.kind == NicKind::Physical {
            lines.push(format!("    {}", nic_detail(nic)));
        }
    }
    lines
}

fn nic_line(nic: &Nic) -> String {
    let mut parts = vec![nic.name.clone(), name(&nic.kind)];
    parts.extend(nic.driver.clone());
    parts.extend(nic.bus_device.clone());
    if let Some(node) = nic.numa_node {
        parts.push(format!("NUMA node {node}"));
    }
    if !nic.default_route.is_empty() {
        let families: Vec<String> = nic.default_route.iter().map(name).collect();
        parts.push(format!("default route ({})", families.join(", ")));
    }
    if let Some(sriov) = nic.sriov {
        parts.push(format!(
            "SR-IOV {}/{} VFs",
            sriov.enabled_vfs, sriov.total_vfs
        ));
    }
    parts.join(", ")
}

fn nic_detail(nic: &Nic) -> String {
    let coalescing = match &nic.coalescing {
        Some(Ethtool::Read(c)) => format!(
            "rx-usecs {} adaptive-rx {}",
            c.rx_usecs,
            if c.adaptive_rx { "on" } else { "off" }
        ),
        Some(Ethtool::NotAvailable(why)) => format!("coalescing n/a ({})", name(why)),
        None => "coalescing unknown".to_owned(),
    };
    let flag = |v: Option<bool>| match v {
        Some(true) => "on",
        Some(false) => "off",
        None => "-",
    };
    let offloads = match &nic.offloads {
        Some(Ethtool::Read(o)) => format!("LRO {} GRO {}", flag(o.lro), flag(o.gro)),
        Some(Ethtool::NotAvailable(why)) => format!("offloads n/a ({})", name(why)),
        None => "offloads unknown".to_owned(),
    };
    let vectors: Vec<String> = nic
        .irqs
        .iter()
        .filter_map(|i| {
            let q = i.queue?;
            Some(format!("{} {}-{}", i.irq, name(&q.direction), q.index))
        })
        .collect();
    format!(
        "{} rx / {} tx queues, queue IRQs [{}], {coalescing}, {offloads}",
        nic.rx_queues.len(),
        nic.tx_queues.len(),
        vectors.join(", ")
    )
}

pub(super) fn power(power: &Power) -> Vec<String> {
    let unknown = || "unknown".to_owned();
    let mut lines = vec![format!(
        "Power: cpuidle {} (governor {})",
        power.cpuidle_driver.clone().unwrap_or_else(unknown),
        power.cpuidle_governor.clone().unwrap_or_else(unknown),
    )];
    let mut groups: Vec<(String, CpuSet)> = Vec::new();
    for cpu in &power.cpus {
        let text = cpu_power(cpu);
        match groups.iter_mut().find(|(t, _)| *t == text) {
            Some((_, cpus)) => cpus.insert(cpu.cpu),
            None => groups.push((text, CpuSet::from_ids([cpu.cpu]))),
        }
    }
    for (text, cpus) in groups {
        lines.push(format!("  CPUs {cpus}: {text}"));
    }
    lines
}

fn cpu_power(cpu: &CpuPower) -> String {
    let states: Vec<String> = cpu
        .idle_states
        .iter()
        .map(|s| {
            let latency = s.latency_us.map_or("?".to_owned(), |l| l.to_string());
            let off = if s.disabled == Some(true) { " off" } else { "" };
            format!("{} {latency} µs{off}", s.name)
        })
        .collect();
    let qos = match cpu.resume_latency {
        Some(ResumeLatency::NoLimit) => "no limit".to_owned(),
        Some(ResumeLatency::ZeroLatency) => "n/a (zero latency)".to_owned(),
        Some(ResumeLatency::Microseconds(us)) => format!("{us} µs"),
        None => "unknown".to_owned(),
    };
    let governor = cpu.cpufreq_governor.as_ref().map_or("none", |g| g.as_str());
    format!(
        "idle states [{}], PM QoS {qos}, cpufreq {governor}",
        states.join(", ")
    )
}

pub(super) fn knobs(k: &Knobs) -> Vec<String> {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "?".to_owned());
    let flag = |v: Option<bool>| opt(v.map(|b| u8::from(b).to_string()));
    let num = |v: Option<u64>| opt(v.map(|n| n.to_string()));
    let rt = match k.sched_rt_runtime {
        Some(RtRuntime::Unlimited) => "-1".to_owned(),
        Some(RtRuntime::Microseconds(us)) => us.to_string(),
        None => "?".to_owned(),
    };
    vec![
        "Kernel knobs:".to_owned(),
        format!(
            "  THP {}, defrag {}; KSM {}; NUMA balancing {}",
            opt(k.thp_enabled.as_ref().map(name)),
            opt(k.thp_defrag.as_ref().map(name)),
            opt(k.ksm.as_ref().map(name)),
            opt(k.numa_balancing.as_ref().map(name)),
        ),
        format!(
            "  timer_migration {}; watchdog {} on CPUs {}; nmi_watchdog {}; RT runtime {rt} of {} µs",
            flag(k.timer_migration),
            flag(k.watchdog),
            list_or_none(k.watchdog_cpumask.as_ref()),
            flag(k.nmi_watchdog),
            num(k.sched_rt_period_us),
        ),
        format!(
            "  busy_poll {} µs, busy_read {} µs; workqueue CPUs {}; kvm halt_poll_ns {}",
            num(k.busy_poll_us.map(u64::from)),
            num(k.busy_read_us.map(u64::from)),
            list_or_none(k.workqueue_cpumask.as_ref()),
            k.kvm_halt_poll_ns.map_or("- (kvm not loaded)".to_owned(), |n| n.to_string()),
        ),
    ]
}
