//! Kernel knob inspection on synthetic trees and on this machine.

use nearnative_host::knobs::{self, NumaBalancing, ParamValue, RtRuntime, ThpDefrag, ThpEnabled};
use nearnative_host::{CpuSet, Root};

use crate::sysfs_tree::Tree;

fn debian_guest() -> Tree {
    let tree = Tree::new();
    let sys = "/proc/sys/kernel";
    tree.file(
        "/sys/kernel/mm/transparent_hugepage/enabled",
        "[always] madvise never\n",
    )
    .file(
        "/sys/kernel/mm/transparent_hugepage/defrag",
        "always defer defer+madvise [madvise] never\n",
    )
    .file("/sys/kernel/mm/ksm/run", "0\n")
    .file(&format!("{sys}/numa_balancing"), "1\n")
    .file(&format!("{sys}/timer_migration"), "1\n")
    .file(&format!("{sys}/watchdog"), "1\n")
    .file(&format!("{sys}/nmi_watchdog"), "0\n")
    .file(&format!("{sys}/watchdog_cpumask"), "0-1\n")
    .file(&format!("{sys}/sched_rt_runtime_us"), "-1\n")
    .file(&format!("{sys}/sched_rt_period_us"), "1000000\n")
    .file("/proc/sys/net/core/busy_poll", "0\n")
    .file("/proc/sys/net/core/busy_read", "50\n")
    .file("/sys/devices/virtual/workqueue/cpumask", "3\n")
    .file("/sys/module/kvm/parameters/halt_poll_ns", "200000\n")
    .file("/sys/module/kvm/parameters/ignore_msrs", "N\n")
    .file("/sys/module/kvm_intel/parameters/ept", "Y\n");
    tree
}

#[test]
fn reads_typed_values() {
    let tree = debian_guest();
    let (knobs, unknowns) = knobs::read(&tree.root());
    assert!(unknowns.is_empty(), "{unknowns:#?}");
    assert_eq!(knobs.thp_enabled, Some(ThpEnabled::Always));
    assert_eq!(knobs.thp_defrag, Some(ThpDefrag::Madvise));
    assert_eq!(knobs.numa_balancing, Some(NumaBalancing::Normal));
    assert_eq!(knobs.sched_rt_runtime, Some(RtRuntime::Unlimited));
    assert_eq!(knobs.busy_read_us, Some(50));
    assert_eq!(knobs.workqueue_cpumask, Some(CpuSet::from_ids([0, 1])));
    assert_eq!(knobs.kvm_halt_poll_ns, Some(200_000));
    assert_eq!(
        knobs.kvm_parameters["kvm_intel"]["ept"],
        ParamValue::Bool(true)
    );
    assert!(!knobs.kvm_parameters.contains_key("kvm_amd"));
}

#[test]
fn missing_empty_and_malformed_knobs_are_unknown() {
    let tree = debian_guest();
    tree.file("/sys/kernel/mm/transparent_hugepage/enabled", "")
        .file("/proc/sys/kernel/sched_rt_period_us", "lots\n");
    std::fs::remove_file(tree.root().path("/proc/sys/kernel/numa_balancing")).unwrap();
    let (knobs, unknowns) = knobs::read(&tree.root());
    assert_eq!(knobs.thp_enabled, None);
    let found: Vec<(&str, bool)> = unknowns
        .iter()
        .map(|u| (u.object.as_str(), u.path.starts_with(tree.root().dir())))
        .collect();
    assert_eq!(
        found,
        [
            ("transparent huge pages", true),
            ("kernel.numa_balancing", true),
            ("kernel.sched_rt_period_us", true),
        ]
    );
    let (knobs, unknowns) = knobs::read(&Tree::new().root());
    assert_eq!(knobs.kvm_halt_poll_ns, None);
    assert_eq!(
        unknowns.len(),
        13,
        "every knob but kvm is unknown: {unknowns:#?}"
    );
}

#[test]
fn findings_include_thp_always_and_exclusive_masks() {
    let tree = debian_guest();
    let (knobs, _) = knobs::read(&tree.root());
    let evidence: Vec<String> = knobs
        .findings_for(&CpuSet::from_ids([1]))
        .into_iter()
        .map(|f| f.evidence)
        .collect();
    assert!(evidence[0].starts_with("THP always"), "{evidence:?}");
    assert!(evidence.iter().any(|e| e.starts_with("busy_poll 0")));
    assert!(evidence.contains(&"unbound kernel work may run on CPU 1".to_owned()));
}

#[test]
fn live_host_knobs_read() {
    let (knobs, unknowns) = knobs::read(&Root::default());
    assert!(knobs.thp_enabled.is_some(), "{unknowns:#?}");
    assert!(knobs.busy_poll_us.is_some());
    assert!(knobs.workqueue_cpumask.is_some());
    let kvm_loaded = Root::default().exists("/sys/module/kvm/parameters");
    assert_eq!(knobs.kvm_halt_poll_ns.is_some(), kvm_loaded);
    assert!(unknowns.iter().all(|u| u.object != "THP mode"));
}
