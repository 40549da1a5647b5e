//! IRQ inspection on synthetic trees and on this machine.

use nearnative_host::irq::{self, Trigger};
use nearnative_host::{CpuSet, Root};

use crate::sysfs_tree::Tree;

const INTERRUPTS: &str = "\
           CPU0       CPU1
 36:          0      70639 PCI-MSIX-0000:00:02.0   1-edge      virtio1-req.0
 38:          0       6457 PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0
 40:          5
this line is malformed
LOC:      29277      31233   Local timer interrupts
ERR:          0
";

fn guest_tree() -> Tree {
    let tree = Tree::new();
    tree.file("/proc/interrupts", INTERRUPTS)
        .file("/proc/irq/default_smp_affinity", "3\n")
        .file("/proc/irq/36/smp_affinity", "3\n")
        .file("/proc/irq/36/smp_affinity_list", "0-1\n")
        .file("/proc/irq/36/effective_affinity_list", "1\n")
        .dir("/proc/irq/36/virtio1-req.0")
        .file("/proc/irq/38/smp_affinity", "3\n")
        .file("/proc/irq/38/effective_affinity", "1\n")
        .dir("/proc/irq/40")
        .file("/sys/kernel/irq/38/chip_name", "PCI-MSIX-0000:00:03.0\n")
        .file("/sys/kernel/irq/38/hwirq", "1\n")
        .file("/sys/kernel/irq/38/type", "edge\n")
        .file("/sys/kernel/irq/38/actions", "virtio2-input.0\n")
        .file("/sys/bus/pci/devices/0000:00:03.0/msi_irqs/38", "msix\n")
        .file("/proc/812/comm", "irqbalance\n")
        .file(
            "/proc/812/environ",
            "PATH=/bin\0IRQBALANCE_BANNED_CPULIST=1\0",
        )
        .file("/proc/1/comm", "systemd\n");
    tree
}

#[test]
fn reads_lines_affinity_owner_and_settability() {
    let tree = guest_tree();
    let (irqs, _) = irq::read(&tree.root());
    assert_eq!(irqs.cpus, [0, 1]);
    let numbers: Vec<u32> = irqs.lines.iter().map(|l| l.number).collect();
    assert_eq!(numbers, [36, 38, 40]);

    let req = &irqs.lines[0];
    assert_eq!(req.label(), "IRQ 36 virtio1-req.0");
    assert_eq!(req.affinity, Some(CpuSet::from_ids([0, 1])));
    assert_eq!(req.effective_affinity, Some(CpuSet::from_ids([1])));
    assert_eq!(
        req.affinity_settable, None,
        "file modes are only trusted live"
    );
    assert_eq!(req.count_on(&irqs.cpus, 1), Some(70639));

    let input = &irqs.lines[1];
    assert_eq!(
        input.affinity,
        Some(CpuSet::from_ids([0, 1])),
        "mask fallback"
    );
    assert_eq!(input.effective_affinity, Some(CpuSet::from_ids([0])));
    assert_eq!(input.device.as_deref(), Some("0000:00:03.0"));
    assert_eq!(input.trigger, Some(Trigger::Edge));
    assert_eq!(input.hwirq, Some(1));

    assert_eq!(irqs.named[0].name, "LOC");
    assert_eq!(irqs.default_affinity, Some(CpuSet::from_ids([0, 1])));
    assert_eq!(irqs.irqbalance.pids, [812]);
    assert_eq!(irqs.irqbalance.banned_cpus, Some(CpuSet::from_ids([1])));
}

#[test]
fn bad_and_missing_files_become_unknowns_with_paths() {
    let tree = guest_tree();
    let (irqs, unknowns) = irq::read(&tree.root());
    let malformed = unknowns
        .iter()
        .find(|u| u.object == "line 5 of /proc/interrupts")
        .expect("malformed line reported");
    assert!(malformed.path.ends_with("proc/interrupts"));
    let affinity = unknowns
        .iter()
        .find(|u| u.object == "IRQ 40 affinity")
        .expect("missing affinity reported");
    assert!(affinity.path.ends_with("proc/irq/40/smp_affinity"));
    assert_eq!(irqs.lines[2].affinity, None);
    assert_eq!(
        irqs.lines[2].effective_affinity, None,
        "absent, not unknown"
    );
    assert_eq!(unknowns.len(), 2, "{unknowns:#?}");
}

#[test]
fn an_empty_tree_is_all_unknown_and_never_panics() {
    let tree = Tree::new();
    let (irqs, unknowns) = irq::read(&tree.root());
    assert!(irqs.lines.is_empty());
    let objects: Vec<&str> = unknowns.iter().map(|u| u.object.as_str()).collect();
    assert!(objects.contains(&"IRQ counts"), "{objects:?}");
    assert!(objects.contains(&"default IRQ affinity"), "{objects:?}");

    let tree = Tree::new();
    tree.file("/proc/interrupts", "")
        .file("/proc/irq/default_smp_affinity", "zz\n");
    let (_, unknowns) = irq::read(&tree.root());
    let reasons: Vec<&str> = unknowns.iter().map(|u| u.reason.as_str()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("no CPU columns")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("\"zz\"")), "{reasons:?}");
}

#[test]
fn findings_against_an_exclusive_cpu() {
    let tree = guest_tree();
    let (irqs, _) = irq::read(&tree.root());
    let findings = irqs.findings_for(&CpuSet::from_ids([1]));
    let objects: Vec<&str> = findings.iter().map(|f| f.object.as_str()).collect();
    assert_eq!(objects, ["IRQ 36 virtio1-req.0", "default_smp_affinity"]);
    assert_eq!(
        findings[0].evidence,
        "lands on CPU 1 (70639 interrupts there since boot)"
    );
}

#[test]
fn live_host_irqs_are_read_in_full() {
    let (irqs, unknowns) = irq::read(&Root::default());
    let online = nearnative_host::cpus::online_cpus(&Root::default()).unwrap();
    assert_eq!(CpuSet::from_ids(irqs.cpus.iter().copied()), online);
    assert!(irqs
        .named
        .iter()
        .any(|r| r.name == "LOC" || r.name.starts_with("IPI")));
    let with_actions: Vec<_> = irqs
        .lines
        .iter()
        .filter(|l| !l.actions.is_empty())
        .collect();
    assert!(!with_actions.is_empty());
    for line in with_actions {
        let affinity = line.affinity.as_ref().expect("affinity readable as root");
        if let Some(effective) = &line.effective_affinity {
            assert!(effective.is_subset(affinity), "{}", line.label());
        }
        assert!(line.affinity_settable.is_some(), "{}", line.label());
    }
    assert!(irqs.default_affinity.is_some());
    assert!(unknowns.is_empty(), "{unknowns:#?}");
}
