//! verify: proof by measurement that a workload's exclusive CPUs are really exclusive.
//!
//! [`read_back`] reads every knob of the applied plan again and compares it with the plan's
//! target. [`expectations`] takes from the plan what it knowingly left (the IRQs it protected
//! or moved).
//! [`sample`] watches the exclusive CPUs for a while (the interrupts that fired there, the
//! foreign threads that ran there and for how long, and how often the workload's own threads
//! were switched out) into a [`Sample`]. [`attribute`] sets a sample against the time a
//! spin-loop probe saw stolen over the same window: each source named, with its share. [`verdict`] turns a sample and the [`Expectations`]
//! into a pass or fail per check, each offender named. [`run_queues`] reads each CPU's total
//! run time, which the daemon's interference counters use. The sampler reads the live host
//! through a [`nearnative_host::Root`]; the verdict is a pure function.

pub mod attribution;
mod counters;
pub mod cpu_busy;
mod error;
mod expected;
mod irqs;
mod proc_file;
mod readback;
pub mod run_queues;
mod sample;
mod sampler;
mod spec;
pub mod threads;
mod unknowns;
pub mod verdict;

pub use attribution::{attribute, EventCosts, Interference, InterruptSource, Probe, ThreadSource};
pub use counters::{advance, deltas, CounterTable, CpuCount};
pub use cpu_busy::CpuBusy;
pub use error::VerifyError;
pub use expected::expectations;
pub use irqs::{read_interrupts, InterruptsReading, IrqActivity, IrqLine, NamedCount};
pub use readback::{read_back, ExitedThread, KnobReading, ReadBack, Reading};
pub use sample::{Sample, SamplerCost};
pub use sampler::{sample, sample_notifying};
pub use spec::{SampleSpec, Scope, MAX_DURATION, MIN_POLL_INTERVAL};
pub use threads::{Attribution, CpuTime, ForeignThread, TargetActivity, ThreadClass};
pub use verdict::{verdict, Check, CheckKind, Expectations, Outcome, Verdict};
