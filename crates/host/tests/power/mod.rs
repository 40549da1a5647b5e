//! Power inspection on synthetic trees and on this machine.

use nearnative_host::power::{self, ResumeLatency};
use nearnative_host::{CpuSet, Root};

use crate::sysfs_tree::Tree;

const CPU: &str = "/sys/devices/system/cpu";

fn state(tree: &Tree, cpu: u32, index: u32, name: &str, latency: &str, disable: &str) {
    let dir = format!("{CPU}/cpu{cpu}/cpuidle/state{index}");
    tree.file(&format!("{dir}/name"), &format!("{name}\n"))
        .file(&format!("{dir}/latency"), latency)
        .file(&format!("{dir}/residency"), "400\n")
        .file(&format!("{dir}/disable"), disable);
}

fn server_tree() -> Tree {
    let tree = Tree::new();
    tree.file(&format!("{CPU}/online"), "0-1\n")
        .file(&format!("{CPU}/cpuidle/current_driver"), "intel_idle\n")
        .file(&format!("{CPU}/cpuidle/current_governor_ro"), "menu\n")
        .file(&format!("{CPU}/cpu0/power/pm_qos_resume_latency_us"), "0\n")
        .file(
            &format!("{CPU}/cpu1/power/pm_qos_resume_latency_us"),
            "n/a\n",
        )
        .file(
            &format!("{CPU}/cpu0/cpufreq/scaling_governor"),
            "powersave\n",
        )
        .dir(&format!("{CPU}/cpu1/cpufreq"));
    for cpu in 0..2 {
        state(&tree, cpu, 0, "POLL", "0\n", "0\n");
        state(&tree, cpu, 1, "C6", "133\n", "0\n");
    }
    state(&tree, 1, 2, "C10", "", "1\n");
    tree
}

#[test]
fn reads_driver_states_qos_and_governor() {
    let tree = server_tree();
    let (power, _) = power::read(&tree.root());
    assert_eq!(power.cpuidle_driver.as_deref(), Some("intel_idle"));
    assert_eq!(
        power.cpuidle_governor.as_deref(),
        Some("menu"),
        "read-only fallback"
    );
    assert_eq!(power.cpus.len(), 2);
    let cpu0 = &power.cpus[0];
    assert_eq!(cpu0.idle_states[1].name, "C6");
    assert_eq!(cpu0.idle_states[1].latency_us, Some(133));
    assert_eq!(cpu0.idle_states[1].disabled, Some(false));
    assert_eq!(cpu0.resume_latency, Some(ResumeLatency::NoLimit));
    assert_eq!(
        cpu0.cpufreq_governor.as_ref().map(|g| g.as_str()),
        Some("powersave")
    );
    let cpu1 = &power.cpus[1];
    assert_eq!(cpu1.resume_latency, Some(ResumeLatency::ZeroLatency));
    assert_eq!(cpu1.idle_states[2].latency_us, None);
}

#[test]
fn empty_and_missing_files_are_unknown_with_their_path() {
    let tree = server_tree();
    let (_, unknowns) = power::read(&tree.root());
    let objects: Vec<&str> = unknowns.iter().map(|u| u.object.as_str()).collect();
    assert_eq!(
        objects,
        [
            "exit latency of cpu1 idle state2",
            "cpufreq governor of CPU 1",
        ],
        "{unknowns:#?}"
    );
    assert!(unknowns[0].path.ends_with("cpu1/cpuidle/state2/latency"));

    let (power, unknowns) = power::read(&Tree::new().root());
    assert!(power.cpus.is_empty());
    let objects: Vec<&str> = unknowns.iter().map(|u| u.object.as_str()).collect();
    assert_eq!(
        objects,
        ["cpuidle driver", "cpuidle governor", "online CPUs"]
    );
}

#[test]
fn qos_n_a_hides_deep_states_from_findings() {
    let tree = server_tree();
    let (power, _) = power::read(&tree.root());
    let evidence: Vec<String> = power.findings().into_iter().map(|f| f.evidence).collect();
    assert_eq!(
        evidence,
        [
            "deep C-state C6 enabled on CPU 0 (exit latency 133 µs)",
            "governor powersave: the clock drops when idle",
        ]
    );
    assert!(power.findings_for(&CpuSet::from_ids([1])).is_empty());
}

#[test]
#[ignore = "needs this machine: a KVM guest with the haltpoll cpuidle driver"]
fn live_host_has_haltpoll_cpuidle() {
    let root = Root::default();
    let (power, unknowns) = power::read(&root);
    assert!(unknowns.is_empty(), "{unknowns:#?}");
    let online = nearnative_host::cpus::online_cpus(&root).unwrap();
    assert_eq!(power.cpus.len(), online.len());
    assert_eq!(
        power.cpuidle_driver.as_deref(),
        Some("haltpoll"),
        "needs the haltpoll cpuidle driver (the KVM guest this test was written for)"
    );
    for cpu in &power.cpus {
        assert_eq!(cpu.idle_states[0].name, "POLL");
        assert!(cpu.resume_latency.is_some());
    }
}

#[test]
fn captured_hybrid_laptop_has_powersave_through_policy_links() {
    let root = Root::new(crate::fixtures::shared("20em64t-hybrid-1p6c2t+2ca4co1t"));
    let (power, unknowns) = power::read(&root);
    assert_eq!(power.cpus.len(), 20);
    assert!(power
        .cpus
        .iter()
        .all(|c| c.cpufreq_governor.as_ref().map(|g| g.as_str()) == Some("powersave")));
    let governor = power.findings();
    assert_eq!(governor.len(), 1, "{governor:?}");
    assert_eq!(governor[0].object, "cpufreq governor on CPUs 0-19");
    assert!(unknowns
        .iter()
        .any(|u| u.object == "PM QoS resume latency of CPU 0"));
}
