//! The noisy neighbour: CPU hogs on every chosen CPU plus a rate-bounded UDP flood over a veth
//! pair between two lab namespaces of its own. Everything stops by itself at the deadline, at
//! [`Noise::stop`], when the handle is dropped, or when the lab is cleaned up (also on a
//! signal); the namespaces go with the lab.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nearnative_host::CpuSet;

use crate::flood::{self, Flood, FloodError, FLOOD_PORT};
use crate::hog::{start_hog, HogError};
use crate::layers::{add_netns, add_veth_pair, address_and_up, BuildError, Ends};
use crate::names::RunTag;
use crate::object::LabObject;
use crate::registry::Registry;

/// The longest noise accepted: a forgotten neighbour must not run for hours.
pub const MAX_NOISE_DURATION: Duration = Duration::from_secs(600);
const SENDER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 9, 1);
const RECEIVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 9, 2);

#[derive(Debug, Clone)]
pub struct NoiseConfig {
    /// The noise stops by itself after this long.
    pub duration: Duration,
    /// One hog per CPU listed; empty for none.
    pub hog_cpus: CpuSet,
    /// Flood datagrams per second; 0 for no flood.
    pub flood_rate: u64,
    /// Flood datagram payload in bytes.
    pub flood_payload: usize,
}

impl NoiseConfig {
    /// Hogs on `cpus` and a 50 000/s flood of 1 000-byte datagrams for `duration`.
    pub fn new(cpus: CpuSet, duration: Duration) -> NoiseConfig {
        NoiseConfig {
            duration,
            hog_cpus: cpus,
            flood_rate: 50_000,
            flood_payload: 1000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NoiseError {
    #[error("noise duration {0:?} is outside (0, 600 s]")]
    Duration(Duration),
    #[error("cannot build the flood's namespaces")]
    Build(#[source] BuildError),
    #[error(transparent)]
    Flood(#[from] FloodError),
    #[error(transparent)]
    Hog(#[from] HogError),
    #[error("a noise thread panicked")]
    Panicked,
}

/// What the noise did, once stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoiseReport {
    pub hog_rounds: Vec<u64>,
    pub flood_sent: u64,
    pub flood_received: u64,
}

/// Running noise. Dropping it stops every thread.
#[derive(Debug)]
pub struct Noise {
    stop: Arc<AtomicBool>,
    hogs: Vec<JoinHandle<Result<u64, HogError>>>,
    flood: Option<(FloodThread, FloodThread)>,
}

type FloodThread = JoinHandle<Result<u64, FloodError>>;

/// Builds the flood's namespaces (if it floods) through `registry`, then starts the threads.
pub fn start(
    registry: &mut Registry,
    tag: &RunTag,
    config: &NoiseConfig,
) -> Result<Noise, NoiseError> {
    if config.duration.is_zero() || config.duration > MAX_NOISE_DURATION {
        return Err(NoiseError::Duration(config.duration));
    }
    let deadline = Instant::now() + config.duration;
    let mut noise = Noise {
        stop: Arc::new(AtomicBool::new(false)),
        hogs: Vec::new(),
        flood: None,
    };
    registry.stop_on_cleanup(Arc::clone(&noise.stop));
    if config.flood_rate > 0 {
        flood::check(config.flood_rate, config.flood_payload)?;
        let plan = build_flood(registry, tag, config, deadline).map_err(NoiseError::Build)?;
        noise.flood = Some(flood::start(&plan, &noise.stop)?);
    }
    for cpu in config.hog_cpus.iter() {
        noise
            .hogs
            .push(start_hog(cpu, deadline, Arc::clone(&noise.stop))?);
    }
    Ok(noise)
}

fn build_flood(
    registry: &mut Registry,
    tag: &RunTag,
    config: &NoiseConfig,
    deadline: Instant,
) -> Result<Flood, BuildError> {
    let (sender_netns, receiver_netns) = (tag.netns("noise-a"), tag.netns("noise-b"));
    let built = LabObject::Netns {
        name: receiver_netns.clone(),
    };
    // A lab that made noise before reuses its flood's namespaces.
    if !registry.objects().contains(&built) {
        add_netns(registry, &sender_netns)?;
        add_netns(registry, &receiver_netns)?;
        let ends = Ends {
            client: &sender_netns,
            server: &receiver_netns,
            client_ip: SENDER_IP,
            server_ip: RECEIVER_IP,
        };
        let (a, b) = (tag.link("n0")?, tag.link("n1")?);
        add_veth_pair(registry, &ends, &a, &b)?;
        address_and_up(&sender_netns, &a, SENDER_IP)?;
        address_and_up(&receiver_netns, &b, RECEIVER_IP)?;
    }
    Ok(Flood {
        sender_netns,
        sender: SocketAddrV4::new(SENDER_IP, 0),
        receiver_netns,
        receiver: SocketAddrV4::new(RECEIVER_IP, FLOOD_PORT),
        rate: config.flood_rate,
        payload: config.flood_payload,
        deadline,
    })
}

impl Noise {
    /// Stops every thread and reports what they did; the first thread error wins.
    pub fn stop(mut self) -> Result<NoiseReport, NoiseError> {
        self.halt()
    }

    fn halt(&mut self) -> Result<NoiseReport, NoiseError> {
        self.stop.store(true, Ordering::Relaxed);
        let mut report = NoiseReport::default();
        let mut first_error = None;
        for hog in self.hogs.drain(..) {
            report.hog_rounds.push(join_counter(hog, &mut first_error));
        }
        if let Some((receiver, sender)) = self.flood.take() {
            report.flood_sent = join_counter(sender, &mut first_error);
            report.flood_received = join_counter(receiver, &mut first_error);
        }
        first_error.map_or(Ok(report), Err)
    }
}

/// Waits for a counting thread; a failed one counts 0 and keeps the first error.
fn join_counter<E: Into<NoiseError>>(
    thread: JoinHandle<Result<u64, E>>,
    first_error: &mut Option<NoiseError>,
) -> u64 {
    let error = match thread.join() {
        Ok(Ok(count)) => return count,
        Ok(Err(e)) => e.into(),
        Err(_) => NoiseError::Panicked,
    };
    first_error.get_or_insert(error);
    0
}

impl Drop for Noise {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}
