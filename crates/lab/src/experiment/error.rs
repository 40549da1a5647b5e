//! Why a lab run failed. Each message is one line naming the step and the object.

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
    #[error("no latency-sensitive session placed the measured threads before a default one")]
    NoPlacement,
    #[error("interrupted")]
    Interrupted,
}
