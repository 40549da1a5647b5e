//! The interrupt side of the noisy neighbour: a rate-bounded UDP flood over a veth pair of
//! its own, between two lab namespaces. Every datagram is a veth transmit and a softirq
//! receive, on whichever CPU the sender runs, which is what a busy neighbour's traffic costs
//! the host. The rate is paced per millisecond and capped at [`MAX_FLOOD_RATE`]; both threads
//! end by themselves at the deadline.

use std::io;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::netns::{enter, NetnsError};

/// The highest flood rate accepted, in datagrams per second.
pub const MAX_FLOOD_RATE: u64 = 500_000;
/// The sender's thread name.
pub const SENDER_THREAD_NAME: &str = "nn-flood-tx";
/// The receiver's thread name.
pub const RECEIVER_THREAD_NAME: &str = "nn-flood-rx";
/// The port the receiver drains (the discard service's).
pub const FLOOD_PORT: u16 = 9;
const TICK: Duration = Duration::from_millis(1);

#[derive(Debug, thiserror::Error)]
pub enum FloodError {
    #[error("flood rate {rate}/s is outside 1..={MAX_FLOOD_RATE}")]
    Rate { rate: u64 },
    #[error("flood payload {payload} bytes is outside 1..=1472 (one unfragmented datagram)")]
    Payload { payload: usize },
    #[error("cannot start thread {name}")]
    Spawn {
        name: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{name}: cannot enter its namespace")]
    Netns {
        name: &'static str,
        #[source]
        source: NetnsError,
    },
    #[error("{name}: {op} failed")]
    Socket {
        name: &'static str,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

/// Where and how hard to flood.
#[derive(Debug, Clone)]
pub struct Flood {
    pub sender_netns: String,
    pub sender: SocketAddrV4,
    pub receiver_netns: String,
    pub receiver: SocketAddrV4,
    pub rate: u64,
    pub payload: usize,
    pub deadline: Instant,
}

/// Refuses a rate or a payload the flood should not run with.
pub fn check(rate: u64, payload: usize) -> Result<(), FloodError> {
    if rate == 0 || rate > MAX_FLOOD_RATE {
        return Err(FloodError::Rate { rate });
    }
    if payload == 0 || payload > 1472 {
        return Err(FloodError::Payload { payload });
    }
    Ok(())
}

type Counter = JoinHandle<Result<u64, FloodError>>;

/// Starts the receiver, then the sender. Each result is its datagram count.
pub fn start(flood: &Flood, stop: &Arc<AtomicBool>) -> Result<(Counter, Counter), FloodError> {
    check(flood.rate, flood.payload)?;
    let (rx_flood, rx_stop) = (flood.clone(), Arc::clone(stop));
    let receiver = spawn(RECEIVER_THREAD_NAME, move || receive(&rx_flood, &rx_stop))?;
    let (tx_flood, tx_stop) = (flood.clone(), Arc::clone(stop));
    let sender = spawn(SENDER_THREAD_NAME, move || send(&tx_flood, &tx_stop))?;
    Ok((receiver, sender))
}

fn spawn(
    name: &'static str,
    work: impl FnOnce() -> Result<u64, FloodError> + Send + 'static,
) -> Result<Counter, FloodError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(work)
        .map_err(|source| FloodError::Spawn { name, source })
}

fn socket_in(name: &'static str, netns: &str, addr: SocketAddrV4) -> Result<UdpSocket, FloodError> {
    enter(netns).map_err(|source| FloodError::Netns { name, source })?;
    UdpSocket::bind(addr).map_err(|source| FloodError::Socket {
        name,
        op: "bind",
        source,
    })
}

fn send(flood: &Flood, stop: &AtomicBool) -> Result<u64, FloodError> {
    let socket = socket_in(SENDER_THREAD_NAME, &flood.sender_netns, flood.sender)?;
    let datagram = vec![0u8; flood.payload];
    let target = SocketAddr::V4(flood.receiver);
    let start = Instant::now();
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) && Instant::now() < flood.deadline {
        let due = due_by(flood.rate, start.elapsed());
        while sent < due {
            // A full queue or a missing neighbour entry drops the datagram; the flood only
            // needs to be bounded, not lossless.
            let _ = socket.send_to(&datagram, target);
            sent += 1;
        }
        std::thread::sleep(TICK);
    }
    Ok(sent)
}

/// How many datagrams a flood at `rate`/s has sent after `elapsed`.
pub fn due_by(rate: u64, elapsed: Duration) -> u64 {
    (u128::from(rate) * elapsed.as_nanos() / 1_000_000_000) as u64
}

fn receive(flood: &Flood, stop: &AtomicBool) -> Result<u64, FloodError> {
    let name = RECEIVER_THREAD_NAME;
    let socket = socket_in(name, &flood.receiver_netns, flood.receiver)?;
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|source| FloodError::Socket {
            name,
            op: "SO_RCVTIMEO",
            source,
        })?;
    let mut buffer = vec![0u8; 2048];
    let mut received = 0u64;
    while !stop.load(Ordering::Relaxed) && Instant::now() < flood.deadline {
        if socket.recv(&mut buffer).is_ok() {
            received += 1;
        }
    }
    Ok(received)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_by_elapsed_time_and_refuses_unbounded_floods() {
        assert_eq!(due_by(1000, Duration::from_millis(1500)), 1500);
        assert_eq!(due_by(MAX_FLOOD_RATE, Duration::ZERO), 0);
        assert!(check(0, 64).is_err());
        assert!(check(MAX_FLOOD_RATE + 1, 64).is_err());
        assert!(check(1000, 9000).is_err());
        check(1000, 64).unwrap();
    }
}
