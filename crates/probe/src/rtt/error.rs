//! Everything that can stop an rtt client or server, each naming the address, CPU or argument
//! at fault. A variant with a `#[source]` leaves the reason to that source, so printing the
//! chain (`{:#}` in the binary) gives one line with no repetition.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use nearnative_sys::pin::PinError;

#[derive(Debug, thiserror::Error)]
pub enum RttError {
    #[error("address {text:?}: expected HOST:PORT")]
    BadAddress { text: String },
    #[error("cannot resolve {text}")]
    Resolve {
        text: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot bind {addr}")]
    Bind {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot connect to {addr}")]
    Connect {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("no reply from {addr} within {timeout:?}: is `nearnative probe rtt serve` running there with the same transport?")]
    NoReply { addr: String, timeout: Duration },
    #[error("{addr} closed the connection")]
    Closed { addr: String },
    #[error(transparent)]
    Cpu(#[from] PinError),
    #[error("rate {rate}/s: {reason}")]
    BadRate { rate: u64, reason: String },
    #[error(
        "payload {given} bytes is too small: a probe message needs at least {min} (its header)"
    )]
    PayloadTooSmall { given: usize, min: usize },
    #[error("payload {given} bytes is too large: at most {max}")]
    PayloadTooLarge { given: usize, max: usize },
    #[error("{what}: {reason}")]
    BadArgument { what: &'static str, reason: String },
    #[error("{op} on {addr}")]
    Socket {
        op: &'static str,
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot write histogram to {path}")]
    HistogramOut {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot start thread {name}")]
    Spawn {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("thread {name} panicked")]
    Panicked { name: String },
}

impl RttError {
    /// A socket call that failed, with the operation and the local or peer address.
    pub(crate) fn socket(op: &'static str, addr: impl ToString, source: io::Error) -> RttError {
        RttError::Socket {
            op,
            addr: addr.to_string(),
            source,
        }
    }
}
