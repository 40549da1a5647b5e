//! `probe rtt demo`: a server on its own pinned thread and a client on another CPU, over
//! loopback, through the scenarios that show what the wait strategy and the mode do to latency.
//!
//! With two or more online CPUs the server runs on the second and the client on the first, the
//! placement `bench/vs-sockperf.sh` uses. On a single CPU both run unpinned and the spinning
//! scenario is skipped: two spinners on one CPU measure the scheduler, not the network.

use std::time::Duration;

use nearnative_host::cpus::online_cpus;
use nearnative_host::{CpuSet, Root};
use serde::{Deserialize, Serialize};

use super::config::{ClientConfig, RunLength, ServerConfig, Transport, Wait};
use super::report::RttReport;
use super::server::Server;
use super::{run_client, RttError};
use nearnative_sys::pin::PinError;

/// The fixed rate of the open-loop scenario: slow enough for any machine.
pub const DEMO_RATE: u64 = 10_000;
const CLIENT_THREAD_NAME: &str = "nn-rtt-client";

#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Measured time per scenario.
    pub duration: Duration,
    pub warmup: Duration,
    pub payload: usize,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            duration: Duration::from_secs(2),
            warmup: Duration::from_millis(300),
            payload: 64,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoRow {
    pub scenario: String,
    pub server_cpus: Option<String>,
    pub report: RttReport,
}

struct Scenario {
    name: &'static str,
    transport: Transport,
    wait: Wait,
    rate: Option<u64>,
}

pub fn run_demo(config: &DemoConfig) -> Result<Vec<DemoRow>, RttError> {
    let online = online_cpus(&Root::default()).map_err(PinError::Online)?;
    let ids: Vec<u32> = online.iter().collect();
    let placement = match ids.as_slice() {
        [client, server, ..] => Some((CpuSet::from_ids([*client]), CpuSet::from_ids([*server]))),
        _ => None,
    };
    scenarios(placement.is_some())
        .into_iter()
        .map(|scenario| run_scenario(config, &scenario, placement.as_ref()))
        .collect()
}

fn scenarios(two_cpus: bool) -> Vec<Scenario> {
    let mut list = vec![Scenario {
        name: "udp ping-pong, blocking",
        transport: Transport::Udp,
        wait: Wait::Block,
        rate: None,
    }];
    if two_cpus {
        list.push(Scenario {
            name: "udp ping-pong, spinning",
            transport: Transport::Udp,
            wait: Wait::Spin,
            rate: None,
        });
    }
    list.push(Scenario {
        name: "tcp ping-pong, blocking",
        transport: Transport::Tcp,
        wait: Wait::Block,
        rate: None,
    });
    list.push(Scenario {
        name: "udp 10k/s fixed rate, blocking",
        transport: Transport::Udp,
        wait: Wait::Block,
        rate: Some(DEMO_RATE),
    });
    list
}

fn run_scenario(
    config: &DemoConfig,
    scenario: &Scenario,
    placement: Option<&(CpuSet, CpuSet)>,
) -> Result<DemoRow, RttError> {
    let server = Server::bind(ServerConfig {
        bind: "127.0.0.1:0".into(),
        transport: scenario.transport,
        wait: scenario.wait,
        cpus: placement.map(|(_, server)| server.clone()),
    })?
    .spawn()?;
    let client = ClientConfig {
        transport: scenario.transport,
        wait: scenario.wait,
        cpus: placement.map(|(client, _)| client.clone()),
        payload: config.payload,
        warmup: config.warmup,
        length: RunLength::Duration(config.duration),
        rate: scenario.rate,
        ..ClientConfig::new(server.local_addr().to_string())
    };
    // The client pins its thread: give it one of its own, so the caller stays unpinned.
    let report = std::thread::Builder::new()
        .name(CLIENT_THREAD_NAME.into())
        .spawn(move || run_client(&client))
        .map_err(|source| RttError::Spawn {
            name: CLIENT_THREAD_NAME.into(),
            source,
        })?
        .join()
        .map_err(|_| RttError::Panicked {
            name: CLIENT_THREAD_NAME.into(),
        })?;
    server.stop()?;
    Ok(DemoRow {
        scenario: scenario.name.to_owned(),
        server_cpus: placement.map(|(_, server)| server.to_list()),
        report: report?,
    })
}
