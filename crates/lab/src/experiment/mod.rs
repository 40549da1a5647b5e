//! The experiment `nearnative lab` runs: every path × condition (quiet, noisy) ×
//! configuration (default, pinned, latency-sensitive), each cell measured by a closed-loop rtt
//! run, a fixed-rate run and a spin-loop jitter run (with what interrupted its CPU meanwhile),
//! into a [`LabReport`].
//!
//! The lab moves itself into a cgroup of its own first (cgroup v1 cpuset, else cgroup v2), so everything it starts (the
//! measured threads, the noise, the tap forwarders) lives there and the apply, scoped to that
//! cgroup, moves nothing else. The measured threads (client, server, tap forwarders) are
//! started once, before any apply, and serve every path: for each condition a
//! latency-sensitive session applies the plan for exactly those threads, reads back where
//! they landed, measures every path and reverts; then a pinned session measures every path
//! again with the threads pinned to the same CPUs and nothing else, and a default session
//! with the threads unpinned. Every apply, namespace, link, thread and the
//! cgroup are registered before they are made, so cleanup (at the end, on a failed step, on
//! a panic, on SIGINT/SIGTERM, or by the sweep after a `kill -9`) leaves nothing behind.

mod cells;
mod context;
mod error;
mod options;
mod placement;
mod progress;
mod session;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nearnative_host::cpus::online_cpus;
use nearnative_host::{CpuSet, Root};

pub use cells::{FIXED_RATE, PAYLOAD};
pub use context::{cpu_model, host_line, now_rfc3339, rfc3339};
pub use error::ExperimentError;
pub use options::{Options, OptionsError, Timing, MAX_RUN, MIN_RUN};
pub use placement::{thread_affinity, Measured, Placement, PlacementError};
pub use progress::{Progress, Silent};

use crate::cgroup::{self, CgroupChoice};
use crate::ip;
use crate::lab::{Lab, LabError, OwnCgroup};
use crate::path::NetPath;
use crate::report::{Condition, HostLine, LabReport, Row};
use crate::sweep::SweepReport;
use crate::worker::Worker;

/// The measured client thread's name.
pub const CLIENT_THREAD: &str = "nn-lab-client";
/// The measured server thread's name.
pub const SERVER_THREAD: &str = "nn-lab-server";
/// Measurements per cell: closed-loop, fixed-rate, jitter.
const RUNS_PER_CELL: u64 = 3;

/// Runs the experiment and cleans up everything it made. `stop` is the flag SIGINT and
/// SIGTERM raise ([`crate::clean_up_on_signals`]): once it is up the run stops measuring,
/// reverts, removes what it made and returns [`ExperimentError::Interrupted`]. A cleanup that
/// leaves anything behind is [`ExperimentError::Cleanup`], whatever else happened.
pub fn run(
    options: &Options,
    progress: &dyn Progress,
    stop: &'static AtomicBool,
) -> Result<LabReport, ExperimentError> {
    let timing = options.timing()?;
    preflight(options.cgroup)?;
    let root = Root::default();
    let online = online_cpus(&root).map_err(ExperimentError::Online)?;
    let context = Context {
        started: now_rfc3339(),
        host: host_line(&root),
        online,
    };
    let cells = options.paths.len() * Condition::ALL.len() * options.configs.len();
    progress.start(cells as u64 * RUNS_PER_CELL);
    progress.step("setting up the lab");
    let outcome = Lab::create(&options.run_dir)
        .map_err(ExperimentError::from)
        .and_then(|mut lab| {
            let measured = measure(&mut lab, options, timing, &context, progress, stop);
            progress.step("cleaning up");
            let cleaned = lab.cleanup();
            let registry = lab.registry_path();
            let mut report = settle(measured, cleaned, registry, &options.run_dir, stop)?;
            report.notes.extend(sweep_notes(lab.swept()));
            Ok(report)
        });
    progress.finish();
    outcome
}

/// The run's outcome once cleanup has run: a failed cleanup comes first, whatever else
/// happened, since it leaves something behind; then an interruption; then the measurement's
/// own result.
fn settle(
    measured: Result<LabReport, ExperimentError>,
    cleaned: Result<(), LabError>,
    registry: PathBuf,
    run_dir: &Path,
    stop: &AtomicBool,
) -> Result<LabReport, ExperimentError> {
    let interrupted = stop.load(Ordering::Relaxed);
    if let Err(source) = cleaned {
        let after = match (&measured, interrupted) {
            (_, true) => Some("interrupted".to_owned()),
            (Err(err), false) => Some(with_causes(err)),
            (Ok(_), false) => None,
        };
        return Err(ExperimentError::Cleanup {
            after,
            registry,
            run_dir: run_dir.to_owned(),
            source: Box::new(source),
        });
    }
    match interrupted {
        true => Err(ExperimentError::Interrupted),
        false => measured,
    }
}

/// `err` and its causes on one line.
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        line.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    line
}

/// What sweeping dead runs did, for the report: what it removed and what it could not.
fn sweep_notes(swept: &SweepReport) -> Vec<String> {
    let removed = (swept.objects > 0).then(|| {
        format!(
            "removed {} object(s) left by {} lab run(s) that died without cleaning up",
            swept.objects,
            swept.swept.len()
        )
    });
    let failed = swept.failed.iter().map(|err| {
        format!(
            "could not clean up after a dead lab run: {}",
            with_causes(err)
        )
    });
    removed.into_iter().chain(failed).collect()
}

/// One line saying what is missing, before anything is made: root, `ip`, a cgroup hierarchy
/// `cgroup` allows for the lab's own cgroup.
pub fn preflight(cgroup: CgroupChoice) -> Result<(), ExperimentError> {
    ip::preflight()?;
    cgroup::choose(&Root::default(), cgroup)?;
    Ok(())
}

/// What the report says about the machine and the run.
struct Context {
    started: String,
    host: HostLine,
    online: CpuSet,
}

/// What every session measures with: the lab's cgroup, the paths and the measured threads.
struct Rig {
    scope: OwnCgroup,
    paths: Vec<NetPath>,
    client: Worker,
    server: Worker,
    measured: Measured,
    online: CpuSet,
}

/// A run in progress.
struct Experiment<'a> {
    options: &'a Options,
    timing: Timing,
    lab: &'a mut Lab,
    rig: Rig,
    progress: &'a dyn Progress,
    stop: &'static AtomicBool,
    /// Decided by the first apply: `Some(None)` a core per thread, `Some(Some(1))` one
    /// shared core.
    cores: Option<Option<u32>>,
    /// Read back after the latest apply.
    placement: Option<Placement>,
    applied_notes: Vec<String>,
    /// Datagrams each noisy session's flood sent.
    noise_sent: Vec<u64>,
    notes: Vec<String>,
}

fn measure(
    lab: &mut Lab,
    options: &Options,
    timing: Timing,
    context: &Context,
    progress: &dyn Progress,
    stop: &'static AtomicBool,
) -> Result<LabReport, ExperimentError> {
    let rig = set_up(lab, options, context)?;
    let mut experiment = Experiment {
        options,
        timing,
        lab,
        rig,
        progress,
        stop,
        cores: None,
        placement: None,
        applied_notes: Vec::new(),
        noise_sent: Vec::new(),
        notes: Vec::new(),
    };
    let mut rows: Vec<Row> = Vec::new();
    for condition in Condition::ALL {
        for config in options.session_order() {
            rows.extend(experiment.session(condition, config)?);
        }
    }
    Ok(experiment.report(context, rows))
}

/// Moves the lab into its cgroup, builds the paths and starts the measured threads.
fn set_up(lab: &mut Lab, options: &Options, context: &Context) -> Result<Rig, ExperimentError> {
    let scope = lab.enter_own_cgroup(options.cgroup)?;
    let paths = options
        .paths
        .iter()
        .map(|&layer| lab.build(layer))
        .collect::<Result<Vec<_>, _>>()?;
    let client = Worker::spawn(CLIENT_THREAD)?;
    let server = Worker::spawn(SERVER_THREAD)?;
    let measured = Measured {
        client: client.tid(),
        server: server.tid(),
        forwarders: lab.forwarder_tids(),
    };
    Ok(Rig {
        scope,
        paths,
        client,
        server,
        measured,
        online: context.online.clone(),
    })
}

impl Experiment<'_> {
    fn report(self, context: &Context, rows: Vec<Row>) -> LabReport {
        let placement = self
            .placement
            .as_ref()
            .map_or_else(|| "not placed".to_owned(), Placement::describe);
        let mut report = LabReport::new(
            context.started.clone(),
            context.host.clone(),
            placement,
            self.options.quick,
            u64::try_from(self.timing.closed_loop.as_millis()).unwrap_or(u64::MAX),
        );
        report.rows = rows;
        report.notes = self.notes_of_run();
        report
    }

    fn notes_of_run(&self) -> Vec<String> {
        let timing = &self.timing;
        let noise = self.noise_config();
        let housekeeping = self
            .placement
            .as_ref()
            .map_or_else(String::new, |p| placement::cpus_named(&p.housekeeping));
        let fencing = self
            .placement
            .as_ref()
            .map_or("no apply ran", |p| p.fencing.as_str());
        let mut notes = vec![
            format!(
                "scope: the lab's own cgroup {} in {}; fencing: {fencing}; the apply moved \
                 only the lab's threads (the noise included). Other processes may still run \
                 on the exclusive CPUs; IRQs and host knobs were changed host-wide and reverted",
                self.rig.scope.cgroup.path, self.rig.scope.hierarchy
            ),
            format!(
                "each cell: closed-loop UDP ping-pong for {:?}, then {} requests/s fixed-rate \
                 for {:?} (each after a {:?} warm-up), {} B messages; then a spin-loop jitter \
                 run for {:?} on the client's CPU, from a thread the client thread starts, so \
                 it shares the client's cpuset and affinity (no apply of its own)",
                timing.closed_loop,
                FIXED_RATE,
                timing.fixed_rate,
                timing.warmup,
                PAYLOAD,
                timing.jitter
            ),
            format!(
                "noisy: one spinning hog per CPU ({}) and a UDP flood of {} datagrams/s of {} B \
                 over a veth pair of its own, started afresh for each session (sent: {:?}); \
                 under the latency-sensitive apply they ran on housekeeping {housekeeping}",
                self.rig.online, noise.flood_rate, noise.flood_payload, self.noise_sent
            ),
        ];
        notes.extend(self.applied_notes.iter().cloned());
        notes.extend(self.notes.iter().cloned());
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::SweepError;

    #[test]
    fn a_failed_cleanup_outranks_an_interruption_and_a_failed_step() {
        let stopped = AtomicBool::new(true);
        let running = AtomicBool::new(false);
        let failed_cleanup = || Err(LabError::Registry(crate::registry::RegistryError::Closed));
        let settled = |measured, cleaned, stop: &AtomicBool| {
            settle(
                measured,
                cleaned,
                "/tmp/r/lab-1aa.json".into(),
                Path::new("/tmp/r"),
                stop,
            )
        };
        let cases: [(&str, Result<(), LabError>, &AtomicBool, &str); 4] = [
            ("interrupted, clean", Ok(()), &stopped, "interrupted"),
            (
                "interrupted, cleanup failed",
                failed_cleanup(),
                &stopped,
                "interrupted; then the lab could not remove everything it made; what is left \
                 is named in /tmp/r/lab-1aa.json (run `nearnative lab --run-dir /tmp/r` again \
                 to sweep it)",
            ),
            (
                "step failed, cleanup failed",
                failed_cleanup(),
                &running,
                "no online CPU to place the measured threads on; then the lab could not remove",
            ),
            (
                "step failed, clean",
                Ok(()),
                &running,
                "no online CPU to place",
            ),
        ];
        for (what, cleaned, stop, want) in cases {
            let err = settled(Err(ExperimentError::NoPlacement), cleaned, stop).unwrap_err();
            assert!(err.to_string().starts_with(want), "{what}: {err}");
        }
    }

    #[test]
    fn sweep_notes_say_what_was_removed_and_what_failed_with_its_cause() {
        assert!(sweep_notes(&SweepReport::default()).is_empty());
        let swept = SweepReport {
            swept: vec!["/run/nearnative/lab-1aa.json".into()],
            objects: 7,
            failed: vec![SweepError::List {
                path: "/run/x".into(),
                source: std::io::Error::other("disk on fire"),
            }],
            ..SweepReport::default()
        };
        assert_eq!(
            sweep_notes(&swept),
            [
                "removed 7 object(s) left by 1 lab run(s) that died without cleaning up",
                "could not clean up after a dead lab run: cannot list the lab run directory /run/x: disk on fire",
            ]
        );
    }
}
