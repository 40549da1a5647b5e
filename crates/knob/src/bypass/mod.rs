//! Bypass knobs: let an idle CPU wake fast and let packets through without batching — PM QoS
//! resume latency, the cpufreq governor, KVM halt polling, socket busy polling, NIC interrupt
//! coalescing and receive offloads.

pub mod nic;
pub mod power;
pub mod sysctl;
