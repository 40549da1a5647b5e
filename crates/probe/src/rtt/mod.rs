//! `probe rtt`: network round-trip time between a client and a server, over UDP or TCP.
//!
//! Two modes: closed-loop ping-pong (one message in flight) and fixed-rate open loop, whose
//! latencies count from each request's intended send time (wrk2's correction for coordinated
//! omission, see [`schedule`]) with the service time reported beside them. Both sides wait for
//! messages in one of three ways ([`Wait`]): a blocking receive, a spin on a non-blocking
//! receive, or a blocking receive with `SO_BUSY_POLL`. Every RTT is kept in ns in an HDR
//! histogram. The message format is in `docs/wire-format.md`; the server answers only
//! well-formed requests, counts everything else by reason, and runs in bounded memory.
//!
//! ```no_run
//! use nearnative_probe::rtt::{run_client, ClientConfig, Server, ServerConfig};
//! let server = Server::bind(ServerConfig::new("127.0.0.1:0"))?.spawn()?;
//! let report = run_client(&ClientConfig::new(server.local_addr().to_string()))?;
//! println!("p99 {} ns over {} samples", report.rtt_ns.p99, report.count);
//! server.stop()?;
//! # Ok::<(), nearnative_probe::rtt::RttError>(())
//! ```

mod client;
mod closed_loop;
mod config;
mod demo;
mod error;
mod exchange;
mod fixed_rate;
mod inflight;
mod link;
mod report;
pub mod schedule;
mod server;
mod server_stats;
mod server_tcp;
mod server_udp;
mod sockopt;
mod spectrum;
mod wait;
pub mod wire;

pub use client::{clock_read_cost_ns, run_client};
pub use config::{
    check_payload, ClientConfig, RunLength, ServerConfig, Transport, Wait, DEFAULT_BIND,
    DEFAULT_PORT, MAX_RATE,
};
pub use demo::{run_demo, DemoConfig, DemoRow, DEMO_RATE};
pub use error::RttError;
pub use report::{Histograms, Mode, RateReport, RttReport};
pub use server::{Server, ServerHandle, MAX_CONNECTIONS, SERVER_THREAD_NAME, STOP_CHECK_INTERVAL};
pub use server_stats::{MalformedCounts, ServerStats};
pub use server_tcp::{EVICTABLE_AFTER, IDLE_TIMEOUT, PARTIAL_TIMEOUT};
pub use spectrum::{percentile_csv, write_percentile_csv};
