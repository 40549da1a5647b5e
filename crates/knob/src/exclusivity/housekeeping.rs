//! Host-wide masks that keep kernel housekeeping off the exclusive CPUs: the unbound workqueue
//! CPU mask and timer migration.

use nearnative_host::kernel::sysctl::{TIMER_MIGRATION, WORKQUEUE_CPUMASK};
use nearnative_host::kernel::Fixed;

use super::mask::mask_knob;
use crate::knob::fixed_file_knob;

mask_knob!(
    /// Where unbound workqueue work may run.
    WorkqueueCpumask,
    WORKQUEUE_CPUMASK
);

fixed_file_knob!(
    /// `kernel.timer_migration`: whether timers may move to a busy CPU from an idle one.
    TimerMigration,
    Fixed<bool>,
    TIMER_MIGRATION
);
