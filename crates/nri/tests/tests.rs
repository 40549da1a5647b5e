//! The plugin's side of NRI against a fake runtime that speaks the wire by hand, and (needs
//! root) against a real containerd 1.7.

mod captured;
mod deploy;
mod fake_runtime;
mod live_containerd;
mod nri_plugin;
mod runner;
mod session;
