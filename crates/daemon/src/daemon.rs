//! `nearnative daemon` from start to exit: the pid lock on the state directory, the wake-up
//! sources, adoption of what an earlier daemon (or a crash) left, the control socket and the
//! metrics, the loop, and what SIGTERM leaves behind.
//!
//! On SIGTERM the daemon stops watching and exits, leaving applied workloads applied (as
//! kubelet does): a restart adopts them. With `--revert-on-exit` it first reverts what its
//! policies applied. Workloads applied from the CLI through the control socket are left
//! applied even then: their owner is whoever ran `apply`, and `revert` is theirs to run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nearnative_apply::StateDir;
use nearnative_engine::{Engine, EngineError};
use nearnative_sys::lock::{pid_lock, PidLockError};

use crate::control::{ControlError, ControlServer};
use crate::events::{Events, EventsError};
use crate::handler::ControlHandler;
use crate::housekeeping::PinSelfError;
use crate::kubernetes::{Containers, EngineBackend};
use crate::libvirt::Domains;
use crate::metrics::{self, Metrics};
use crate::notify::Notifier;
use crate::nri;
use crate::runner::Runner;
use crate::status::DaemonStatus;

/// The pid lock's file in the state directory: one daemon per state directory.
pub const PID_FILE: &str = "daemon.pid";

/// What `nearnative daemon` was told.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub policy_dir: PathBuf,
    pub state_dir: PathBuf,
    pub control_socket: PathBuf,
    /// Where `/metrics` is served; `None`: not at all.
    pub metrics: Option<SocketAddr>,
    /// The cpuset cgroup the daemon keeps to (`/PATH`): only workloads inside it are
    /// considered, and it is every policy's default scope. `None`: the whole host.
    pub scope: Option<String>,
    /// The period of the sweep that catches what events missed.
    pub sweep: Duration,
    /// Revert what the policies applied before exiting on SIGTERM.
    pub revert_on_exit: bool,
    /// The libvirt connection the domains' vCPUs are pinned through; `None`: `qemu:///system`.
    pub libvirt_uri: Option<String>,
    /// Where libvirt keeps its running domains' status XML, read at start-up to adopt them
    /// ([`crate::libvirt::DEFAULT_STATUS_DIR`]).
    pub libvirt_status_dir: PathBuf,
    /// The runtime's NRI socket the daemon serves as plugin `nearnative`; `None`: no plugin.
    pub nri: Option<PathBuf>,
    /// The plugin's index among the runtime's plugins (they are called in ascending index).
    pub nri_index: u8,
    /// kubelet's CPU manager state, read at start-up to warn when its policy fights the
    /// plugin's fence ([`nearnative_nri::kubelet::CPU_MANAGER_STATE`]).
    pub kubelet_state: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("the daemon changes the live host and must run as root")]
    NotRoot,
    #[error("{path}: another nearnative daemon runs on this state directory (pid {holder})")]
    AlreadyRunning { path: PathBuf, holder: String },
    #[error("{path}: cannot take the daemon's pid lock: {reason}")]
    PidLock { path: PathBuf, reason: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Events(#[from] EventsError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("metrics on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Pin(#[from] PinSelfError),
    #[error("NRI plugin on {socket}: cannot start its thread: {source}")]
    NriThread {
        socket: PathBuf,
        source: std::io::Error,
    },
}

/// kubelet's CPU manager policy, when it is not `none`: said in the log and in `status`.
/// A state file that cannot be read is said the same way: the fence may be fought.
fn kubelet_warning(config: &DaemonConfig) -> Option<String> {
    let root = nearnative_host::Root::default();
    let path = root.path(&config.kubelet_state);
    let warning = match nearnative_nri::kubelet::cpu_manager_policy(&path) {
        Ok(Some(policy)) => nearnative_nri::kubelet::cpu_manager_warning(&policy),
        Ok(None) => None,
        Err(err) => Some(err.to_string()),
    };
    if let Some(warning) = &warning {
        crate::log::line(warning);
    }
    warning
}

/// Runs the daemon until SIGTERM (or SIGINT). Returns an error only for what stops it from
/// starting or from keeping its state: everything a workload does is logged and shown in
/// `status` instead.
pub fn run(config: DaemonConfig) -> Result<(), DaemonError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(DaemonError::NotRoot);
    }
    let state = StateDir::new(&config.state_dir);
    state.ensure().map_err(EngineError::from)?;
    let _pid_lock = take_pid_lock(&state)?;
    let (tx, rx) = mpsc::channel();
    let events = Events::start(tx.clone(), &config.policy_dir)?;
    let status = Arc::new(Mutex::new(DaemonStatus::default()));
    let metrics = Arc::new(Metrics::new());
    let turn = Arc::new(Mutex::new(()));
    let domains = Arc::new(Mutex::new(Domains::default()));
    let containers = Arc::new(Mutex::new(Containers::default()));
    let notifier = Notifier::from_env().unwrap_or_else(|err| {
        crate::log::line(&format!("cannot reach systemd's NOTIFY_SOCKET: {err}"));
        Notifier::disabled()
    });
    let mut runner = Runner::new(
        config.clone(),
        Engine::live(&config.state_dir),
        Arc::clone(&status),
        Arc::clone(&metrics),
        Arc::clone(&turn),
        Arc::clone(&domains),
        Arc::clone(&containers),
    );
    runner.adopt()?;
    runner.adopt_domains();
    let plugin = match &config.nri {
        Some(socket) => {
            runner.standing_notes.extend(kubelet_warning(&config));
            let backend = EngineBackend::new(
                Box::new({
                    let state_dir = config.state_dir.clone();
                    move || Engine::live(&state_dir)
                }),
                nearnative_host::Root::default(),
                config.scope.clone(),
                Arc::clone(&containers),
                Arc::clone(&domains),
                Arc::clone(&turn),
                tx.clone(),
            );
            Some(nri::start(socket, config.nri_index, Arc::new(backend))?)
        }
        None => None,
    };
    let handler = ControlHandler::new(
        &config,
        Arc::clone(&status),
        Arc::clone(&turn),
        tx,
        domains,
        containers,
    );
    let control = ControlServer::bind(&config.control_socket, Arc::new(handler))?;
    let _metrics_server = match config.metrics {
        Some(addr) => Some(
            metrics::serve(addr, Arc::clone(&metrics))
                .map_err(|source| DaemonError::Metrics { addr, source })?,
        ),
        None => None,
    };
    tell_systemd(notifier.ready("keeping declared workloads latency-sensitive"));
    let ran = runner.run(&rx, &events, &notifier);
    if let Some(plugin) = plugin {
        plugin.stop();
    }
    ran?;
    tell_systemd(notifier.stopping());
    drop(events);
    // No CLI request may take the state lock from under the exit's reverts: the socket
    // stops accepting, and `revert_own` holds the turn against one already in flight.
    drop(control);
    if config.revert_on_exit {
        runner.revert_own();
    }
    Ok(())
}

/// A notification systemd did not take is logged: no reason to stop keeping workloads true.
pub(crate) fn tell_systemd(sent: std::io::Result<()>) {
    if let Err(err) = sent {
        crate::log::line(&format!("cannot notify systemd: {err}"));
    }
}

/// `STATE_DIR/daemon.pid`, held for the daemon's life: a second daemon is refused, naming
/// the first's pid, while CLI applies (which take the state lock, not this one) still run.
fn take_pid_lock(state: &StateDir) -> Result<nix::fcntl::Flock<std::fs::File>, DaemonError> {
    let path = state.dir().join(PID_FILE);
    pid_lock(&path).map_err(|err| match err {
        PidLockError::Busy { path, holder } => DaemonError::AlreadyRunning { path, holder },
        PidLockError::Open { path, source } => DaemonError::PidLock {
            path,
            reason: source.to_string(),
        },
        PidLockError::Lock { path, source } => DaemonError::PidLock {
            path,
            reason: source.to_string(),
        },
        PidLockError::Untrusted(err) => DaemonError::PidLock {
            path: path.clone(),
            reason: err.to_string(),
        },
    })
}
