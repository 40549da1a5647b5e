//! Latency risks in the isolation state: no boot-time isolation at all, isolation that splits
//! a core between isolated and shared threads, lists naming CPUs that are not online, and
//! `nohz_full=` asked of a kernel that cannot do it.

use super::{Isolation, IsolcpusFlag};
use crate::topology::Topology;
use crate::{CpuSet, Finding, Mechanism, Severity};

pub fn findings(isolation: &Isolation, topology: &Topology) -> Vec<Finding> {
    let Some(boot) = &isolation.cmdline else {
        return Vec::new();
    };
    let mut found = Vec::new();
    if boot.isolcpus.is_none() && boot.nohz_full.is_none() {
        found.push(exclusivity(
            Severity::Info,
            "kernel command line",
            "no isolcpus= or nohz_full=: scheduler ticks and kernel work may reach every CPU; \
             exclusive cores rely on cpusets and affinity (boot parameters are advice)",
        ));
    }
    let lists = [
        ("isolcpus", boot.isolcpus.as_ref().map(|i| &i.cpus)),
        ("nohz_full", boot.nohz_full.as_ref()),
    ];
    for (param, cpus) in lists {
        if let Some(cpus) = cpus {
            found.extend(split_cores(param, cpus, topology));
            found.extend(not_online(param, cpus, topology));
        }
    }
    if let Some(isolcpus) = &boot.isolcpus {
        if !isolcpus.flags.contains(&IsolcpusFlag::ManagedIrq) && !isolcpus.cpus.is_empty() {
            let evidence = format!(
                "isolcpus={} has no managed_irq flag: managed interrupts of multi-queue \
                 devices may still be placed on them",
                isolcpus.cpus
            );
            found.push(exclusivity(Severity::Info, "isolcpus", &evidence));
        }
    }
    found.extend(nohz_full_ignored(isolation));
    found
}

fn exclusivity(severity: Severity, object: &str, evidence: &str) -> Finding {
    Finding {
        severity,
        object: object.to_owned(),
        evidence: evidence.to_owned(),
        mechanism: Mechanism::Exclusivity,
    }
}

/// Cores with some threads in the list and others not: the shared thread's work runs on the
/// same core as the isolated one.
fn split_cores(param: &str, cpus: &CpuSet, topology: &Topology) -> Vec<Finding> {
    topology
        .cores
        .iter()
        .filter_map(|core| {
            let inside = core.cpus.intersection(cpus);
            let outside = core.cpus.difference(cpus);
            (!inside.is_empty() && !outside.is_empty()).then(|| {
                let object = format!("core {} (CPUs {})", core.id, core.cpus);
                let evidence =
                    format!("{param}= covers CPU {inside} but not its SMT sibling {outside}");
                exclusivity(Severity::Warning, &object, &evidence)
            })
        })
        .collect()
}

fn not_online(param: &str, cpus: &CpuSet, topology: &Topology) -> Option<Finding> {
    let missing = cpus.difference(&topology.online);
    (!missing.is_empty() && !topology.online.is_empty()).then(|| {
        let evidence = format!("{param}= lists CPUs {missing}, which are not online");
        exclusivity(Severity::Warning, param, &evidence)
    })
}

/// `nohz_full=` on the command line while the kernel has an `isolated` file but no
/// `nohz_full` file: it was built without `NO_HZ_FULL` and ignored the parameter.
fn nohz_full_ignored(isolation: &Isolation) -> Option<Finding> {
    let asked = isolation.cmdline.as_ref()?.nohz_full.as_ref()?;
    if asked.is_empty() || isolation.isolated.is_none() || isolation.nohz_full.is_some() {
        return None;
    }
    let evidence = format!(
        "nohz_full={asked} is on the command line but the kernel has no \
         /sys/devices/system/cpu/nohz_full: built without NO_HZ_FULL, ticks still run"
    );
    Some(exclusivity(Severity::Warning, "nohz_full", &evidence))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isolation::{cmdline, CgroupMode, Cgroups};
    use crate::Root;

    fn isolation(line: &str, nohz_sysfs: Option<&str>) -> Isolation {
        let possible = CpuSet::parse_list("0-3").unwrap();
        Isolation {
            cmdline: Some(cmdline::parse(line, &possible).0),
            isolated: Some(CpuSet::new()),
            nohz_full: nohz_sysfs.map(|l| CpuSet::parse_list(l).unwrap()),
            cgroups: Cgroups {
                mode: CgroupMode::None,
                unified_mount: None,
                cpuset_version: None,
                cpuset_mount: None,
                cpusets: Vec::new(),
                truncated: false,
            },
            process_cpuset: None,
        }
    }

    /// Two cores of two threads: {0,2} and {1,3}.
    fn smt_topology() -> Topology {
        let dir = tempfile::tempdir().unwrap();
        let cpu = dir.path().join("sys/devices/system/cpu");
        std::fs::create_dir_all(&cpu).unwrap();
        std::fs::write(cpu.join("online"), "0-3").unwrap();
        for (id, siblings) in [(0, "0,2"), (1, "1,3"), (2, "0,2"), (3, "1,3")] {
            let topo = cpu.join(format!("cpu{id}/topology"));
            std::fs::create_dir_all(&topo).unwrap();
            std::fs::write(topo.join("thread_siblings_list"), siblings).unwrap();
            std::fs::write(topo.join("core_siblings_list"), "0-3").unwrap();
            std::fs::write(topo.join("core_id"), "0").unwrap();
            std::fs::write(topo.join("physical_package_id"), "0").unwrap();
        }
        Topology::read(&Root::new(dir.path()), &mut Vec::new())
    }

    /// Description, command line, sysfs nohz_full, expected (severity, object) pairs.
    type Case = (
        &'static str,
        &'static str,
        Option<&'static str>,
        Vec<(Severity, &'static str)>,
    );

    #[test]
    fn findings_follow_the_command_line() {
        let topology = smt_topology();
        let cases: [Case; 4] = [
            (
                "nothing isolated",
                "quiet",
                None,
                vec![(Severity::Info, "kernel command line")],
            ),
            (
                "whole core with managed_irq",
                "isolcpus=managed_irq,domain,1,3 nohz_full=1,3",
                Some("1,3"),
                vec![],
            ),
            (
                "half a core, no managed_irq",
                "isolcpus=1",
                None,
                vec![
                    (Severity::Warning, "core 1 (CPUs 1,3)"),
                    (Severity::Info, "isolcpus"),
                ],
            ),
            (
                "nohz_full ignored, offline CPU",
                "nohz_full=2-3,7 isolcpus=managed_irq,0,2",
                None,
                vec![
                    (Severity::Warning, "core 0 (CPUs 0,2)"),
                    (Severity::Warning, "core 1 (CPUs 1,3)"),
                    (Severity::Warning, "nohz_full"),
                    (Severity::Warning, "nohz_full"),
                ],
            ),
        ];
        for (what, line, nohz, want) in cases {
            let got: Vec<(Severity, String)> = findings(&isolation(line, nohz), &topology)
                .into_iter()
                .map(|f| (f.severity, f.object))
                .collect();
            let want: Vec<(Severity, String)> =
                want.into_iter().map(|(s, o)| (s, o.to_owned())).collect();
            assert_eq!(got, want, "{what}");
        }
    }
}
