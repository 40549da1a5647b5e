//! Every inspect part of this crate run over real captured hosts: partial trees, where most
//! files are missing, must give values and unknowns, never a panic or a path outside the root.

use nearnative_host::{irq, knobs, nic, power, Root, Unknown};

use crate::fixtures::{shared, SNAPSHOTS};

#[test]
fn partial_snapshots_read_without_panics_and_unknowns_stay_inside_the_root() {
    for name in SNAPSHOTS {
        let root = Root::new(shared(name));
        let mut unknowns: Vec<Unknown> = Vec::new();
        unknowns.extend(irq::read(&root).1);
        unknowns.extend(nic::read(&root).1);
        unknowns.extend(knobs::read(&root).1);
        let (power, power_unknowns) = power::read(&root);
        unknowns.extend(power_unknowns);
        assert!(
            !power.cpus.is_empty(),
            "{name}: every snapshot has cpuN directories"
        );
        for unknown in &unknowns {
            assert!(unknown.path.starts_with(root.dir()), "{name}: {unknown:?}");
            assert!(!unknown.reason.is_empty(), "{name}: {unknown:?}");
        }
        let objects: Vec<&str> = unknowns.iter().map(|u| u.object.as_str()).collect();
        assert!(
            objects.contains(&"IRQ counts"),
            "{name}: no /proc/interrupts captured"
        );
    }
}
