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
//!
//! While the jitter run spins, verify's sampler watches the same CPU from a housekeeping CPU
//! (see [`nearnative_verify::sample_notifying`]): the window opens before the probe starts
//! and closes when it ends, so the interrupts, softirqs and foreign threads it counts are set
//! against the time the probe saw stolen ([`nearnative_verify::attribute`]). The window is a
//! few milliseconds longer than the probe's run (starting the spinner, joining it): the
//! probe's stolen time is taken at its rate over the whole window, and what runs there
//! meanwhile is counted too, so a thread that takes the CPU whenever the probe is not there
//! (a hog pinned to it) can show a little over 100% of the stolen time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use nearnative_host::{CpuSet, Root};
use nearnative_probe::jitter::{self, JitterConfig, JitterReport};
use nearnative_probe::rtt::{
    run_client, ClientConfig, RttReport, RunLength, Server, ServerConfig, Transport,
};
use nearnative_verify::{
    attribute, sample_notifying, EventCosts, ForeignThread, Interference, Probe, Sample,
    SampleSpec, Scope,
};

use super::error::ExperimentError;
use super::options::Timing;
use super::placement::{Measured, Placement};
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
/// How much longer than the jitter run the sampler may watch, should the run not return (it
/// is normally stopped the moment the run ends).
const WINDOW_SLACK: Duration = Duration::from_secs(5);

/// What every cell of a run shares.
pub struct CellRunner<'a> {
    pub client: &'a Worker,
    pub server: &'a Worker,
    /// The measured threads: the sampler's targets, never counted as interference.
    pub measured: &'a Measured,
    /// The lab's cgroup: threads in it are the lab's own (`in_scope`), others are not.
    pub scope: &'a str,
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
        let (jitter, interference) = self.jitter(cell, cpu)?;
        let mut row = Row::new(cell.path.layer, cell.condition, cell.config, &closed);
        row.fixed_rate = FixedRate::from_run(&fixed);
        row.jitter = Jitter::from_report(&jitter, cpu);
        row.interference = interference;
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
            cpus: cell.placement.server_cpus(cell.config),
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
            cpus: cell.placement.client_cpus(cell.config),
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
    /// doc), and what interrupted `cpu` meanwhile; `None` when the sampler could not run.
    fn jitter(
        &self,
        cell: &Cell,
        cpu: u32,
    ) -> Result<(JitterReport, Option<Interference>), ExperimentError> {
        self.begin(cell, "jitter")?;
        let config = JitterConfig::spin(CpuSet::from_ids([cpu]), self.timing.jitter);
        let spec = self.sample_spec(cpu);
        let window_closed = AtomicBool::new(false);
        let (report, sample) = std::thread::scope(|threads| {
            let (opened_sender, opened) = mpsc::sync_channel(1);
            let limit = self.timing.jitter + WINDOW_SLACK;
            let (spec, window_closed) = (&spec, &window_closed);
            let sampler = threads.spawn(move || {
                let opened = move || {
                    let _ = opened_sender.send(());
                };
                sample_notifying(&Root::default(), spec, limit, window_closed, opened)
            });
            // A sampler that cannot start drops the sender: the run goes ahead unwatched.
            let _ = opened.recv();
            let stop = self.stop;
            let report = self
                .client
                .submit(None, move || jitter::run(&config, stop))
                .map(|pending| pending.wait(self.stop));
            window_closed.store(true, Ordering::Relaxed);
            let sample = sampler.join().ok().and_then(Result::ok);
            (report, sample)
        });
        let report = report??.map_err(|source| ExperimentError::Jitter {
            cell: cell.name(),
            source,
        })?;
        let interference = sample.map(|sample| interference(&sample, &report, cpu));
        self.progress.run_done();
        Ok((report, interference))
    }

    /// The sampler's view: the jitter CPU, the measured threads as targets, the lab's cgroup
    /// as the scope.
    fn sample_spec(&self, cpu: u32) -> SampleSpec {
        let mut spec = SampleSpec::new(CpuSet::from_ids([cpu]));
        spec.targets = self.measured.tids().into_iter().collect();
        spec.scope = Some(Scope::Cgroup(self.scope.to_owned()));
        spec
    }

    fn begin(&self, cell: &Cell, run: &str) -> Result<(), ExperimentError> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(ExperimentError::Interrupted);
        }
        self.progress.step(&format!("{}: {run}", cell.name()));
        Ok(())
    }
}

/// What took `cpu` during the jitter run: the sample set against the time the run saw
/// stolen there, the run's own spinning thread left out.
fn interference(sample: &Sample, report: &JitterReport, cpu: u32) -> Interference {
    let probe = match report {
        JitterReport::Spin(spin) => spin.cpus.iter().find(|row| row.cpu == cpu),
        JitterReport::Timer(_) => None,
    }
    .map(|row| Probe {
        stolen_ns: row.stolen_ns,
        runtime_ns: row.runtime_ns,
    });
    let spinner = format!("jitter-cpu{cpu}");
    let own_pid = std::process::id();
    let measuring = |thread: &ForeignThread| thread.pid == own_pid && thread.comm == spinner;
    attribute(sample, probe, EventCosts::default(), measuring)
}
