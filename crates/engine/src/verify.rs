//! `verify`: the applied plan's knobs read back, then the exclusive CPUs sampled for a
//! while, judged together into one verdict with a check per mechanism.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use nearnative_host::Host;
use nearnative_verify::{
    expectations, read_back, sample, verdict, ExitedThread, Expectations, ReadBack, Sample,
    SampleSpec, Scope, Verdict,
};
use serde::Serialize;

use crate::applied::{find, AppliedPlan};
use crate::engine::Engine;
use crate::error::EngineError;

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// How long the exclusive CPUs are watched; zero reads the knobs back only.
    pub sample: Duration,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct VerifyReport {
    pub workload: String,
    pub target: String,
    pub readback: ReadBack,
    pub sample: Option<Sample>,
    pub expectations: Expectations,
    pub verdict: Verdict,
}

impl Engine {
    /// Verifies the workload `target` names. `stop` ends the sample early (Ctrl-C).
    pub fn verify(
        &self,
        target: &str,
        options: &VerifyOptions,
        stop: &AtomicBool,
    ) -> Result<VerifyReport, EngineError> {
        self.state.check()?;
        let (_, record) = find(&self.state, target)?;
        let readback = read_back(&record.plan, &*self.backend, self.exited(&record));
        let host = Host::read(&self.root, &self.inspect);
        let expectations = expectations(&record.plan, &host, record.request.nic.as_deref());
        let (sample, mut verdict) = match options.sample.is_zero() {
            true => (None, Verdict::new(Vec::new())),
            false => {
                let sampled = sample(&self.root, &sample_spec(&record), options.sample, stop)?;
                let judged = verdict(&sampled, &expectations);
                (Some(sampled), judged)
            }
        };
        readback.checks().into_iter().for_each(|c| verdict.push(c));
        Ok(VerifyReport {
            workload: record.plan.workload.0.clone(),
            target: record.plan.target.to_string(),
            readback,
            sample,
            expectations,
            verdict,
        })
    }

    /// The workload's exclusive threads that are gone since the apply.
    fn exited(&self, record: &AppliedPlan) -> Vec<ExitedThread> {
        let exclusive = record.threads.iter().filter(|t| t.exclusive);
        exclusive
            .filter(|t| !t.is_alive(&self.root))
            .map(|t| ExitedThread {
                pid: t.pid,
                tid: t.tid,
                start_time: t.start_time,
            })
            .collect()
    }
}

fn sample_spec(record: &AppliedPlan) -> SampleSpec {
    let mut spec = SampleSpec::new(record.plan.allocation.held());
    spec.targets = record.threads.iter().map(|t| t.tid).collect();
    if !record.plan.scope.whole_host() {
        spec.scope = Some(Scope::Cgroup(record.plan.scope.path.clone()));
    }
    spec
}
