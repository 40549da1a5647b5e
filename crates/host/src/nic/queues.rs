//! A NIC's queues (`queues/rx-N`, `queues/tx-N` with their RPS/XPS CPU masks) and the IRQ
//! vectors that serve them.
//!
//! Drivers name their vectors after the interface or the bus device: `virtio2-input.0`,
//! `eth0-TxRx-3`, `i40e-eth0-TxRx-0`, `enp3s0f0-4`, `mlx5_comp7@pci:0000:03:00.0`. The
//! queue is read from the name's direction word and trailing index.

use serde::{Deserialize, Serialize};

use crate::collect::Collector;
use crate::CpuSet;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RxQueue {
    pub index: u32,
    /// CPUs that Receive Packet Steering hands this queue's packets to; empty = RPS off.
    /// `None` when the kernel has no RPS.
    pub rps_cpus: Option<CpuSet>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxQueue {
    pub index: u32,
    /// CPUs whose sends Transmit Packet Steering maps to this queue. `None` when the device
    /// is single-queue (the kernel then answers ENOENT) or has no XPS.
    pub xps_cpus: Option<CpuSet>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Rx,
    Tx,
    /// One vector for an rx/tx queue pair (`TxRx`, `comp`).
    Combined,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRef {
    pub direction: Direction,
    pub index: u32,
}

/// One IRQ vector of a NIC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicIrq {
    pub irq: u32,
    pub name: Option<String>,
    /// The queue it serves; `None` for config/misc vectors or names we cannot read.
    pub queue: Option<QueueRef>,
}

pub(crate) fn read_queues(collect: &mut Collector, net: &str) -> (Vec<RxQueue>, Vec<TxQueue>) {
    let dir = format!("{net}/queues");
    let names = collect.list_dir("queues", &dir).unwrap_or_default();
    let mut rx = Vec::new();
    let mut tx = Vec::new();
    for name in names {
        if let Some(index) = name.strip_prefix("rx-").and_then(|i| i.parse().ok()) {
            let rps_cpus = collect.parsed_if_present(
                format!("RPS CPUs of {net}/queues/{name}"),
                format!("{dir}/{name}/rps_cpus"),
                CpuSet::parse_mask,
            );
            rx.push(RxQueue { index, rps_cpus });
        } else if let Some(index) = name.strip_prefix("tx-").and_then(|i| i.parse().ok()) {
            let xps_cpus = collect.parsed_if_present(
                format!("XPS CPUs of {net}/queues/{name}"),
                format!("{dir}/{name}/xps_cpus"),
                CpuSet::parse_mask,
            );
            tx.push(TxQueue { index, xps_cpus });
        }
    }
    rx.sort_by_key(|q| q.index);
    tx.sort_by_key(|q| q.index);
    (rx, tx)
}

/// The queue an IRQ named `name` serves, for interface `ifname` on bus device `device`
/// (`virtio2` for virtio-net, the PCI address otherwise).
pub fn queue_of(name: &str, ifname: &str, device: Option<&str>) -> Option<QueueRef> {
    let base = name.split('@').next().unwrap_or(name);
    let owner_prefixes = [device.map(|d| format!("{d}-")), Some(format!("{ifname}-"))];
    let rest = owner_prefixes
        .iter()
        .flatten()
        .find_map(|prefix| base.strip_prefix(prefix.as_str()))
        .or_else(|| {
            let infix = format!("-{ifname}-");
            base.find(&infix).map(|at| &base[at + infix.len()..])
        })
        .unwrap_or(base);
    let digits_at = rest.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let index = rest[digits_at..].parse().ok()?;
    let word = rest[..digits_at].to_ascii_lowercase();
    let direction = if ["txrx", "rxtx", "comp", "combined", "queue"]
        .iter()
        .any(|w| word.contains(w))
        || word.chars().all(|c| !c.is_ascii_alphabetic())
    {
        Direction::Combined
    } else if word.contains("rx") || word.contains("input") {
        Direction::Rx
    } else if word.contains("tx") || word.contains("output") {
        Direction::Tx
    } else {
        return None;
    };
    Some(QueueRef { direction, index })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn queue_of_never_panics(name in ".{0,40}", ifname in ".{0,16}", device in ".{0,16}") {
            let _ = queue_of(&name, &ifname, Some(&device));
            let _ = queue_of(&name, &ifname, None);
        }
    }

    #[test]
    fn vector_names_map_to_queues() {
        use Direction::*;
        let q = |direction, index| Some(QueueRef { direction, index });
        let cases = [
            (
                "virtio rx",
                "virtio2-input.0",
                "eth0",
                Some("virtio2"),
                q(Rx, 0),
            ),
            (
                "virtio tx",
                "virtio2-output.3",
                "eth0",
                Some("virtio2"),
                q(Tx, 3),
            ),
            (
                "virtio config",
                "virtio2-config",
                "eth0",
                Some("virtio2"),
                None,
            ),
            ("ixgbe pair", "eth2-TxRx-7", "eth2", None, q(Combined, 7)),
            (
                "i40e pair",
                "i40e-eth0-TxRx-1",
                "eth0",
                None,
                q(Combined, 1),
            ),
            ("bare index", "enp3s0f0-4", "enp3s0f0", None, q(Combined, 4)),
            ("ena split", "ens5-rx-2", "ens5", None, q(Rx, 2)),
            (
                "mlx5 completion",
                "mlx5_comp7@pci:0000:03:00.0",
                "ens1f0",
                Some("0000:03:00.0"),
                q(Combined, 7),
            ),
            ("single vector", "eth0", "eth0", None, None),
            ("empty", "", "eth0", None, None),
            (
                "mlx5 async",
                "mlx5_async0@pci:0000:03:00.0",
                "ens1f0",
                None,
                None,
            ),
        ];
        for (what, name, ifname, device, want) in cases {
            assert_eq!(queue_of(name, ifname, device), want, "{what}");
        }
    }
}
