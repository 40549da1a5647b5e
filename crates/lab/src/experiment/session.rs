//! A session: every path measured in one condition and one configuration. A noisy session
//! starts its own noisy neighbour first; a latency-sensitive session then applies the plan
//! for the measured threads (which moves the noise, being in the lab's cgroup, off the
//! exclusive CPUs: the mechanism the experiment demonstrates) and reverts it at the end.
//!
//! One apply per latency-sensitive session, not per cell: the measured threads serve every
//! path, so the apply/revert churn is two applies per run whatever the number of paths.

use nearnative_engine::{Applied, EngineError};
use nearnative_plan::{AdmissionError, PlanError, PlanRequest, Target};

use super::cells::{Cell, CellRunner};
use super::error::ExperimentError;
use super::placement::Placement;
use super::Experiment;
use crate::lab::LabError;
use crate::noise::NoiseConfig;
use crate::report::{Condition, Config, Row};

/// Whether the planner refused the apply only because the host has too few free cores.
fn lacks_cores(err: &EngineError) -> bool {
    matches!(
        err,
        EngineError::Plan(PlanError::Admission(AdmissionError::NotEnoughCores(_)))
    )
}

impl Experiment<'_> {
    /// Measures every path in `condition` and `config`. Pinned and default sessions use the
    /// placement the first latency-sensitive session read back.
    pub(super) fn session(
        &mut self,
        condition: Condition,
        config: Config,
    ) -> Result<Vec<Row>, ExperimentError> {
        let noise = match condition {
            Condition::Noisy => {
                self.progress.step("starting the noisy neighbour");
                Some(self.lab.start_noise(&self.noise_config())?)
            }
            Condition::Quiet => None,
        };
        let placement = match config {
            Config::LatencySensitive => self.apply()?,
            Config::Pinned => self.pinned()?,
            Config::Default => self.unpinned()?,
        };
        let rows = self.cells(condition, config, &placement)?;
        if config == Config::LatencySensitive {
            self.progress.step("reverting the latency-sensitive apply");
            self.lab.revert(&self.options.state_dir)?;
        }
        if let Some(noise) = noise {
            let done = noise.stop().map_err(ExperimentError::Noise)?;
            self.noise_sent.push(done.flood_sent);
        }
        Ok(rows)
    }

    /// The noisy neighbour of a session: a hog on every online CPU and the default flood,
    /// lasting at least the session.
    pub(super) fn noise_config(&self) -> NoiseConfig {
        let length = self.timing.session(self.rig.paths.len());
        NoiseConfig::new(self.rig.online.clone(), length)
    }

    fn cells(
        &self,
        condition: Condition,
        config: Config,
        placement: &Placement,
    ) -> Result<Vec<Row>, ExperimentError> {
        let runner = CellRunner {
            client: &self.rig.client,
            server: &self.rig.server,
            measured: &self.rig.measured,
            scope: &self.rig.scope.cgroup.path,
            timing: self.timing,
            progress: self.progress,
            stop: self.stop,
        };
        self.rig
            .paths
            .iter()
            .map(|path| {
                runner.measure(&Cell {
                    path,
                    condition,
                    config,
                    placement,
                })
            })
            .collect()
    }

    /// Applies the plan for the measured threads and reads back where they run. The first
    /// apply asks for a core per thread and, when the planner refuses for lack of cores (a
    /// 2-CPU host keeps its other core for housekeeping), for one core they all share; later
    /// applies ask the same. Any other refusal is reported as it is.
    fn apply(&mut self) -> Result<Placement, ExperimentError> {
        self.progress.step("applying the latency-sensitive plan");
        let applied = match self.cores {
            Some(cores) => self.apply_with(cores)?,
            None => match self.apply_with(None) {
                Err(LabError::Apply(err)) if lacks_cores(&err) => {
                    self.cores = Some(Some(1));
                    self.apply_with(Some(1))?
                }
                first => {
                    self.cores = Some(None);
                    first?
                }
            },
        };
        let placement = Placement::read(&self.rig.measured, &applied.plan)?;
        if self.placement.as_ref().is_some_and(|p| *p != placement) {
            self.notes.push(format!(
                "a later apply placed the threads differently: {}",
                placement.describe()
            ));
        }
        if self.applied_notes.is_empty() {
            self.applied_notes = applied_notes(&applied);
        }
        self.placement = Some(placement.clone());
        Ok(placement)
    }

    fn apply_with(&self, cores: Option<u32>) -> Result<Applied, LabError> {
        let mut request = PlanRequest::new(Target::Pid(std::process::id()));
        request.threads = Some(self.rig.measured.tids());
        request.cores = cores;
        request.scope = Some(self.rig.scope.cgroup.path.clone());
        self.lab.apply(&self.options.state_dir, &request)
    }

    /// The placement of the latency-sensitive apply by affinity alone, as `taskset` would
    /// set it: the tap forwarders are pinned to the same CPUs (client and server pin
    /// themselves per run).
    fn pinned(&mut self) -> Result<Placement, ExperimentError> {
        let placement = self.placement_so_far()?;
        placement.pin_forwarders(&self.rig.measured)?;
        Ok(placement)
    }

    /// No placement at all: every measured thread may run on any online CPU. The jitter run
    /// still measures the CPU the other configurations protect.
    fn unpinned(&mut self) -> Result<Placement, ExperimentError> {
        let placement = self.placement_so_far()?;
        Placement::unpin(&self.rig.measured, &self.rig.online)?;
        Ok(placement)
    }

    /// The placement the latency-sensitive apply read back, or, when none ran, the one the
    /// planner would choose on a 2-CPU host (see [`Placement::unplanned`]).
    fn placement_so_far(&mut self) -> Result<Placement, ExperimentError> {
        if self.placement.is_none() {
            self.placement = Placement::unplanned(&self.rig.measured, &self.rig.online);
        }
        self.placement.clone().ok_or(ExperimentError::NoPlacement)
    }
}

/// What the report says about the apply: what it changed and what it could only advise.
fn applied_notes(applied: &Applied) -> Vec<String> {
    let report = &applied.report;
    let mut notes = vec![format!(
        "latency-sensitive apply (journal {}): {} change(s) made, {} already set, {} the kernel refused; reverted after each latency-sensitive session",
        report.journal.display(),
        report.changed.len(),
        report.skipped.len(),
        report.unchangeable.len(),
    )];
    let mut topics: Vec<String> = applied
        .plan
        .advisories
        .iter()
        .map(|a| a.topic.to_string())
        .collect();
    topics.sort_unstable();
    topics.dedup();
    if !topics.is_empty() {
        notes.push(format!(
            "not applied, as only boot or launch time can set them: advice on {} (see nearnative plan)",
            topics.join(", ")
        ));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use nearnative_plan::{Level, NodeCounts, Shortage, WorkloadKey};

    #[test]
    fn only_a_lack_of_cores_falls_back_to_one_shared_core() {
        let workload = WorkloadKey("pid:42".into());
        let shortage = Shortage {
            workload: workload.clone(),
            level: Level::High,
            threads: 3,
            pool: false,
            cores: 3,
            dedicated_io: false,
            free: NodeCounts(vec![(0, 1)]),
            kept: NodeCounts(vec![(0, 1)]),
            smt: false,
        };
        let cases = [
            (
                "not enough cores",
                EngineError::Plan(PlanError::Admission(AdmissionError::NotEnoughCores(
                    shortage,
                ))),
                true,
            ),
            (
                "another admission refusal",
                EngineError::Plan(PlanError::Admission(AdmissionError::NoThreads { workload })),
                false,
            ),
            (
                "an unknown thread",
                EngineError::Plan(PlanError::UnknownThread {
                    pid: 42,
                    tid: 43,
                    known: "42".into(),
                }),
                false,
            ),
            (
                "not root",
                EngineError::NotRoot { operation: "apply" },
                false,
            ),
        ];
        for (what, err, want) in cases {
            assert_eq!(lacks_cores(&err), want, "{what}");
        }
    }
}
