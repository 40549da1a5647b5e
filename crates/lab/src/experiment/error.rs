//! Why a lab run failed. Each message is one line naming the step and the object.

use std::path::PathBuf;

use nearnative_host::ReadError;
use nearnative_probe::jitter::JitterError;
use nearnative_probe::rtt::RttError;

use super::options::OptionsError;
use super::placement::PlacementError;
use crate::cgroup::CgroupError;
use crate::ip::IpError;
use crate::lab::LabError;
use crate::noise::NoiseError;
use crate::worker::WorkerError;

#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error(transparent)]
    Options(#[from] OptionsError),
    #[error(transparent)]
    NeedsIp(#[from] IpError),
    #[error(transparent)]
    NeedsCgroup(#[from] CgroupError),
    #[error("cannot read the online CPUs")]
    Online(#[source] ReadError),
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error(transparent)]
    Worker(#[from] WorkerError),
    #[error(transparent)]
    Placement(#[from] PlacementError),
    #[error("{cell}: the {run} run failed")]
    Rtt {
        cell: String,
        run: &'static str,
        #[source]
        source: RttError,
    },
    #[error("{cell}: the jitter run failed")]
    Jitter {
        cell: String,
        #[source]
        source: JitterError,
    },
    #[error("the noisy neighbour failed")]
    Noise(#[source] NoiseError),
    #[error("no online CPU to place the measured threads on")]
    NoPlacement,
    #[error("interrupted")]
    Interrupted,
    /// Cleanup failed: what is left is named in `registry`, which the next lab's sweep reads.
    #[error(
        "{}the lab could not remove everything it made; what is left is named in {} \
         (run `nearnative lab --run-dir {}` again to sweep it)",
        after.as_ref().map_or_else(String::new, |e| format!("{e}; then ")),
        registry.display(),
        run_dir.display()
    )]
    Cleanup {
        /// What ended the run before cleanup, if it did not finish.
        after: Option<String>,
        registry: PathBuf,
        run_dir: PathBuf,
        #[source]
        source: Box<LabError>,
    },
}
