//! The Host aggregate on real snapshots and on this machine, and its JSON form.

use nearnative_host::{Host, InspectOptions, Root, SCHEMA_VERSION};

use crate::fixtures::{shared, SNAPSHOTS};

#[test]
fn json_has_the_documented_required_fields() {
    for name in SNAPSHOTS {
        let host = Host::read(&Root::new(shared(name)), &InspectOptions::default());
        let json = serde_json::to_value(&host).unwrap();
        assert_eq!(json["schema_version"], SCHEMA_VERSION, "{name}");
        let cpus = json["topology"]["cpus"].as_array().unwrap();
        assert_eq!(cpus.len(), host.topology.cpus.len(), "{name}");
        for cpu in cpus {
            for field in ["id", "online", "package", "core", "numa_node", "siblings"] {
                assert!(cpu.get(field).is_some(), "{name}: cpu lacks {field}: {cpu}");
            }
            assert!(cpu["siblings"].is_array(), "{name}: {cpu}");
        }
        let back: Host = serde_json::from_value(json).unwrap();
        assert_eq!(back, host, "{name}: JSON round trip");
    }
}

#[test]
fn live_host_reads_with_every_online_cpu_in_a_core() {
    let host = Host::read(&Root::default(), &InspectOptions::default());
    assert!(!host.topology.online.is_empty());
    for cpu in host.topology.cpus.iter().filter(|c| c.online) {
        assert!(
            cpu.core.is_some() && cpu.siblings.contains(cpu.id),
            "{cpu:?}"
        );
    }
    assert!(
        host.isolation.cmdline.is_some(),
        "/proc/cmdline is readable here"
    );
    assert!(host.isolation.cgroups.cpusets.iter().any(|c| c.path == "/"));
}
