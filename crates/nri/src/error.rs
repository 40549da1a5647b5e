//! The crate's errors: [`WireError`] for bytes that break the framing, [`Error`] for a
//! connection, naming its socket and the message or call concerned.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

/// Bytes on the socket that break the multiplexer's or ttrpc's framing.
#[derive(Debug, Error)]
pub enum WireError {
    #[error("cannot read a frame: {0}")]
    Read(#[source] io::Error),
    #[error("a frame announces {0} bytes, over the multiplexer's limit of 16 MiB")]
    FrameTooLarge(usize),
    #[error("a ttrpc message of {0} bytes is over ttrpc's limit of 4 MiB")]
    MessageTooLarge(usize),
}

/// What went wrong on one connection to the runtime.
#[derive(Debug, Error)]
pub enum Error {
    #[error("NRI socket {}: cannot connect: {source}", socket.display())]
    Connect { socket: PathBuf, source: io::Error },
    #[error("NRI socket {}: cannot start the {thread} thread: {source}", socket.display())]
    Spawn {
        socket: PathBuf,
        thread: &'static str,
        source: io::Error,
    },
    #[error("NRI socket {}: {context}: {source}", socket.display())]
    Wire {
        socket: PathBuf,
        context: String,
        source: WireError,
    },
    #[error("NRI socket {}: cannot send {message}: {source}", socket.display())]
    Send {
        socket: PathBuf,
        message: String,
        source: io::Error,
    },
    #[error("NRI socket {}: {method}: no answer within {timeout:?}", socket.display())]
    Timeout {
        socket: PathBuf,
        method: &'static str,
        timeout: Duration,
    },
    #[error("NRI socket {}: {method}: the connection closed before the answer", socket.display())]
    Closed {
        socket: PathBuf,
        method: &'static str,
    },
    #[error("NRI socket {}: the runtime refused {method} (code {code}): {message}", socket.display())]
    Refused {
        socket: PathBuf,
        method: &'static str,
        code: i32,
        message: String,
    },
    #[error("NRI socket {}: cannot decode {what}: {source}", socket.display())]
    Decode {
        socket: PathBuf,
        what: String,
        source: prost::DecodeError,
    },
    #[error("NRI socket {}: unexpected ttrpc message of type {kind} on connection {conn}", socket.display())]
    Unexpected {
        socket: PathBuf,
        conn: u32,
        kind: u8,
    },
    #[error("NRI socket {}: the {thread} thread panicked", socket.display())]
    Panicked {
        socket: PathBuf,
        thread: &'static str,
    },
    #[error("plugin index {0} is not two decimal digits (0-99)")]
    InvalidIndex(u8),
    #[error("the plugin name is empty; the runtime refuses that")]
    EmptyName,
}
