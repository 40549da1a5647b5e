//! What an rtt client or server is asked to do, and the checks that refuse nonsense before any
//! socket is opened.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use nearnative_host::{CpuSet, Root};
use serde::{Deserialize, Serialize};

use super::wire::{HEADER_LEN, MAX_MESSAGE_LEN};
use super::RttError;
use nearnative_sys::pin::check_online;

/// The port `serve` listens on and the client assumes when none is given to `demo`.
pub const DEFAULT_PORT: u16 = 7600;
/// Loopback only by default: a probe server answers anyone who can reach it.
pub const DEFAULT_BIND: &str = "127.0.0.1:7600";
/// The highest fixed rate accepted: 10 M messages/s, beyond any single socket's reach.
pub const MAX_RATE: u64 = 10_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn name(&self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// How a thread waits for a message. The same three exist on the client and the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// A blocking `recv`: the thread sleeps, and the kernel's wake-up latency is in every RTT.
    Block,
    /// `recv` on a non-blocking socket in a loop: the CPU is burnt, the wake-up is gone.
    Spin,
    /// A blocking `recv` with `SO_BUSY_POLL` set to `budget_us`: the kernel polls the device
    /// queue for up to that long before sleeping. Only devices with NAPI honour it (not
    /// loopback); it needs `CAP_NET_ADMIN` to raise above `net.core.busy_read`.
    BusyPoll { budget_us: u32 },
}

impl Wait {
    pub fn name(&self) -> &'static str {
        match self {
            Wait::Block => "block",
            Wait::Spin => "spin",
            Wait::BusyPoll { .. } => "busy-poll",
        }
    }

    pub fn busy_poll_us(&self) -> Option<u32> {
        match self {
            Wait::BusyPoll { budget_us } => Some(*budget_us),
            _ => None,
        }
    }
}

/// When the measured part of a client run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunLength {
    Duration(Duration),
    /// This many requests (samples plus lost).
    Count(u64),
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `HOST:PORT` of the server.
    pub target: String,
    pub transport: Transport,
    pub wait: Wait,
    /// CPUs the client thread is pinned to before the warm-up; `None` leaves it unpinned.
    pub cpus: Option<CpuSet>,
    /// Message length in bytes, header included.
    pub payload: usize,
    /// Run this long before measuring; nothing from it is reported.
    pub warmup: Duration,
    pub length: RunLength,
    /// `None`: closed-loop ping-pong. `Some(n)`: fixed-rate open loop at n requests/s.
    pub rate: Option<u64>,
    /// A reply later than this after its send counts as lost.
    pub timeout: Duration,
}

impl ClientConfig {
    /// The defaults the CLI starts from: closed-loop UDP, 64 bytes, blocking, 5 s.
    pub fn new(target: impl Into<String>) -> ClientConfig {
        ClientConfig {
            target: target.into(),
            transport: Transport::Udp,
            wait: Wait::Block,
            cpus: None,
            payload: 64,
            warmup: Duration::from_millis(500),
            length: RunLength::Duration(Duration::from_secs(5)),
            rate: None,
            timeout: Duration::from_secs(1),
        }
    }

    /// Refuses arguments that cannot give a measurement, naming the argument.
    pub fn validate(&self, root: &Root) -> Result<(), RttError> {
        check_payload(self.payload)?;
        if let Some(rate) = self.rate {
            check_rate(rate)?;
        }
        match self.length {
            RunLength::Count(0) => return Err(bad("count", "must be at least 1")),
            RunLength::Duration(d) if d.is_zero() => {
                return Err(bad("duration", "must be longer than zero"))
            }
            _ => {}
        }
        if self.timeout.is_zero() {
            return Err(bad("timeout", "must be longer than zero"));
        }
        if let Some(cpus) = &self.cpus {
            check_online(cpus, root)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `HOST:PORT` to listen on.
    pub bind: String,
    pub transport: Transport,
    pub wait: Wait,
    /// CPUs the serving thread pins itself to before it answers anything.
    pub cpus: Option<CpuSet>,
}

impl ServerConfig {
    pub fn new(bind: impl Into<String>) -> ServerConfig {
        ServerConfig {
            bind: bind.into(),
            transport: Transport::Udp,
            wait: Wait::Block,
            cpus: None,
        }
    }

    pub fn validate(&self, root: &Root) -> Result<(), RttError> {
        if let Some(cpus) = &self.cpus {
            check_online(cpus, root)?;
        }
        Ok(())
    }
}

pub fn check_payload(payload: usize) -> Result<(), RttError> {
    if payload < HEADER_LEN {
        return Err(RttError::PayloadTooSmall {
            given: payload,
            min: HEADER_LEN,
        });
    }
    if payload > MAX_MESSAGE_LEN {
        return Err(RttError::PayloadTooLarge {
            given: payload,
            max: MAX_MESSAGE_LEN,
        });
    }
    Ok(())
}

fn check_rate(rate: u64) -> Result<(), RttError> {
    let reason = match rate {
        0 => "must be at least 1 message per second",
        r if r > MAX_RATE => "must be at most 10000000 messages per second",
        _ => return Ok(()),
    };
    Err(RttError::BadRate {
        rate,
        reason: reason.to_owned(),
    })
}

fn bad(what: &'static str, reason: &str) -> RttError {
    RttError::BadArgument {
        what,
        reason: reason.to_owned(),
    }
}

/// Resolves `HOST:PORT` to its first address, preferring IPv4 as the probe's loopback does.
pub fn resolve(text: &str) -> Result<SocketAddr, RttError> {
    if !text.contains(':') {
        return Err(RttError::BadAddress {
            text: text.to_owned(),
        });
    }
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|source| RttError::Resolve {
            text: text.to_owned(),
            source,
        })?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| RttError::BadAddress {
            text: text.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    type Change = Box<dyn Fn(&mut ClientConfig)>;

    #[test]
    fn refuses_bad_client_arguments() {
        let root = Root::default();
        let cases: Vec<(&str, Change, &str)> = vec![
            ("rate zero", Box::new(|c| c.rate = Some(0)), "rate 0/s"),
            (
                "tiny payload",
                Box::new(|c| c.payload = 8),
                "payload 8 bytes is too small",
            ),
            (
                "huge payload",
                Box::new(|c| c.payload = 70_000),
                "too large",
            ),
            (
                "count zero",
                Box::new(|c| c.length = RunLength::Count(0)),
                "count",
            ),
            (
                "no timeout",
                Box::new(|c| c.timeout = Duration::ZERO),
                "timeout",
            ),
            (
                "offline CPU",
                Box::new(|c| c.cpus = Some(CpuSet::from_ids([4000]))),
                "CPU 4000 is not online",
            ),
        ];
        for (what, change, want) in cases {
            let mut config = ClientConfig::new("127.0.0.1:1");
            change(&mut config);
            let err = config.validate(&root).unwrap_err().to_string();
            assert!(err.contains(want), "{what}: {err}");
        }
        ClientConfig::new("127.0.0.1:1").validate(&root).unwrap();
    }

    #[test]
    fn resolves_and_names_bad_addresses() {
        assert_eq!(resolve("127.0.0.1:80").unwrap().port(), 80);
        assert_eq!(resolve("localhost:81").unwrap().port(), 81);
        let err = resolve("127.0.0.1").unwrap_err().to_string();
        assert!(err.contains("\"127.0.0.1\": expected HOST:PORT"), "{err}");
        let err = resolve("127.0.0.1:99999").unwrap_err().to_string();
        assert!(err.contains("127.0.0.1:99999"), "{err}");
    }
}
