//! One cell: a path measured in one condition and configuration by three runs, each on the
//! lab's measured threads: a closed-loop rtt run, a fixed-rate run, and a spin-loop jitter
//! run on the client's CPU.
//!
//! Every run of every cell uses the same payload, timing and CPU numbers; only the waits
//! differ, as the placement says (see [`super::placement`]). The jitter run's spinning thread
//! is started by the client thread itself, so it inherits the client's cpuset cgroup and
//! affinity: under the latency-sensitive apply it spins on the exclusive CPU, fenced like the
//! client, without an apply of its own; in the default configuration it spins on the same CPU
//! number, unprotected.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use nearnative_host::CpuSet;
use nearnative_probe::jitter::{self, JitterConfig, JitterReport};
use nearnative_probe::rtt::{
    run_client, ClientConfig, RttReport, RunLength, Server, ServerConfig, Transport,
};

use super::error::ExperimentError;
use super::options::Timing;
use super::placement::Placement;
use super::progress::Progress;
use crate::path::NetPath;
use crate::report::{Condition, Config, FixedRate, Jitter, Row};
use crate::worker::Worker;

/// Message length of every rtt run, header included: a small order, as trading systems send.
pub const PAYLOAD: usize = 64;
/// Requests per second of the fixed-rate run: a steady load well within what even the
/// default configuration sustains under noise, so its tail shows stalls, not overload.
pub const FIXED_RATE: u64 = 10_000;
/// A reply later than this counts as lost.
const TIMEOUT: Duration = Duration::from_secs(1);

/// What every cell of a run shares.
pub struct CellRunner<'a> {
    pub client: &'a Worker,
    pub server: &'a Worker,
    pub timing: Timing,
    pub progress: &'a dyn Progress,
    pub stop: &'static AtomicBool,
}

/// One cell to measure.
pub struct Cell<'a> {
    pub path: &'a NetPath,
    pub condition: Condition,
    pub config: Config,
    pub placement: &'a Placement,
}

impl Cell<'_> {
    pub fn name(&self) -> String {
        format!(
            "{} {} {}",
            self.path.layer.name(),
            self.condition.name(),
            self.config.name()
        )
    }
}

impl CellRunner<'_> {
    /// Measures `cell`: its three runs, as one report row.
    pub fn measure(&self, cell: &Cell) -> Result<Row, ExperimentError> {
        let timing = self.timing;
        let closed = self.rtt(cell, "closed-loop", None, timing.closed_loop)?;
        let fixed = self.rtt(cell, "fixed-rate", Some(FIXED_RATE), timing.fixed_rate)?;
        let cpu = cell.placement.jitter_cpu();
        let jitter = self.jitter(cell, cpu)?;
        let mut row = Row::new(cell.path.layer, cell.condition, cell.config, &closed);
        row.fixed_rate = FixedRate::from_run(&fixed);
        row.jitter = Jitter::from_report(&jitter, cpu);
        Ok(row)
    }

    /// One rtt run: a server on the server thread inside the path's server namespace, the
    /// client on the client thread inside the client's.
    fn rtt(
        &self,
        cell: &Cell,
        run: &'static str,
        rate: Option<u64>,
        length: Duration,
    ) -> Result<RttReport, ExperimentError> {
        self.begin(cell, run)?;
        let wait = cell.placement.wait(cell.config);
        let failed = |source| ExperimentError::Rtt {
            cell: cell.name(),
            run,
            source,
        };
        let server = ServerConfig {
            bind: SocketAddr::new(cell.path.server_ip, 0).to_string(),
            transport: Transport::Udp,
            wait,
            cpus: Some(cell.placement.server.clone()),
        };
        let server_stop = Arc::new(AtomicBool::new(false));
        let serving_stop = Arc::clone(&server_stop);
        let (bound_sender, bound) = mpsc::sync_channel(1);
        let serving = self
            .server
            .submit(cell.path.server_netns.as_deref(), move || {
                let server = Server::bind(server)?;
                let _ = bound_sender.send(server.local_addr());
                server.run(&serving_stop)
            })?;
        let Ok(target) = bound.recv() else {
            // The server ended before it was bound: its own error says why.
            return Err(match serving.wait(self.stop)? {
                Err(source) => failed(source),
                Ok(_) => ExperimentError::Interrupted,
            });
        };
        let client = ClientConfig {
            target: target.to_string(),
            transport: Transport::Udp,
            wait,
            cpus: Some(cell.placement.client.clone()),
            payload: PAYLOAD,
            warmup: self.timing.warmup,
            length: RunLength::Duration(length),
            rate,
            timeout: TIMEOUT,
        };
        let measured = self
            .client
            .submit(cell.path.client_netns.as_deref(), move || {
                run_client(&client)
            })?
            .wait(self.stop);
        server_stop.store(true, Ordering::Relaxed);
        let served = serving.wait(self.stop);
        let report = measured?.map_err(failed)?;
        served?.map_err(failed)?;
        self.progress.run_done();
        Ok(report)
    }

    /// The spin-loop jitter run on `cpu`, started from the client thread (see the module
    /// doc).
    fn jitter(&self, cell: &Cell, cpu: u32) -> Result<JitterReport, ExperimentError> {
        self.begin(cell, "jitter")?;
        let config = JitterConfig::spin(CpuSet::from_ids([cpu]), self.timing.jitter);
        let stop = self.stop;
        let report = self
            .client
            .submit(None, move || jitter::run(&config, stop))?
            .wait(self.stop)?
            .map_err(|source| ExperimentError::Jitter {
                cell: cell.name(),
                source,
            })?;
        self.progress.run_done();
        Ok(report)
    }

    fn begin(&self, cell: &Cell, run: &str) -> Result<(), ExperimentError> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(ExperimentError::Interrupted);
        }
        self.progress.step(&format!("{}: {run}", cell.name()));
        Ok(())
    }
}
