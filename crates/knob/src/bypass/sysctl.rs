//! Host-wide bypass settings in single files: KVM halt polling and socket busy polling. Paths,
//! types and text forms are defined in [`nearnative_host::kernel::sysctl`].

use nearnative_host::kernel::sysctl::{BUSY_POLL, BUSY_READ, KVM_HALT_POLL_NS};
use nearnative_host::kernel::Fixed;

use crate::knob::fixed_file_knob;

fixed_file_knob!(
    /// How long (ns) a halted vCPU polls before its host thread sleeps; module-wide default.
    KvmHaltPollNs,
    Fixed<u32>,
    KVM_HALT_POLL_NS
);

fixed_file_knob!(
    /// `net.core.busy_poll`: µs poll() and select() spin on a socket; 0 = off.
    BusyPoll,
    Fixed<u32>,
    BUSY_POLL
);

fixed_file_knob!(
    /// `net.core.busy_read`: µs a blocking read spins; 0 = off.
    BusyRead,
    Fixed<u32>,
    BUSY_READ
);
