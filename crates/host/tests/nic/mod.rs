//! NIC inspection on synthetic trees and on this machine (read-only).

use nearnative_host::nic::{
    self, Direction, Ethtool, IpFamily, NicKind, NotAvailable, QueueRef, Sriov,
};
use nearnative_host::{CpuSet, Root};

use crate::sysfs_tree::Tree;

const VIRTIO_PCI: &str = "/sys/devices/pci0000:00/0000:00:03.0";
const IXGBE_PCI: &str = "/sys/devices/pci0000:00/0000:00:1c.0/0000:03:00.0";

/// This guest's eth0 (virtio-net on a PCI function), an ixgbe port with SR-IOV, lo and a
/// bridge, laid out as sysfs does with class links into /sys/devices.
fn host_tree() -> Tree {
    let tree = Tree::new();
    let eth0 = format!("{VIRTIO_PCI}/virtio2/net/eth0");
    tree.link("/sys/class/net/eth0", &format!("../../..{eth0}"))
        .link(&format!("{eth0}/device"), "../../../virtio2")
        .link(
            &format!("{VIRTIO_PCI}/virtio2/driver"),
            "../../../../bus/virtio/drivers/virtio_net",
        )
        .file(&format!("{VIRTIO_PCI}/numa_node"), "-1\n")
        .file(&format!("{eth0}/queues/rx-0/rps_cpus"), "0\n")
        .dir(&format!("{eth0}/queues/tx-0"));
    for (irq, name) in [
        (37, "virtio2-config"),
        (38, "virtio2-input.0"),
        (39, "virtio2-output.0"),
    ] {
        tree.file(&format!("{VIRTIO_PCI}/msi_irqs/{irq}"), "msix\n")
            .file(
                &format!("/sys/kernel/irq/{irq}/actions"),
                &format!("{name}\n"),
            );
    }

    let eth2 = format!("{IXGBE_PCI}/net/eth2");
    tree.link("/sys/class/net/eth2", &format!("../../..{eth2}"))
        .link(&format!("{eth2}/device"), "../../../0000:03:00.0")
        .file(
            &format!("{IXGBE_PCI}/uevent"),
            "DRIVER=ixgbe\nPCI_SLOT_NAME=0000:03:00.0\n",
        )
        .file(&format!("{IXGBE_PCI}/numa_node"), "1\n")
        .file(&format!("{IXGBE_PCI}/sriov_totalvfs"), "63\n")
        .file(&format!("{IXGBE_PCI}/sriov_numvfs"), "4\n")
        .file(
            &format!("{eth2}/queues/rx-1/rps_cpus"),
            "00000000,00000002\n",
        )
        .file(&format!("{eth2}/queues/rx-0/rps_cpus"), "0\n")
        .file(&format!("{eth2}/queues/tx-0/xps_cpus"), "1\n")
        .file(&format!("{eth2}/queues/tx-1/xps_cpus"), "zz\n");
    for (irq, name) in [(80, "eth2-TxRx-0"), (81, "eth2-TxRx-1"), (82, "eth2")] {
        tree.file(&format!("{IXGBE_PCI}/msi_irqs/{irq}"), "msix\n")
            .dir(&format!("/proc/irq/{irq}/{name}"));
    }

    tree.dir("/sys/devices/virtual/net/lo/queues/rx-0")
        .file("/sys/devices/virtual/net/lo/type", "772\n")
        .link("/sys/class/net/lo", "../../devices/virtual/net/lo")
        .dir("/sys/devices/virtual/net/br0/bridge")
        .dir("/sys/devices/virtual/net/br0/queues")
        .link("/sys/class/net/br0", "../../devices/virtual/net/br0")
        .file(
            "/proc/net/route",
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
             eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n",
        )
        .file("/proc/net/ipv6_route", "");
    tree
}

#[test]
fn virtio_nic_on_pci_has_driver_queues_and_vectors() {
    let tree = host_tree();
    let (nics, _) = nic::read(&tree.root());
    let names: Vec<&str> = nics.interfaces.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["br0", "eth0", "eth2", "lo"]);
    let eth0 = &nics.interfaces[1];
    assert_eq!(eth0.kind, NicKind::Physical);
    assert_eq!(
        eth0.driver.as_deref(),
        Some("virtio_net"),
        "from the driver link"
    );
    assert_eq!(eth0.bus_device.as_deref(), Some("0000:00:03.0"));
    assert_eq!(eth0.numa_node, None, "-1 is no node");
    assert_eq!(eth0.default_route, [IpFamily::Ipv4]);
    assert_eq!(eth0.rx_queues[0].rps_cpus, Some(CpuSet::new()));
    assert_eq!(eth0.tx_queues[0].xps_cpus, None);
    let queues: Vec<(u32, Option<QueueRef>)> = eth0.irqs.iter().map(|i| (i.irq, i.queue)).collect();
    let q = |direction, index| Some(QueueRef { direction, index });
    assert_eq!(
        queues,
        [
            (37, None),
            (38, q(Direction::Rx, 0)),
            (39, q(Direction::Tx, 0))
        ]
    );
    assert_eq!(
        eth0.coalescing,
        Some(Ethtool::NotAvailable(NotAvailable::NotLive))
    );
}

#[test]
fn physical_nic_with_sriov_and_steering() {
    let tree = host_tree();
    let (nics, unknowns) = nic::read(&tree.root());
    let eth2 = &nics.interfaces[2];
    assert_eq!(eth2.driver.as_deref(), Some("ixgbe"), "from uevent");
    assert_eq!(eth2.bus_device.as_deref(), Some("0000:03:00.0"));
    assert_eq!(eth2.numa_node, Some(1));
    assert_eq!(
        eth2.sriov,
        Some(Sriov {
            total_vfs: 63,
            enabled_vfs: 4
        })
    );
    assert_eq!(eth2.rx_queues.len(), 2);
    assert_eq!(eth2.rx_queues[1].rps_cpus, Some(CpuSet::from_ids([1])));
    assert_eq!(eth2.tx_queues[1].xps_cpus, None);
    let named: Vec<Option<&str>> = eth2.irqs.iter().map(|i| i.name.as_deref()).collect();
    assert_eq!(
        named,
        [Some("eth2-TxRx-0"), Some("eth2-TxRx-1"), Some("eth2")]
    );
    assert_eq!(eth2.irqs[1].queue.map(|q| q.index), Some(1));
    assert_eq!(nics.interfaces[0].kind, NicKind::Bridge);
    assert_eq!(nics.interfaces[3].kind, NicKind::Loopback);
    let objects: Vec<&str> = unknowns.iter().map(|u| u.object.as_str()).collect();
    assert_eq!(objects.len(), 1, "{unknowns:#?}");
    assert!(objects[0].starts_with("XPS CPUs of") && objects[0].ends_with("tx-1"));
    assert!(unknowns[0].path.ends_with("queues/tx-1/xps_cpus"));

    let steering = nics.findings_for(&CpuSet::from_ids([0, 1]));
    let evidence: Vec<&str> = steering.iter().map(|f| f.evidence.as_str()).collect();
    assert!(
        evidence.contains(&"RPS/XPS steer packet work onto CPUs 0-1"),
        "{evidence:?}"
    );
}

#[test]
fn missing_trees_and_files_are_unknown_not_fatal() {
    let (nics, unknowns) = nic::read(&Tree::new().root());
    assert!(nics.interfaces.is_empty());
    let objects: Vec<&str> = unknowns.iter().map(|u| u.object.as_str()).collect();
    assert_eq!(objects, ["network interfaces", "default route"]);

    let tree = host_tree();
    tree.file(&format!("{IXGBE_PCI}/numa_node"), "")
        .file(&format!("{IXGBE_PCI}/sriov_numvfs"), "many\n");
    let (nics, unknowns) = nic::read(&tree.root());
    assert_eq!(nics.interfaces[2].numa_node, None);
    assert_eq!(nics.interfaces[2].sriov, None);
    let objects: Vec<&str> = unknowns.iter().map(|u| u.object.as_str()).collect();
    assert!(objects.contains(&"NUMA node of eth2"), "{objects:?}");
    assert!(
        objects.contains(&"enabled SR-IOV VFs of eth2"),
        "{objects:?}"
    );
}

#[test]
#[ignore = "needs this machine: a KVM guest whose eth0 is a virtio NIC"]
fn live_host_eth0_is_the_default_route_virtio_nic() {
    let root = Root::default();
    let (nics, unknowns) = nic::read(&root);
    let eth0 = nics.interfaces.iter().find(|n| n.name == "eth0");
    let eth0 = eth0.expect("needs an eth0 on this host");
    assert!(unknowns.is_empty(), "{unknowns:#?}");
    assert!(eth0.default_route.contains(&IpFamily::Ipv4), "{eth0:#?}");
    assert_eq!(
        eth0.driver.as_deref(),
        Some("virtio_net"),
        "needs eth0 to be a virtio NIC (the KVM guest this test was written for)"
    );
    let rx0 = eth0.irqs.iter().find(|i| {
        i.queue
            == Some(QueueRef {
                direction: Direction::Rx,
                index: 0,
            })
    });
    let tx0 = eth0.irqs.iter().find(|i| {
        i.queue
            == Some(QueueRef {
                direction: Direction::Tx,
                index: 0,
            })
    });
    assert!(rx0.is_some() && tx0.is_some(), "{:#?}", eth0.irqs);
    assert!(rx0.unwrap().name.as_deref().unwrap().ends_with("-input.0"));
    assert!(!eth0.rx_queues.is_empty() && !eth0.tx_queues.is_empty());
    let coalescing = eth0
        .coalescing
        .expect("virtio_net answers ETHTOOL_GCOALESCE");
    assert!(coalescing.read().is_some(), "{coalescing:?}");
    let offloads = eth0
        .offloads
        .and_then(|o| o.read().copied())
        .expect("features readable");
    assert!(offloads.gro.is_some() && offloads.lro.is_some());
    let lo = nics.interfaces.iter().find(|n| n.name == "lo").unwrap();
    assert_eq!(lo.kind, NicKind::Loopback);
    assert_eq!(
        lo.coalescing,
        Some(Ethtool::NotAvailable(NotAvailable::NotSupported))
    );
}
