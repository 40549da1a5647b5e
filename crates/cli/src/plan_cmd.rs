//! `nearnative plan TARGET`: read the host and the ledger, plan, print. Planning itself is
//! the pure `nearnative_plan::plan`; this file only gathers its inputs and prints its output.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use nearnative_apply::state::DEFAULT_STATE_DIR;
use nearnative_host::cgroup::parse_scope;
use nearnative_host::CpuSet;
use nearnative_plan::{
    Fencing, IoPlacement, Level, NumaSpill, Plan, PlanRequest, Pool, ProtectedIrq, Target,
};

use crate::output::out;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// vm:NAME, vm-pid:PID, pid:PID or cgroup:/PATH.
    pub(crate) target: Target,
    /// high: one thread per core; high-ht: two threads of the workload share a core.
    #[arg(long, default_value = "high")]
    level: Level,
    /// The vCPUs (by index, e.g. 0-3) that get an exclusive CPU; default all.
    #[arg(long, value_name = "LIST", value_parser = cpu_list)]
    vcpus: Option<CpuSet>,
    /// For pid: targets, the threads (TID,...) that get an exclusive CPU; default all.
    #[arg(long, value_name = "TID,...", value_delimiter = ',')]
    threads: Option<Vec<u32>>,
    /// The exclusive threads share a pool of N whole cores (at most one per thread) instead
    /// of getting a CPU each.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    cores: Option<u32>,
    /// Where I/O threads run: a dedicated exclusive core, or the housekeeping CPUs.
    #[arg(long, value_enum, default_value = "housekeeping")]
    io: Io,
    /// The NIC the workload uses: coalescing and LRO/GRO off, busy polling on.
    #[arg(long, value_name = "IFACE")]
    nic: Option<String>,
    /// CPUs the host keeps, as whole cores (default: one free core per node).
    #[arg(long, value_name = "LIST", value_parser = cpu_list)]
    housekeeping: Option<CpuSet>,
    /// cgroup:PATH in the cpuset hierarchy whose CPUs are shared out (default: the whole host).
    #[arg(long, value_name = "cgroup:PATH")]
    scope: Option<String>,
    /// SCHED_FIFO priority (1-99) for the exclusive threads.
    #[arg(long, value_name = "PRIO")]
    rt: Option<u32>,
    /// When the threads do not fit one NUMA node: refuse, or spill to the nearest nodes.
    #[arg(long, value_enum, default_value = "refuse")]
    numa_spill: Spill,
    /// Allow CPU 0's core to be given out.
    #[arg(long)]
    allow_cpu0: bool,
    /// The libvirt connection a libvirt domain is pinned through (default: qemu:///system).
    #[arg(long, value_name = "URI")]
    libvirt_uri: Option<String>,
    /// Directory to read as `/`: a captured or extracted snapshot.
    #[arg(long, default_value = "/")]
    pub(crate) root: PathBuf,
    /// Where ledger.json (the exclusive allocations in force) lives.
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub(crate) state_dir: PathBuf,
    /// Print the plan as JSON (docs/plan.md).
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Io {
    Dedicated,
    Housekeeping,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Spill {
    Refuse,
    Nearest,
}

/// A CPU list typed by the user: unlike a kernel file, an empty one is a mistake.
fn cpu_list(text: &str) -> Result<CpuSet, String> {
    match CpuSet::parse_list(text) {
        Ok(set) if set.is_empty() => Err("an empty CPU list".to_owned()),
        parsed => parsed.map_err(|e| e.to_string()),
    }
}

pub fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let engine = crate::apply_cmd::engine(&args.root, &args.state_dir)?;
    let plan = engine.plan(&request(args.target.clone(), &args)?)?;
    if args.json {
        crate::output::print_json(&plan)?;
    } else {
        out!("{}", render(&plan));
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn request(target: Target, args: &PlanArgs) -> anyhow::Result<PlanRequest> {
    let scope = args.scope.as_deref().map(parse_scope).transpose();
    let scope = scope.map_err(|e| anyhow::anyhow!("--scope {e}"))?;
    let mut request = PlanRequest::new(target);
    request.level = args.level;
    request.vcpus = args.vcpus.clone();
    request.threads = args.threads.clone();
    request.cores = args.cores;
    request.io = match args.io {
        Io::Dedicated => IoPlacement::Dedicated,
        Io::Housekeeping => IoPlacement::Housekeeping,
    };
    request.nic = args.nic.clone();
    request.housekeeping = args.housekeeping.clone();
    request.scope = scope;
    request.rt = args.rt;
    request.spill = match args.numa_spill {
        Spill::Refuse => NumaSpill::Refuse,
        Spill::Nearest => NumaSpill::Nearest,
    };
    request.allow_cpu0 = args.allow_cpu0;
    request.libvirt_uri = args.libvirt_uri.clone();
    Ok(request)
}

/// The plan for people: scope, allocation, numbered changes, advisories, notes.
pub(crate) fn render(plan: &Plan) -> String {
    let mut out = String::new();
    let fencing = match &plan.scope.fencing {
        Fencing::CpusetV1 { mount } => format!("cgroup v1 cpusets at {}", mount.display()),
        Fencing::CpusetV2 { mount, thread_root } => format!(
            "cgroup v2 cpusets at {}, threaded under {thread_root}",
            mount.display()
        ),
        Fencing::AffinityOnly { why } => format!("thread affinity only ({why})"),
    };
    let allocation = &plan.allocation;
    let target = plan.target.to_string();
    match target == plan.workload.0 {
        true => out.push_str(&format!("plan for {}\n", plan.workload)),
        false => out.push_str(&format!("plan for {} ({target})\n", plan.workload)),
    }
    out.push_str(&format!(
        "scope: {} (CPUs {}, memory nodes {}), fenced by {fencing}\n",
        plan.scope.path, plan.scope.cpus, plan.scope.mems
    ));
    out.push_str(&format!(
        "allocation: level {}; exclusive CPUs {}; idle siblings {}; I/O CPUs {}; housekeeping {}\n",
        allocation.request.level,
        allocation.exclusive_cpus,
        dash(&allocation.reserved_idle),
        dash(&allocation.io_cpus),
        allocation.housekeeping
    ));
    match &plan.pool {
        Some(pool) => out.push_str(&pool_line(pool)),
        None => {
            for slot in &allocation.slots {
                out.push_str(&format!("  thread {} -> CPU {}\n", slot.thread, slot.cpu));
            }
        }
    }
    for note in &allocation.notes {
        out.push_str(&format!("  note: {note}\n"));
    }
    out.push_str(&format!("changes ({}):\n", plan.changes.len()));
    for (n, change) in plan.changes.iter().enumerate() {
        let described = change.step.describe();
        let (from, to) = change.step.values();
        out.push_str(&format!(
            "  {:>3}. [{}] {}: {from} -> {to} ({})\n       {}\n",
            n + 1,
            mechanism(change.mechanism),
            described.object,
            described.location,
            change.reason
        ));
    }
    out.push_str(&format!("advisories ({}):\n", plan.advisories.len()));
    for advisory in &plan.advisories {
        out.push_str(&format!(
            "  [{}] {}:\n",
            mechanism(advisory.mechanism),
            advisory.topic
        ));
        for line in advisory.text.lines() {
            out.push_str(&format!("    {line}\n"));
        }
    }
    if !plan.notes.is_empty() {
        out.push_str("left alone:\n");
        for note in &plan.notes {
            out.push_str(&format!("  {note}\n"));
        }
    }
    if let Some(line) = plan.protected_irqs.as_deref().and_then(protected_line) {
        out.push_str(&line);
    }
    out
}

/// `protected IRQs (default route; verify excuses them): 24,25 (eth0)`, or nothing.
fn protected_line(irqs: &[ProtectedIrq]) -> Option<String> {
    let mut nics: Vec<&str> = irqs.iter().map(|p| p.nic.as_str()).collect();
    nics.sort_unstable();
    nics.dedup();
    let groups: Vec<String> = nics
        .iter()
        .map(|nic| {
            let own = irqs.iter().filter(|p| p.nic == *nic);
            let numbers: Vec<String> = own.map(|p| p.irq.to_string()).collect();
            format!("{} ({nic})", numbers.join(","))
        })
        .collect();
    (!groups.is_empty()).then(|| {
        format!(
            "protected IRQs (default route; verify excuses them): {}\n",
            groups.join(", ")
        )
    })
}

/// `  threads 4242,4243 share CPUs 1 (a pool of 1 core, cpuset /nearnative-pid-4242-pool)`
fn pool_line(pool: &Pool) -> String {
    let tids: Vec<String> = pool.tids.iter().map(u32::to_string).collect();
    let cores = match pool.cores {
        1 => "1 core".to_owned(),
        n => format!("{n} cores"),
    };
    let cgroup = pool
        .cgroup
        .as_ref()
        .map_or_else(String::new, |path| format!(", cpuset {path}"));
    format!(
        "  threads {} share CPUs {} (a pool of {cores}{cgroup})\n",
        tids.join(","),
        pool.cpus
    )
}

fn dash(set: &CpuSet) -> String {
    match set.is_empty() {
        true => "-".to_owned(),
        false => set.to_list(),
    }
}

pub(crate) fn mechanism(mechanism: nearnative_host::Mechanism) -> String {
    serde_json::to_value(mechanism)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_irqs_are_grouped_by_interface() {
        let irq = |irq, nic: &str| ProtectedIrq {
            irq,
            nic: nic.to_owned(),
        };
        assert_eq!(protected_line(&[]), None);
        assert_eq!(
            protected_line(&[irq(24, "eth0"), irq(30, "eth1"), irq(25, "eth0")]).as_deref(),
            Some("protected IRQs (default route; verify excuses them): 24,25 (eth0), 30 (eth1)\n")
        );
    }
}
