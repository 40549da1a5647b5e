//! `nearnative daemon`: keeps the workloads the policy files declare latency-sensitive for
//! their whole life (docs/daemon.md). The work is the daemon crate's; this is its flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use nearnative_apply::DEFAULT_STATE_DIR;
use nearnative_daemon::control::DEFAULT_SOCKET;
use nearnative_daemon::{libvirt, metrics};
use nearnative_daemon::{run, DaemonConfig};
use nearnative_host::cgroup::parse_scope;
use nearnative_nri::{kubelet, runner as nri};

use crate::duration::parse_duration;

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// The policy files (`*.toml`, each with `[[workload]]` tables) to keep true.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/etc/nearnative/workloads.d"
    )]
    policy_dir: PathBuf,
    /// Where the ledger, plan records and journals live (shared with apply and revert).
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// The root-only socket `apply`, `revert`, `status` and `verify` go through while the
    /// daemon runs.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    control_socket: PathBuf,
    /// Serve Prometheus metrics at ADDR:PORT (loopback), or `off`.
    #[arg(long, value_name = "ADDR|off", default_value = metrics::DEFAULT_ADDR, value_parser = metrics_addr)]
    metrics: MetricsAddr,
    /// cgroup:/PATH in the cpuset hierarchy: only workloads inside it are considered, and it
    /// is every policy's default scope (default: the whole host).
    #[arg(long, value_name = "cgroup:/PATH")]
    scope: Option<String>,
    /// How often the host is swept for what events missed (e.g. 10s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = sweep)]
    sweep: Duration,
    /// On SIGTERM, revert what the policies applied before exiting (CLI applies stay).
    #[arg(long)]
    revert_on_exit: bool,
    /// The libvirt connection libvirt domains are pinned through (default qemu:///system).
    #[arg(long, value_name = "URI")]
    libvirt_uri: Option<String>,
    /// Where libvirt keeps its running domains' status XML, read at start-up to adopt the
    /// domains that carry the <nn:latency> switch.
    #[arg(long, value_name = "DIR", default_value = libvirt::DEFAULT_STATUS_DIR)]
    libvirt_status_dir: PathBuf,
    /// Serve the container runtime as NRI plugin `nearnative` on its socket (default
    /// /var/run/nri/nri.sock when given bare): pods annotated latency-sensitive get
    /// exclusive cores.
    #[arg(long, value_name = "SOCKET", num_args = 0..=1, default_missing_value = nri::DEFAULT_SOCKET)]
    nri: Option<PathBuf>,
    /// The plugin's index: the runtime calls its plugins in ascending index.
    #[arg(long, value_name = "N", default_value_t = nri::DEFAULT_INDEX, value_parser = clap::value_parser!(u8).range(0..=99))]
    nri_index: u8,
    /// kubelet's CPU manager state, read with --nri to warn when its policy is not none.
    #[arg(long, value_name = "PATH", default_value = kubelet::CPU_MANAGER_STATE)]
    kubelet_state: PathBuf,
}

/// `--metrics`: an address, or off (a type of its own: clap takes `Option<T>` for an
/// optional flag, not for a value that may be `off`).
#[derive(Debug, Clone, Copy)]
struct MetricsAddr(Option<SocketAddr>);

fn metrics_addr(text: &str) -> Result<MetricsAddr, String> {
    metrics::parse_addr(text).map(MetricsAddr)
}

fn sweep(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d.is_zero() => Err("the sweep period must be above zero".to_owned()),
        d => Ok(d),
    }
}

pub fn run_daemon(args: DaemonArgs) -> anyhow::Result<ExitCode> {
    let scope = args.scope.as_deref().map(parse_scope).transpose();
    let scope = scope.map_err(|e| anyhow::anyhow!("--scope {e}"))?;
    run(DaemonConfig {
        policy_dir: args.policy_dir,
        state_dir: args.state_dir,
        control_socket: args.control_socket,
        metrics: args.metrics.0,
        scope,
        sweep: args.sweep,
        revert_on_exit: args.revert_on_exit,
        libvirt_uri: args.libvirt_uri,
        libvirt_status_dir: args.libvirt_status_dir,
        nri: args.nri,
        nri_index: args.nri_index,
        kubelet_state: args.kubelet_state,
    })?;
    Ok(ExitCode::SUCCESS)
}
