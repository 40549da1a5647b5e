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

pub mod api;
pub mod connection;
mod error;
pub mod mux;
pub mod plugin;
pub mod ttrpc;

pub use connection::{Connection, RuntimeClient};
pub use error::{Error, WireError};
pub use plugin::{Plugin, Refusal};
