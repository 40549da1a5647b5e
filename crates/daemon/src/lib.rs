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
//! - [`reconcile`]: the loop itself, over the engine.
//! - [`control`]: the root-only control socket the CLI talks to while the daemon runs.
//! - [`metrics`]: the Prometheus exposition on loopback.
//! - [`notify`]: systemd's readiness and watchdog protocol.
//! - [`status`]: what the daemon reports, shared by the control socket and the metrics.

pub mod book;
pub mod control;
pub mod discover;
pub mod events;
pub mod housekeeping;
pub mod metrics;
pub mod notify;
pub mod policy;
pub mod readiness;
pub mod reconcile;
pub mod status;
