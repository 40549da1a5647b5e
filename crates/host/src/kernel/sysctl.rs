//! Host-wide single files outside memory: timer migration, the lockup detectors, RT
//! throttling, socket busy polling, the unbound workqueue mask, and KVM's halt polling.

use serde::{Deserialize, Serialize};

use super::{Fixed, FixedMask, KernelValue};
use crate::CpuSet;

/// `kernel.timer_migration`: whether timers may move to a busy CPU from an idle one.
pub const TIMER_MIGRATION: Fixed<bool> =
    Fixed::new("kernel.timer_migration", "/proc/sys/kernel/timer_migration");

/// `kernel.watchdog`: the soft and hard lockup detectors together.
pub const WATCHDOG: Fixed<bool> = Fixed::new("kernel.watchdog", "/proc/sys/kernel/watchdog");

pub const NMI_WATCHDOG: Fixed<bool> =
    Fixed::new("kernel.nmi_watchdog", "/proc/sys/kernel/nmi_watchdog");

/// `kernel.watchdog_cpumask`: despite its name, in list form; empty when no CPU is watched.
pub const WATCHDOG_CPUMASK: Fixed<CpuSet> = Fixed::new(
    "kernel.watchdog_cpumask",
    "/proc/sys/kernel/watchdog_cpumask",
);

pub const SCHED_RT_RUNTIME: Fixed<RtRuntime> = Fixed::new(
    "kernel.sched_rt_runtime_us",
    "/proc/sys/kernel/sched_rt_runtime_us",
);

/// `kernel.sched_rt_period_us`, in microseconds.
pub const SCHED_RT_PERIOD_US: Fixed<u64> = Fixed::new(
    "kernel.sched_rt_period_us",
    "/proc/sys/kernel/sched_rt_period_us",
);

/// `net.core.busy_poll`: µs poll() and select() spin on a socket; 0 = off.
pub const BUSY_POLL: Fixed<u32> = Fixed::new("net.core.busy_poll", "/proc/sys/net/core/busy_poll");

/// `net.core.busy_read`: µs a blocking read spins; 0 = off.
pub const BUSY_READ: Fixed<u32> = Fixed::new("net.core.busy_read", "/proc/sys/net/core/busy_read");

/// Where unbound workqueue work may run.
pub const WORKQUEUE_CPUMASK: FixedMask = FixedMask::new(
    "unbound workqueue CPU mask",
    "/sys/devices/virtual/workqueue/cpumask",
);

/// How long (ns) a halted vCPU polls before its host thread sleeps; the module-wide default.
/// The kernel's parameter is an `unsigned int`.
pub const KVM_HALT_POLL_NS: Fixed<u32> = Fixed::new(
    "kvm halt_poll_ns",
    "/sys/module/kvm/parameters/halt_poll_ns",
);

/// `kernel.sched_rt_runtime_us`: how much of each period RT tasks may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RtRuntime {
    /// `-1`: RT tasks are never throttled.
    Unlimited,
    Microseconds(u64),
}

impl KernelValue for RtRuntime {
    fn parse(text: &str) -> Result<Self, String> {
        match text {
            "-1" => Ok(RtRuntime::Unlimited),
            other => other
                .parse()
                .map(RtRuntime::Microseconds)
                .map_err(|_| "neither -1 nor microseconds".to_owned()),
        }
    }
    fn format(&self) -> String {
        match self {
            RtRuntime::Unlimited => "-1".to_owned(),
            RtRuntime::Microseconds(us) => us.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::tests::round_trip;
    use crate::kernel::KernelFile;

    #[test]
    fn sysctls_round_trip_in_kernel_form() {
        assert!(round_trip(&TIMER_MIGRATION, "1\n", "1"));
        assert_eq!(round_trip(&BUSY_POLL, "50\n", "50"), 50);
        assert_eq!(
            round_trip(&SCHED_RT_RUNTIME, "-1\n", "-1"),
            RtRuntime::Unlimited
        );
        assert_eq!(
            round_trip(&SCHED_RT_RUNTIME, "950000\n", "950000"),
            RtRuntime::Microseconds(950000)
        );
        assert!(SCHED_RT_RUNTIME.parse("-2").is_err());
        assert_eq!(
            round_trip(&WATCHDOG_CPUMASK, "0-3,8\n", "0-3,8"),
            CpuSet::from_ids([0, 1, 2, 3, 8])
        );
        // The kernel shows a watchdog that watches no CPU as an empty line, and takes one.
        assert_eq!(round_trip(&WATCHDOG_CPUMASK, "\n", ""), CpuSet::new());
    }

    #[test]
    fn halt_poll_ns_is_the_kernels_unsigned_int() {
        assert_eq!(round_trip(&KVM_HALT_POLL_NS, "200000\n", "200000"), 200_000);
        assert_eq!(KVM_HALT_POLL_NS.parse("4294967295"), Ok(u32::MAX));
        assert!(KVM_HALT_POLL_NS.parse("4294967296").is_err());
    }
}
