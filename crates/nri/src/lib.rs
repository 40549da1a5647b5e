//! nearnative as a Node Resource Interface (NRI) plugin: the protocol foundation.
//!
//! The plugin dials the runtime's NRI socket (containerd's `/var/run/nri/nri.sock`) and
//! speaks ttrpc over it, multiplexed both ways: the runtime calls the plugin's
//! [`Plugin`] service on one logical connection, the plugin calls the runtime's Runtime service
//! (RegisterPlugin, UpdateContainers) on the other. Layers, bottom up:
//!
//! - [`mux`]: the multiplexer's frames on the socket.
//! - [`ttrpc`]: ttrpc's message header and Request/Response envelope.
//! - [`api`]: our schema of the NRI v0.6.1 messages (containerd 1.7).
//! - [`connection`]: one live connection, its reader thread, calls matched to answers by
//!   stream id, and the Plugin service served to a [`Plugin`].
//!
//! nearnative's own plugin on top:
//!
//! - [`annotations`]: which containers of a pod are latency-sensitive, at which level, on
//!   how many cores.
//! - [`fence`]: the cpusets that follow (pure).
//! - [`admission`]: what the plugin needs of whoever holds the cores (the engine's ledger).
//! - [`nri_plugin`]: [`NriPlugin`], the [`Plugin`] that puts them together, and its
//!   [`Refencer`].
//! - [`runner`]: [`Runner`], connection after connection with backoff, until stopped.
//! - [`kubelet`]: whether kubelet's CPU manager would fight the fence.

pub mod admission;
pub mod annotations;
pub mod api;
pub mod connection;
mod error;
pub mod fence;
pub mod kubelet;
pub mod mux;
pub mod nri_plugin;
pub mod plugin;
pub mod runner;
pub mod ttrpc;

pub use admission::{AdmissionBackend, ContainerKey};
pub use connection::{Closer, Connection, RuntimeClient};
pub use error::{Error, WireError};
pub use fence::Grant;
pub use nri_plugin::{NriPlugin, Refencer};
pub use plugin::{Plugin, Refusal};
pub use runner::{Runner, Settings};
