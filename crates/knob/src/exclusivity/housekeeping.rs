//! Host-wide masks that keep kernel housekeeping off the exclusive CPUs: the unbound workqueue
//! CPU mask, the lockup detector's CPUs and timer migration.

use nearnative_host::kernel::sysctl::{TIMER_MIGRATION, WATCHDOG_CPUMASK, WORKQUEUE_CPUMASK};
use nearnative_host::kernel::Fixed;
use nearnative_host::CpuSet;

use super::mask::mask_knob;
use crate::knob::fixed_file_knob;

mask_knob!(
    /// Where unbound workqueue work may run.
    WorkqueueCpumask,
    WORKQUEUE_CPUMASK
);

fixed_file_knob!(
    /// `kernel.watchdog_cpumask`: the CPUs the lockup detectors watch. On each, the soft lockup
    /// detector's hrtimer wakes the CPU's stopper thread every `2 × watchdog_thresh / 5` s, and
    /// the hard one (`nmi_watchdog`) arms a perf NMI. A CPU list; empty, no CPU watched, is a
    /// value the kernel takes.
    WatchdogCpumask,
    Fixed<CpuSet>,
    WATCHDOG_CPUMASK
);

fixed_file_knob!(
    /// `kernel.timer_migration`: whether timers may move to a busy CPU from an idle one.
    TimerMigration,
    Fixed<bool>,
    TIMER_MIGRATION
);
