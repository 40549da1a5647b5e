//! The `lab` stage: the latency experiment ([`experiment::run`]: every path × quiet/noisy ×
//! default/latency-sensitive, applied and reverted through the engine), the paths it measures
//! across (host loopback, veth, veth plus bridge, tap plus a user-space forwarder), the noisy
//! neighbour (CPU hogs and a rate-bounded UDP flood), its report, and the cleanup that never
//! leaves anything behind.
//!
//! Everything lives in network namespaces the lab creates, addressed from 198.18.0.0/15; the
//! host namespace gets no address, route or interface. Every object is written to a durable
//! registry before it is created, and removed by the [`Lab`] guard on cleanup, drop, panic or
//! SIGINT/SIGTERM; a run killed outright is swept by the next one.
//!
//! ```no_run
//! use nearnative_lab::{Lab, Layer, DEFAULT_RUN_DIR};
//! use nearnative_probe::rtt::{ClientConfig, ServerConfig};
//! let mut lab = Lab::create(DEFAULT_RUN_DIR.as_ref())?;
//! let path = lab.build(Layer::Veth)?;
//! let server = path.bind_server(0, ServerConfig::new("0.0.0.0:0"))?.spawn()?;
//! let report = path.run_client(ClientConfig::new(server.local_addr().to_string()))?;
//! println!("{}: p50 {} ns", path.layer.name(), report.rtt_ns.p50);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod cgroup;
pub mod experiment;
pub mod flood;
pub mod hog;
pub mod ip;
pub mod lab;
pub mod layers;
pub mod leftovers;
pub mod names;
pub mod netns;
pub mod noise;
pub mod object;
pub mod path;
pub mod registry;
pub mod report;
pub mod run_lock;
pub mod signals;
pub mod sweep;
pub mod tap;
pub mod worker;
pub mod workload;

pub use cgroup::CgroupChoice;
pub use lab::{Lab, LabError, OwnCgroup, DEFAULT_RUN_DIR};
pub use noise::{Noise, NoiseConfig, NoiseReport};
pub use path::{Layer, NetPath, PathError, UnknownLayer};
pub use signals::clean_up_on_signals;
pub use sweep::{sweep, SweepReport};
