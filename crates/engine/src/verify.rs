//! `verify`: the applied plan's knobs read back, then the exclusive CPUs sampled for a
//! while, judged together into one verdict with a check per mechanism.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use nearnative_host::Host;
use nearnative_knob::Step;
use nearnative_verify::{sample, verdict, Expectations, Sample, SampleSpec, Scope, Verdict};
use serde::Serialize;

use crate::applied::{find, AppliedPlan};
use crate::engine::Engine;
use crate::error::EngineError;
use crate::readback::{read_back, ReadBack};

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// How long the exclusive CPUs are watched; zero reads the knobs back only.
    pub sample: Duration,
}

#[derive(Debug, Clone, Serialize)]
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
        let readback = read_back(&record, &self.root, &*self.backend);
        let expectations = self.expectations(&record);
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

    /// What the plan knowingly left: the IRQs of the default-route NIC (unless `--nic`
    /// named it) may fire on the exclusive CPUs, the IRQs it moved may fire there once more,
    /// and the tick stops only under `nohz_full`.
    fn expectations(&self, record: &AppliedPlan) -> Expectations {
        let host = Host::read(&self.root, &self.inspect);
        let exclusive = &record.plan.allocation.exclusive_cpus;
        let nohz = host.isolation.nohz_full.as_ref();
        Expectations {
            allowed_irqs: host
                .default_route_irqs(record.request.nic.as_deref())
                .into_keys()
                .collect(),
            moved_irqs: record
                .plan
                .changes
                .iter()
                .filter_map(|change| match &change.step {
                    Step::IrqAffinity(irq) => Some(irq.knob.irq),
                    _ => None,
                })
                .collect(),
            nohz_full: nohz.is_some_and(|n| !exclusive.is_empty() && exclusive.is_subset(n)),
            ..Expectations::default()
        }
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
