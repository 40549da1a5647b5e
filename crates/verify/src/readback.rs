//! verify's first half, beside the sampler: every knob of the applied plan, read again and
//! compared with its target. A knob that drifted fails its mechanism's check (a best-effort one, such as a
//! managed IRQ the kernel would not move, only warns); one whose object is gone (a thread
//! that exited) is reported for information; one that cannot be read makes the check unknown.
//! An exclusive thread of the workload that exited fails the exclusivity check: the workload
//! is gone and its cores are held for nothing.

use nearnative_host::{Finding, Mechanism, Severity};
use nearnative_knob::{Backend, Described};
use nearnative_plan::Plan;
use serde::Serialize;

use crate::{Check, CheckKind};

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ReadBack {
    pub readings: Vec<KnobReading>,
    /// The workload's exclusive threads that exited since the apply: their cores are held
    /// for nothing.
    pub exited: Vec<ExitedThread>,
}

/// An exclusive thread of the workload that is gone (or whose id a later thread reuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ExitedThread {
    pub pid: u32,
    pub tid: u32,
    /// Its start time when it was applied, in clock ticks since boot.
    pub start_time: u64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct KnobReading {
    pub knob: Described,
    pub mechanism: Mechanism,
    #[serde(flatten)]
    pub state: Reading,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Reading {
    Holds,
    Differs {
        now: String,
        target: String,
        best_effort: bool,
    },
    Gone,
    Unreadable {
        reason: String,
    },
}

/// Reads every knob `plan` sets; `exited` are its exclusive threads found gone.
pub fn read_back(plan: &Plan, backend: &dyn Backend, exited: Vec<ExitedThread>) -> ReadBack {
    let readings = plan
        .changes
        .iter()
        .map(|change| KnobReading {
            knob: change.step.describe(),
            mechanism: change.mechanism,
            state: reading(&change.step, backend),
        })
        .collect();
    ReadBack { readings, exited }
}

fn reading(step: &nearnative_knob::Step, backend: &dyn Backend) -> Reading {
    let now = match step.with_current(backend) {
        Ok(now) => now,
        Err(err) if err.is_gone() => return Reading::Gone,
        Err(err) => {
            return Reading::Unreadable {
                reason: err.to_string(),
            }
        }
    };
    match now.is_noop() {
        true => Reading::Holds,
        false => {
            let (now, target) = now.values();
            Reading::Differs {
                now,
                target,
                best_effort: step.best_effort(),
            }
        }
    }
}

impl ReadBack {
    /// One check per mechanism the plan touches, in mechanism order.
    pub fn checks(&self) -> Vec<Check> {
        let mut mechanisms: Vec<Mechanism> = self.readings.iter().map(|r| r.mechanism).collect();
        mechanisms.sort();
        mechanisms.dedup();
        mechanisms.into_iter().map(|m| self.check(m)).collect()
    }

    fn check(&self, mechanism: Mechanism) -> Check {
        let readings = self.readings.iter().filter(|r| r.mechanism == mechanism);
        let mut findings = Vec::new();
        let mut unreadable = Vec::new();
        for reading in readings {
            let object = format!("{} ({})", reading.knob.object, reading.knob.location);
            let (severity, evidence) = match &reading.state {
                Reading::Holds => continue,
                Reading::Differs {
                    now,
                    target,
                    best_effort,
                } => (
                    if *best_effort {
                        Severity::Warning
                    } else {
                        Severity::Critical
                    },
                    format!("is {now}, the plan set {target}"),
                ),
                Reading::Gone => (Severity::Info, "gone since the apply".to_owned()),
                Reading::Unreadable { reason } => {
                    unreadable.push(format!("{object}: {reason}"));
                    continue;
                }
            };
            findings.push(Finding {
                severity,
                object,
                evidence,
                mechanism,
            });
        }
        if mechanism == Mechanism::Exclusivity {
            findings.extend(self.exited.iter().map(|thread| Finding {
                severity: Severity::Critical,
                object: format!("thread {} of process {}", thread.tid, thread.pid),
                evidence:
                    "exited since the apply: its core is held for nothing (revert)".to_owned(),
                mechanism,
            }));
        }
        let check = Check::from_findings(CheckKind::Knobs, mechanism, findings);
        match unreadable.first() {
            Some(first) => check.unknown(format!(
                "{} knob(s) unreadable, first {first}",
                unreadable.len()
            )),
            None => check,
        }
    }
}
