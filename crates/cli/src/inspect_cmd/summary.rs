//! The human summary of `inspect`: one function per section, each returning its lines, so a
//! new part of the host adds one function and one line in [`render`]. Order: the topology
//! tree, then workloads, then isolation, findings and unknowns.

mod devices;
mod workloads;

use nearnative_host::isolation::{BootIsolation, Cgroups, Cpuset, Isolation};
use nearnative_host::kernel::cgroup::Partition;
use nearnative_host::topology::{Core, CoreKind, NumaNode, Topology};
use nearnative_host::{CpuSet, Host};
use serde::Serialize;

/// Cores listed one per line under a cache group up to this many; more are summed up.
const MAX_CORE_LINES: usize = 16;
/// Cpusets and unknowns listed before "... and N more".
const MAX_LIST: usize = 10;

pub fn render(host: &Host) -> String {
    let sections = [
        topology(&host.topology),
        workloads::workloads(&host.workloads),
        workloads::tasks(&host.tasks),
        isolation(&host.isolation),
        devices::irqs(&host.irqs),
        devices::nics(&host.nics),
        devices::power(&host.power),
        devices::knobs(&host.knobs),
        findings(host),
        unknowns(host),
    ];
    let mut out = String::new();
    for lines in sections.iter().filter(|lines| !lines.is_empty()) {
        for line in lines {
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

/// An enum's name as the JSON spells it.
fn name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

fn plural(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

fn size(kib: Option<u64>) -> String {
    match kib {
        Some(kib) if kib >= 1 << 20 => format!("{:.1} GiB", kib as f64 / (1 << 20) as f64),
        Some(kib) if kib >= 1024 && kib % 1024 == 0 => format!("{} MiB", kib / 1024),
        Some(kib) => format!("{kib} KiB"),
        None => "size unknown".to_owned(),
    }
}

fn list_or_none(set: Option<&CpuSet>) -> String {
    match set {
        Some(set) if !set.is_empty() => set.to_list(),
        Some(_) => "none".to_owned(),
        None => "-".to_owned(),
    }
}

fn topology(t: &Topology) -> Vec<String> {
    let known = t.cpus.len();
    let smt = if t.smt_active() { "SMT on" } else { "no SMT" };
    let hybrid = t.hybrid.map_or(String::new(), |_| ", hybrid".to_owned());
    let mut lines = vec![format!(
        "Topology: {}, {}, {}, {} of {known} CPUs online, {smt}{hybrid}",
        plural(t.packages.len(), "package", "packages"),
        plural(t.numa_nodes.len(), "NUMA node", "NUMA nodes"),
        plural(t.cores.len(), "core", "cores"),
        t.online.len(),
    )];
    for package in &t.packages {
        let os_id = package
            .os_id
            .map_or(String::new(), |id| format!(" (physical id {id})"));
        lines.push(format!(
            "  package {}{os_id}: CPUs {}",
            package.id, package.cpus
        ));
        for node in t
            .numa_nodes
            .iter()
            .filter(|n| !n.cpus.is_empty() && n.cpus.is_subset(&package.cpus))
        {
            lines.push(format!("    {}", numa_node(node)));
        }
        lines.extend(cache_groups(t, &package.cpus));
    }
    let elsewhere = t
        .numa_nodes
        .iter()
        .filter(|n| n.cpus.is_empty() || !t.packages.iter().any(|p| n.cpus.is_subset(&p.cpus)));
    lines.extend(elsewhere.map(|node| format!("  {}", numa_node(node))));
    if t.numa_nodes.len() > 1 {
        lines.extend(distances(&t.numa_nodes));
    }
    if !t.offline.is_empty() {
        lines.push(format!("  offline CPUs: {}", t.offline));
    }
    lines
}

fn numa_node(node: &NumaNode) -> String {
    let cpus = if node.cpus.is_empty() {
        "no CPUs".to_owned()
    } else {
        format!("CPUs {}", node.cpus)
    };
    let implicit = if node.implicit {
        " (no NUMA in sysfs)"
    } else {
        ""
    };
    format!(
        "NUMA node {}: {cpus}, {}{implicit}",
        node.id,
        size(node.memory_kib)
    )
}

fn distances(nodes: &[NumaNode]) -> Vec<String> {
    let rows = nodes.iter().filter_map(|node| {
        let row = node.distances.as_ref()?;
        let row: Vec<String> = row.iter().map(|d| format!("{d:>3}")).collect();
        Some(format!("    node {:>2}: {}", node.id, row.join(" ")))
    });
    let rows: Vec<String> = rows.collect();
    if rows.is_empty() {
        return rows;
    }
    std::iter::once("  NUMA distances:".to_owned())
        .chain(rows)
        .collect()
}

/// The package's cores, grouped under their L3 (or under the package when there is none).
fn cache_groups(t: &Topology, package: &CpuSet) -> Vec<String> {
    let l3s: Vec<_> = t
        .caches
        .iter()
        .filter(|c| c.level == 3 && c.cache_type.holds_data() && c.cpus.is_subset(package))
        .collect();
    let mut lines = Vec::new();
    if l3s.is_empty() {
        lines.extend(cores(t, package, "    "));
    }
    for l3 in l3s {
        lines.push(format!(
            "    L3 {} ({}): CPUs {}",
            l3.id,
            size(l3.size_kib),
            l3.cpus
        ));
        lines.extend(cores(t, &l3.cpus, "      "));
    }
    lines
}

fn cores(t: &Topology, within: &CpuSet, indent: &str) -> Vec<String> {
    let cores: Vec<&Core> = t
        .cores
        .iter()
        .filter(|c| c.cpus.is_subset(within))
        .collect();
    if cores.len() <= MAX_CORE_LINES {
        return cores
            .iter()
            .map(|core| format!("{indent}{}", core_line(t, core)))
            .collect();
    }
    let ids: CpuSet = cores.iter().map(|c| c.id).collect();
    let threads: Vec<usize> = cores.iter().map(|c| c.cpus.len()).collect();
    let threads = match (threads.iter().min(), threads.iter().max()) {
        (Some(min), Some(max)) if min == max => plural(*min, "thread", "threads") + " each",
        (Some(min), Some(max)) => format!("{min}-{max} threads"),
        _ => String::new(),
    };
    let kinds = [
        (CoreKind::Performance, "P-core", "P-cores"),
        (CoreKind::Efficiency, "E-core", "E-cores"),
    ];
    let kinds: Vec<String> = kinds
        .iter()
        .map(|(kind, one, many)| {
            (
                cores.iter().filter(|c| c.kind == Some(*kind)).count(),
                one,
                many,
            )
        })
        .filter(|(count, _, _)| *count > 0)
        .map(|(count, one, many)| format!(", {}", plural(count, one, many)))
        .collect();
    let threads = threads + &kinds.concat();
    let clusters = t
        .clusters
        .iter()
        .filter(|g| g.cpus.is_subset(within))
        .count();
    let clusters = if clusters > 0 {
        format!(", {}", plural(clusters, "cluster", "clusters"))
    } else {
        String::new()
    };
    vec![format!(
        "{indent}cores {ids}: {}, {threads}{clusters}",
        plural(cores.len(), "core", "cores")
    )]
}

fn core_line(t: &Topology, core: &Core) -> String {
    let kind = match core.kind {
        Some(CoreKind::Performance) => " P-core",
        Some(CoreKind::Efficiency) => " E-core",
        None => "",
    };
    let l2 = core
        .cpus
        .first()
        .and_then(|cpu| t.cpu(cpu)?.l2)
        .and_then(|id| t.caches.iter().find(|c| c.level == 2 && c.id == id));
    let l2 = l2.map_or(String::new(), |c| {
        format!(", L2 {} ({})", c.id, size(c.size_kib))
    });
    let cpus = if core.cpus.len() == 1 { "CPU" } else { "CPUs" };
    format!("core {}: {cpus} {}{kind}{l2}", core.id, core.cpus)
}

fn isolation(iso: &Isolation) -> Vec<String> {
    let mut lines = vec![
        "Isolation:".to_owned(),
        boot(iso.cmdline.as_ref()),
        format!(
            "  kernel: isolated {}, nohz_full {}",
            list_or_none(iso.isolated.as_ref()),
            list_or_none(iso.nohz_full.as_ref()),
        ),
    ];
    lines.extend(cgroups(&iso.cgroups));
    if let Some(own) = &iso.process_cpuset {
        lines.push(format!(
            "  this process: cpuset {}, CPUs {}",
            own.cgroup,
            list_or_none(Some(&own.cpus))
        ));
    }
    lines
}

fn boot(cmdline: Option<&BootIsolation>) -> String {
    let Some(boot) = cmdline else {
        return "  boot: kernel command line unknown".to_owned();
    };
    let isolcpus = boot.isolcpus.as_ref().map_or("-".to_owned(), |i| {
        let flags: Vec<String> = i.flags.iter().map(name).collect();
        format!("{} ({})", list_or_none(Some(&i.cpus)), flags.join(","))
    });
    format!(
        "  boot: isolcpus {isolcpus}, nohz_full {}, rcu_nocbs {}, irqaffinity {}",
        list_or_none(boot.nohz_full.as_ref()),
        list_or_none(boot.rcu_nocbs.as_ref()),
        list_or_none(boot.irqaffinity.as_ref()),
    )
}

fn cgroups(cg: &Cgroups) -> Vec<String> {
    let mut where_ = Vec::new();
    if let (Some(version), Some(mount)) = (cg.cpuset_version, &cg.cpuset_mount) {
        where_.push(format!("cpuset v{version} at {}", mount.display()));
    } else {
        where_.push("no cpuset controller".to_owned());
    }
    if let Some(unified) = &cg.unified_mount {
        where_.push(format!("v2 at {}", unified.display()));
    }
    let more = if cg.truncated {
        " (walk stopped at its limit)"
    } else {
        ""
    };
    let mut lines = vec![format!(
        "  cgroups: {} ({}), {}{more}",
        name(&cg.mode),
        where_.join(", "),
        plural(cg.cpusets.len(), "cpuset", "cpusets"),
    )];
    lines.extend(cg.cpusets.iter().take(MAX_LIST).map(cpuset));
    if cg.cpusets.len() > MAX_LIST {
        lines.push(format!(
            "    ... and {} more (--json lists all)",
            cg.cpusets.len() - MAX_LIST
        ));
    }
    lines
}

fn cpuset(set: &Cpuset) -> String {
    let cpus = set.effective_cpus.as_ref().or(set.cpus.as_ref());
    let mut traits = Vec::new();
    // The v1 root is always exclusive; saying so on it tells nothing.
    if set.cpu_exclusive == Some(true) && set.path != "/" {
        traits.push("exclusive".to_owned());
    }
    if set.sched_load_balance == Some(false) {
        traits.push("no load balancing".to_owned());
    }
    if let Some(partition) = set.partition.as_ref().filter(|p| **p != Partition::Member) {
        traits.push(format!("partition {partition}"));
    }
    let traits = if traits.is_empty() {
        String::new()
    } else {
        format!(" [{}]", traits.join(", "))
    };
    format!("    {}: CPUs {}{traits}", set.path, list_or_none(cpus))
}

fn findings(host: &Host) -> Vec<String> {
    if host.findings.is_empty() {
        return vec!["Findings: none".to_owned()];
    }
    let mut lines = vec![format!("Findings ({}):", host.findings.len())];
    lines.extend(host.findings.iter().map(|f| {
        let (severity, mechanism) = (name(&f.severity), name(&f.mechanism));
        format!(
            "  {severity:<8} {mechanism:<12} {}: {}",
            f.object, f.evidence
        )
    }));
    lines
}

fn unknowns(host: &Host) -> Vec<String> {
    if host.unknowns.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![format!("Unknown ({}):", host.unknowns.len())];
    lines.extend(
        host.unknowns
            .iter()
            .take(MAX_LIST)
            .map(|u| format!("  {}: {} ({})", u.object, u.reason, u.path.display())),
    );
    if host.unknowns.len() > MAX_LIST {
        lines.push(format!(
            "  ... and {} more (--json lists all)",
            host.unknowns.len() - MAX_LIST
        ));
    }
    lines
}
