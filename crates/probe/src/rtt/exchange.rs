//! The client's per-run state shared by both modes: the link, the preallocated request and
//! reply buffers, the session id and the sequence counter, and the counts they produce.

use std::io;
use std::net::SocketAddr;

use super::config::Wait;
use super::link::Link;
use super::wire;
use super::RttError;

pub struct Exchange {
    pub link: Link,
    pub wait: Wait,
    pub peer: SocketAddr,
    /// The request, `payload` bytes, header written once; only sequence and time change.
    pub request: Vec<u8>,
    /// One byte longer than a reply, so a longer (foreign) datagram is seen as such.
    pub reply: Vec<u8>,
    pub session: u32,
    pub next_sequence: u64,
    pub timeout_ns: u64,
}

/// Counts of one phase. Invariant once a phase has drained: `count + lost == sent`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub sent: u64,
    pub count: u64,
    pub lost: u64,
    pub late: u64,
    pub stale: u64,
}

impl Exchange {
    pub fn new(link: Link, wait: Wait, peer: SocketAddr, payload: usize, timeout_ns: u64) -> Self {
        let session = session_id();
        let mut request = vec![0; payload];
        wire::init_request(&mut request, session);
        Exchange {
            link,
            wait,
            peer,
            request,
            reply: vec![0; payload + 1],
            session,
            next_sequence: 0,
            timeout_ns,
        }
    }

    /// Maps a failed socket call to an error naming the peer; a closed stream gets its own.
    pub fn io_error(&self, op: &'static str, e: io::Error) -> RttError {
        match e.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => RttError::Closed {
                addr: self.peer.to_string(),
            },
            _ => RttError::socket(op, self.peer, e),
        }
    }
}

/// A run's id on the wire, so replies to an earlier run (or another client on the same
/// port after a restart) are told apart. Unique enough: time and pid mixed.
fn session_id() -> u32 {
    let t = crate::clock::now_ns();
    (t as u32) ^ ((t >> 32) as u32) ^ std::process::id().rotate_left(16)
}
