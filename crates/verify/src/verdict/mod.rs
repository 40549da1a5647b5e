//! The verdict: a pure function of a [`Sample`] and the [`Expectations`] that says, check by
//! check, whether the exclusive CPUs were exclusive, and names every offender.
//!
//! Thresholds (each a field of [`Expectations`], defaults in brackets):
//! - foreign threads: a thread in scope, or an unbound kernel thread, that got more than
//!   `foreign_time_allowance_ns` [0: any measurable time] on an exclusive CPU fails. Threads
//!   outside the scope are listed for information. Under a scope, unbound kernel threads
//!   only warn: apply moves them only when the scope is the whole host. Per-CPU kernel threads bound to an
//!   exclusive CPU cannot be moved: they warn only past `per_cpu_kthread_share` [0.1%] of
//!   the sample on their CPU.
//!   Each exclusive CPU's busy time (`/proc/stat`) is set against what the sample accounts
//!   for; an unaccounted remainder over 5% of the sample (and over 30 ms of tick rounding)
//!   warns: something ran there that polling did not see.
//! - IRQs: a device IRQ line that fired on an exclusive CPU fails, unless it is in
//!   `allowed_irqs` (the workload's own queue); a kernel-managed or per-CPU line, whose
//!   affinity user space cannot set, is unavoidable and warns; so does a line in
//!   `moved_irqs` that fired there once (the interrupt that carries out a pending move). Named interrupts: LOC (the tick) is expected
//!   unless `nohz_full`, then it fails past `nohz_tick_rate` [2/s] per CPU; NMI, PMI, MCP and
//!   the KVM posted-interrupt rows are expected; the rest (RES, CAL, TLB, IWI, ...) are IPIs
//!   sent by other CPUs' work and warn.
//! - softirqs: device-driven ones (NET_RX, NET_TX, BLOCK, IRQ_POLL, TASKLET, HI) warn; the
//!   timer, scheduler and RCU ones are expected.
//! - preemption: a target preempted (nonvoluntary switches) more than
//!   `max_preemptions_per_sec` [1/s] fails; less, but at least once, warns. A target last
//!   seen outside the exclusive CPUs warns.

mod accounting;
mod findings;
mod irqs;
mod preemption;
mod threads;

use std::collections::BTreeSet;

use nearnative_host::{Finding, Mechanism, Severity};
use serde::{Deserialize, Serialize};

use crate::Sample;

/// What the sample is allowed to show. See the module documentation for each threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expectations {
    /// Device IRQ lines meant to fire on the exclusive CPUs (the workload's own NIC queue).
    pub allowed_irqs: BTreeSet<u32>,
    /// IRQ lines the apply moved off the exclusive CPUs. On x86 an IRQ moves at its next
    /// interrupt, which still lands on the old CPU, so one firing there only warns.
    #[serde(default)]
    pub moved_irqs: BTreeSet<u32>,
    /// The exclusive CPUs are `nohz_full`: the tick should mostly stop.
    pub nohz_full: bool,
    /// LOC interrupts per second per CPU tolerated under `nohz_full` (the residual 1 Hz tick).
    pub nohz_tick_rate: f64,
    /// CPU time a movable foreign thread may get on the exclusive CPUs, in nanoseconds.
    pub foreign_time_allowance_ns: u64,
    /// Share of the sample (0..1) a per-CPU kernel thread may run on its CPU before warning.
    pub per_cpu_kthread_share: f64,
    /// Nonvoluntary context switches per second a target may suffer before failing.
    pub max_preemptions_per_sec: f64,
}

impl Default for Expectations {
    fn default() -> Self {
        Expectations {
            allowed_irqs: BTreeSet::new(),
            moved_irqs: BTreeSet::new(),
            nohz_full: false,
            nohz_tick_rate: 2.0,
            foreign_time_allowance_ns: 0,
            per_cpu_kthread_share: 0.001,
            max_preemptions_per_sec: 1.0,
        }
    }
}

/// The result of one check, ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    /// Nothing failed, but something deserves a look.
    Warn,
    /// The data the check needs could not be read.
    Unknown,
    Fail,
}

/// What a check looks at. The knob read-back of `verify` adds its own kind next to these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    ForeignThreads,
    Irqs,
    Softirqs,
    Preemption,
    /// Every knob of the applied plan, read back.
    Knobs,
}

/// One check: its outcome and every finding behind it. A `Critical` finding fails the check,
/// a `Warning` warns, an `Info` is reported only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub kind: CheckKind,
    pub mechanism: Mechanism,
    pub outcome: Outcome,
    pub findings: Vec<Finding>,
    /// Why the outcome is unknown, naming the file.
    pub unknown: Option<String>,
}

impl Check {
    /// A check whose outcome follows from its findings' severities.
    pub fn from_findings(kind: CheckKind, mechanism: Mechanism, findings: Vec<Finding>) -> Self {
        let worst = findings.iter().map(|f| f.severity).max();
        let outcome = match worst {
            Some(Severity::Critical) => Outcome::Fail,
            Some(Severity::Warning) => Outcome::Warn,
            Some(Severity::Info) | None => Outcome::Pass,
        };
        Check {
            kind,
            mechanism,
            outcome,
            findings,
            unknown: None,
        }
    }

    /// A check that could not be made; failures found anyway still fail it.
    pub fn unknown(mut self, reason: String) -> Self {
        if self.outcome < Outcome::Unknown {
            self.outcome = Outcome::Unknown;
        }
        self.unknown = Some(reason);
        self
    }

    /// The findings that decided the outcome: critical ones for a failure, warnings for a
    /// warning.
    pub fn offenders(&self) -> impl Iterator<Item = &Finding> {
        let level = match self.outcome {
            Outcome::Fail => Severity::Critical,
            _ => Severity::Warning,
        };
        self.findings.iter().filter(move |f| f.severity >= level)
    }
}

/// Every check and the worst of their outcomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub outcome: Outcome,
    pub checks: Vec<Check>,
}

impl Verdict {
    /// A verdict over `checks`; more checks (the knob read-back) can be added with [`Verdict::push`].
    pub fn new(checks: Vec<Check>) -> Self {
        let mut verdict = Verdict {
            outcome: Outcome::Pass,
            checks: Vec::new(),
        };
        checks.into_iter().for_each(|c| verdict.push(c));
        verdict
    }

    pub fn push(&mut self, check: Check) {
        self.outcome = self.outcome.max(check.outcome);
        self.checks.push(check);
    }
}

/// Judges a sample. Pure: the same sample and expectations always give the same verdict.
pub fn verdict(sample: &Sample, expect: &Expectations) -> Verdict {
    Verdict::new(vec![
        threads::check(sample, expect),
        irqs::check_irqs(sample, expect),
        irqs::check_softirqs(sample),
        preemption::check(sample, expect),
    ])
}
