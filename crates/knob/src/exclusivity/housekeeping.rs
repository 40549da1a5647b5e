//! Host-wide masks that keep kernel housekeeping off the exclusive CPUs: the unbound workqueue
//! CPU mask and timer migration.

use super::mask::mask_knob;
use crate::knob::fixed_file_knob;

mask_knob!(
    /// Where unbound workqueue work may run.
    WorkqueueCpumask,
    "unbound workqueue CPU mask",
    "/sys/devices/virtual/workqueue/cpumask"
);

fixed_file_knob!(
    /// `kernel.timer_migration`: whether timers may move to a busy CPU from an idle one.
    TimerMigration,
    bool,
    "kernel.timer_migration",
    "/proc/sys/kernel/timer_migration"
);
