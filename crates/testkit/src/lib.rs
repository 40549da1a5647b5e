//! Test-only helpers shared by the plan and apply test suites: the real host snapshots under
//! `shared/fixtures/hosts` (extracted once per build directory, because extraction is slow)
//! synthetic topologies of any shape, built in memory, hand-built hosts on them ([`hosts`]),
//! furnished trees compared byte for byte ([`tree`]), and, with the feature `cri`, a private
//! containerd with NRI that tests drive as kubelet through a CRI client ([`containerd`], [`cri`]).
//!
//! Panicking is the right response to a broken or missing fixture here: this crate is never
//! shipped. The helpers are `#[track_caller]`, so the one-line message ("needs the hwloc host
//! snapshots at ...: absent", "needs QEMU: ...") points at the test that asked.

#[cfg(feature = "cri")]
pub mod containerd;
#[cfg(feature = "cri")]
pub mod cri;
pub mod fixtures;
pub mod hosts;
pub mod libvirt;
pub mod line_worker;
mod process;
pub mod prometheus;
pub mod qemu;
pub mod synthetic;
pub mod tree;

#[cfg(feature = "cri")]
pub use containerd::{Containerd, Pod};
pub use fixtures::{extract, find_hosts_dir, hosts_dir, shared, topology, Snapshot, SNAPSHOTS};
pub use libvirt::{small_domain, Libvirtd};
pub use line_worker::LineWorker;
pub use qemu::{PausedQemu, QemuOptions};
pub use synthetic::Shape;
