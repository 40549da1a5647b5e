//! Host-wide bypass settings in single files: KVM halt polling and socket busy polling.

use crate::knob::fixed_file_knob;

fixed_file_knob!(
    /// How long (ns) a halted vCPU polls before its host thread sleeps; module-wide default.
    KvmHaltPollNs,
    u32,
    "kvm halt_poll_ns",
    "/sys/module/kvm/parameters/halt_poll_ns"
);

fixed_file_knob!(
    /// `net.core.busy_poll`: µs poll() and select() spin on a socket; 0 = off.
    BusyPoll,
    u32,
    "net.core.busy_poll",
    "/proc/sys/net/core/busy_poll"
);

fixed_file_knob!(
    /// `net.core.busy_read`: µs a blocking read spins; 0 = off.
    BusyRead,
    u32,
    "net.core.busy_read",
    "/proc/sys/net/core/busy_read"
);
