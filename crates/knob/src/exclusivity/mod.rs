//! Exclusivity knobs: keep everything but the workload off its CPUs — thread affinity and
//! policy, cpuset cgroups, IRQ steering, and the housekeeping masks.

pub mod cgroup;
pub mod cgroup_v2;
pub mod housekeeping;
pub mod irq;
pub mod libvirt;
mod mask;
pub mod sched;
pub mod task;
