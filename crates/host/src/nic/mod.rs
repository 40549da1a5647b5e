//! NICs from `/sys/class/net`: driver, NUMA node, queues and their IRQs, SR-IOV, the
//! default route, and — on the live host only — interrupt coalescing and LRO/GRO.
//!
//! An interface without a `device` link is virtual (lo, veth, bridge, tap, ifb). For a
//! physical one the bus device holding `numa_node`, `msi_irqs` and `sriov_*` is `device`
//! itself, or its parent when `device` is a virtio device on a PCI function.

pub mod ethtool;
mod findings;
mod queues;
pub mod route;

use std::path::Path;

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use crate::collect::Collector;
use crate::irq;
use crate::{Root, Unknown};
pub use queues::{queue_of, Direction, NicIrq, QueueRef, RxQueue, TxQueue};
pub use route::IpFamily;

const CLASS_NET: &str = "/sys/class/net";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nics {
    pub interfaces: Vec<Nic>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nic {
    pub name: String,
    pub kind: NicKind,
    /// The bound driver (`virtio_net`, `ixgbe`, `mlx5_core`); `None` for virtual interfaces.
    pub driver: Option<String>,
    /// The bus device that owns the vectors: a PCI address, or the device's own name.
    pub bus_device: Option<String>,
    /// `None` when the device reports no node (-1) or is virtual.
    pub numa_node: Option<u32>,
    pub rx_queues: Vec<RxQueue>,
    pub tx_queues: Vec<TxQueue>,
    pub irqs: Vec<NicIrq>,
    pub sriov: Option<Sriov>,
    /// The families for which this interface carries a default route.
    pub default_route: Vec<IpFamily>,
    /// `None` when the ioctl failed for a reason other than those in [`NotAvailable`].
    pub coalescing: Option<Ethtool<Coalescing>>,
    pub offloads: Option<Ethtool<Offloads>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NicKind {
    Physical,
    Loopback,
    Bridge,
    Bond,
    /// tun or tap.
    Tun,
    /// Any other software device: veth, ifb, vlan, macvlan, dummy...
    Virtual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sriov {
    pub total_vfs: u32,
    pub enabled_vfs: u32,
}

/// A value only the ethtool ioctl gives, or why there is none: "n/a", not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ethtool<T> {
    Read(T),
    NotAvailable(NotAvailable),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotAvailable {
    /// The root is a captured tree: ioctls would ask the machine we run on instead.
    NotLive,
    /// The driver does not implement the request (EOPNOTSUPP), as loopback and veth.
    NotSupported,
}

impl<T> Ethtool<T> {
    pub fn read(&self) -> Option<&T> {
        match self {
            Ethtool::Read(value) => Some(value),
            Ethtool::NotAvailable(_) => None,
        }
    }
}

/// Interrupt moderation: how long or how many packets the NIC waits before interrupting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coalescing {
    pub rx_usecs: u32,
    pub rx_frames: u32,
    pub tx_usecs: u32,
    pub tx_frames: u32,
    pub adaptive_rx: bool,
    pub adaptive_tx: bool,
}

/// Receive offloads that batch packets, trading latency for throughput. `None`: the
/// kernel has no such feature name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offloads {
    pub lro: Option<bool>,
    pub gro: Option<bool>,
    pub hw_gro: Option<bool>,
}

pub fn read(root: &Root) -> (Nics, Vec<Unknown>) {
    let mut collect = Collector::new(root);
    let names = collect
        .list_dir("network interfaces", CLASS_NET)
        .unwrap_or_default();
    let ipv4 = read_defaults(
        &mut collect,
        "/proc/net/route",
        route::ipv4_default_interfaces,
    );
    let ipv6 = read_defaults(
        &mut collect,
        "/proc/net/ipv6_route",
        route::ipv6_default_interfaces,
    );
    let socket = match root.is_live() {
        true => Some(ethtool::EthtoolSocket::open()),
        false => None,
    };
    let interfaces = names
        .iter()
        .map(|name| {
            let mut nic = read_nic(&mut collect, name);
            for (family, list) in [(IpFamily::Ipv4, &ipv4), (IpFamily::Ipv6, &ipv6)] {
                if list.iter().any(|n| n == name) {
                    nic.default_route.push(family);
                }
            }
            read_ethtool(&mut collect, &mut nic, socket.as_ref());
            nic
        })
        .collect();
    (Nics { interfaces }, collect.finish())
}

fn read_defaults(
    collect: &mut Collector,
    path: &str,
    parse: fn(&str) -> Vec<String>,
) -> Vec<String> {
    match collect.root.read_to_string(path) {
        Ok(text) => parse(&text),
        // A kernel built without IPv6 has no ipv6_route: no IPv6 default route, not unknown.
        Err(err) if err.is_not_found() && path.ends_with("ipv6_route") => Vec::new(),
        Err(err) => collect.failed("default route", &err).unwrap_or_default(),
    }
}

fn read_nic(collect: &mut Collector, name: &str) -> Nic {
    let net = format!("{CLASS_NET}/{name}");
    let device_link = format!("{net}/device");
    let has_device = collect.root.exists(&device_link);
    let (rx_queues, tx_queues) = queues::read_queues(collect, &net);
    let mut nic = Nic {
        name: name.to_owned(),
        kind: NicKind::Physical,
        driver: None,
        bus_device: None,
        numa_node: None,
        rx_queues,
        tx_queues,
        irqs: Vec::new(),
        sriov: None,
        default_route: Vec::new(),
        coalescing: None,
        offloads: None,
    };
    if !has_device {
        nic.kind = virtual_kind(collect.root, &net, name);
        return nic;
    }
    // uevent is read through the Root (so `capture` keeps it); the symlinks are the
    // fallback for snapshots taken without it.
    nic.driver = uevent_value(collect.root, &device_link, "DRIVER")
        .or_else(|| link_name(collect.root, &format!("{device_link}/driver")));
    let device_name = link_name(collect.root, &device_link);
    let bus_dir = bus_device_dir(collect.root, &device_link);
    nic.bus_device = bus_dir
        .as_deref()
        .and_then(|dir| {
            uevent_value(collect.root, dir, "PCI_SLOT_NAME")
                .or_else(|| canonical_name(collect.root, dir))
        })
        .or_else(|| device_name.clone());
    if let Some(bus_dir) = &bus_dir {
        nic.numa_node = collect
            .parsed(
                format!("NUMA node of {name}"),
                format!("{bus_dir}/numa_node"),
                |s| s.parse::<i32>(),
            )
            .and_then(|node| u32::try_from(node).ok());
        nic.sriov = read_sriov(collect, name, bus_dir);
        nic.irqs = vector_irqs(collect.root, bus_dir, name, device_name.as_deref());
    }
    nic
}

/// `device` when it holds `numa_node` (PCI), else its parent (virtio on PCI).
fn bus_device_dir(root: &Root, device_link: &str) -> Option<String> {
    [device_link.to_owned(), format!("{device_link}/..")]
        .into_iter()
        .find(|dir| root.exists(format!("{dir}/numa_node")))
}

fn virtual_kind(root: &Root, net: &str, name: &str) -> NicKind {
    let has = |entry: &str| root.exists(format!("{net}/{entry}"));
    // ARPHRD_LOOPBACK is 772.
    if name == "lo"
        || root
            .read_trimmed(format!("{net}/type"))
            .is_ok_and(|t| t == "772")
    {
        NicKind::Loopback
    } else if has("bridge") {
        NicKind::Bridge
    } else if has("bonding") {
        NicKind::Bond
    } else if has("tun_flags") {
        NicKind::Tun
    } else {
        NicKind::Virtual
    }
}

fn read_sriov(collect: &mut Collector, name: &str, bus_dir: &str) -> Option<Sriov> {
    let total_path = format!("{bus_dir}/sriov_totalvfs");
    let count = |s: &str| s.parse::<u32>();
    let total_vfs =
        collect.parsed_if_present(format!("SR-IOV VFs of {name}"), total_path, count)?;
    let enabled_vfs = collect.parsed(
        format!("enabled SR-IOV VFs of {name}"),
        format!("{bus_dir}/sriov_numvfs"),
        count,
    )?;
    Some(Sriov {
        total_vfs,
        enabled_vfs,
    })
}

/// The device's MSI/MSI-X vectors; for a device without them (legacy INTx, or a captured
/// tree without `msi_irqs`), the IRQs whose action names the interface.
fn vector_irqs(root: &Root, bus_dir: &str, ifname: &str, device: Option<&str>) -> Vec<NicIrq> {
    let numbers: Vec<u32> = match root.list_dir(format!("{bus_dir}/msi_irqs")) {
        Ok(names) => names.iter().filter_map(|n| n.parse().ok()).collect(),
        Err(_) => irqs_naming(root, ifname),
    };
    let mut irqs: Vec<NicIrq> = numbers
        .into_iter()
        .map(|number| {
            let name = irq::action_names(root, number).into_iter().next();
            let queue = name.as_deref().and_then(|n| queue_of(n, ifname, device));
            NicIrq {
                irq: number,
                name,
                queue,
            }
        })
        .collect();
    irqs.sort_by_key(|i| i.irq);
    irqs
}

fn irqs_naming(root: &Root, ifname: &str) -> Vec<u32> {
    let own = |action: &str| {
        action == ifname
            || action.starts_with(&format!("{ifname}-"))
            || action.contains(&format!("-{ifname}-"))
    };
    root.list_dir("/sys/kernel/irq")
        .unwrap_or_default()
        .iter()
        .filter_map(|n| n.parse::<u32>().ok())
        .filter(|&n| irq::action_names(root, n).iter().any(|a| own(a)))
        .collect()
}

fn read_ethtool(
    collect: &mut Collector,
    nic: &mut Nic,
    socket: Option<&Result<ethtool::EthtoolSocket, Errno>>,
) {
    let socket = match socket {
        None => {
            nic.coalescing = Some(Ethtool::NotAvailable(NotAvailable::NotLive));
            nic.offloads = Some(Ethtool::NotAvailable(NotAvailable::NotLive));
            return;
        }
        Some(Err(errno)) => {
            let reason = format!("cannot open a socket for ethtool: {errno}");
            let object = format!("ethtool values of {}", nic.name);
            collect.malformed(object, format!("{CLASS_NET}/{}", nic.name), reason);
            return;
        }
        Some(Ok(socket)) => socket,
    };
    let name = nic.name.clone();
    nic.coalescing = ethtool_outcome(collect, &name, "coalescing", socket.coalescing(&name));
    nic.offloads = ethtool_outcome(collect, &name, "offloads", socket.offloads(&name));
}

fn ethtool_outcome<T>(
    collect: &mut Collector,
    ifname: &str,
    what: &str,
    result: Result<T, Errno>,
) -> Option<Ethtool<T>> {
    match result {
        Ok(value) => Some(Ethtool::Read(value)),
        Err(Errno::EOPNOTSUPP) => Some(Ethtool::NotAvailable(NotAvailable::NotSupported)),
        Err(errno) => {
            let object = format!("{what} of {ifname}");
            let reason = format!("SIOCETHTOOL: {}", errno.desc());
            collect.malformed(object, format!("{CLASS_NET}/{ifname}"), reason);
            None
        }
    }
}

/// `KEY=value` from a device's `uevent` file.
fn uevent_value(root: &Root, device_dir: &str, key: &str) -> Option<String> {
    let text = root.read_to_string(format!("{device_dir}/uevent")).ok()?;
    text.lines()
        .filter_map(|line| line.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// The last component of a symlink's target (`../../bus/virtio/drivers/virtio_net`).
fn link_name(root: &Root, host_path: &str) -> Option<String> {
    let target = root.read_link(host_path).ok()?;
    file_name(&target)
}

fn canonical_name(root: &Root, host_path: &str) -> Option<String> {
    let path = root.canonicalize(host_path).ok()?;
    file_name(&path)
}

fn file_name(path: &Path) -> Option<String> {
    path.file_name()?.to_str().map(str::to_owned)
}
