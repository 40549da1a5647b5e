//! `nearnative daemon`: keeps declared workloads latency-sensitive from the moment they appear
//! until they exit (docs/daemon.md).
//!
//! The daemon is level-triggered: every event (a process exec or exit from the proc connector,
//! a pidfd turning readable, a `cgroup.events` change, a policy file edit, SIGHUP, a control
//! request, the periodic sweep) only wakes the reconcile loop, which compares the live host
//! with what the policies and the plans say and acts through the engine. It never trusts its
//! own memory of what it wrote.
//!
//! - [`policy`]: the policy files (`workloads.d/*.toml`), parsed.
//! - [`discover`]: the live instances the policies match on a host.
//! - [`events`]: the wake-up sources.
//! - [`reconcile`]: one round of the loop, decided (pure); `round` carries it out through the
//!   engine, `runner` waits for wake-ups, `daemon` starts and stops it all ([`run`]).
//! - [`readiness`]: when a starting VM is complete enough to plan.
//! - [`housekeeping`]: the daemon's own CPUs, and the free cores per node.
//! - [`book`]: what the loop remembers between rounds (refusals, drift, totals).
//! - [`handler`]: the daemon's answers on the control socket.
//! - [`libvirt`]: libvirt domains with the `<nn:latency>` switch, and the qemu hook.
//! - [`kubernetes`]: containers the NRI plugin admits, applied once they run.
//! - [`pending`]: the admissions of both not applied yet, counted by every apply.
//! - [`control`]: the root-only control socket the CLI talks to while the daemon runs.
//! - [`metrics`]: the Prometheus exposition on loopback.
//! - [`notify`]: systemd's readiness and watchdog protocol.
//! - [`status`]: what the daemon reports, shared by the control socket and the metrics.

pub mod book;
pub mod control;
mod daemon;
pub mod discover;
pub mod events;
pub mod handler;
mod held;
pub mod housekeeping;
pub mod kubernetes;
pub mod libvirt;
mod log;
pub mod metrics;
pub mod notify;
pub mod nri;
pub mod pending;
pub mod policy;
mod publish;
pub mod readiness;
pub mod reconcile;
mod round;
mod runner;
pub mod status;

pub use daemon::{run, DaemonConfig, DaemonError, PID_FILE};
