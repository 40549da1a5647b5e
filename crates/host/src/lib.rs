//! Reading the host into typed values: the `inspect` stage of the pipeline.
//!
//! Every read goes through a [`Root`], so the same code runs on `/` and on a captured
//! sysfs/procfs tree. Parsing is kept apart from I/O so parsers can be tested on inline text.

pub mod capture;
pub mod cgroup;
mod collect;
pub mod cpus;
pub mod cpuset;
pub mod finding;
pub mod inspect;
pub mod irq;
pub mod isolation;
pub mod kernel;
pub mod knobs;
pub mod libvirt;
pub mod nic;
pub mod power;
pub mod root;
pub mod tasks;
pub mod topology;
mod wording;
pub mod workloads;

pub use cpuset::CpuSet;
pub use finding::{Finding, Mechanism, Severity, Unknown};
pub use inspect::{Host, InspectOptions, SCHEMA_VERSION};
pub use root::{ReadError, Recorder, Recording, Root};
