//! `nearnative apply`, `revert` and `status`: the engine's operations, printed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use nearnative_apply::{StateDir, DEFAULT_STATE_DIR};
use nearnative_daemon::control::{Client, DEFAULT_SOCKET};
use nearnative_engine::{Applied, Engine, RevertWhich, Reverted, Status};
use nearnative_knob::{Backend, LiveBackend, TreeBackend};
use serde::Serialize;

use crate::inspect_cmd::checked_root;
use crate::output::out;
use crate::plan_cmd::{render, request, PlanArgs};

/// The engine over the live host, or over a tree (`--root DIR`) whose files it writes.
pub(crate) fn engine(root_dir: &Path, state_dir: &Path) -> anyhow::Result<Engine> {
    let root = checked_root(root_dir)?;
    let backend: Box<dyn Backend> = match root.is_live() {
        true => Box::new(LiveBackend::new()),
        false => Box::new(TreeBackend::new(root_dir)),
    };
    Ok(Engine::new(root, backend, checked_state_dir(state_dir)?))
}

/// A state directory that does not exist yet is empty; anything else in its place (a file
/// given by mistake) must not read as "nothing applied".
fn checked_state_dir(dir: &Path) -> anyhow::Result<StateDir> {
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => bail!("--state-dir {}: not a directory", dir.display()),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            bail!("--state-dir {}: {e}", dir.display())
        }
        _ => Ok(StateDir::new(dir)),
    }
}

/// Where a running daemon listens. While one does, the command goes through it, so the
/// ledger has one owner; without one, the command works directly.
#[derive(Debug, Args)]
pub struct ControlArgs {
    /// The daemon's control socket. Used when the command acts on the live host (`--root /`)
    /// and the daemon's state directory.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    control_socket: PathBuf,
}

impl ControlArgs {
    /// The way to the daemon for a command on `root` and `state_dir`.
    pub(crate) fn client(&self, root: &Path, state_dir: &Path) -> Client {
        Client::new(&self.control_socket, root, state_dir)
    }
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    plan: PlanArgs,
    #[command(flatten)]
    control: ControlArgs,
}

pub fn apply(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let ApplyArgs {
        plan: args,
        control,
    } = args;
    let request = request(args.target.clone(), &args)?;
    let applied = match control
        .client(&args.root, &args.state_dir)
        .apply(&request)?
    {
        Some(applied) => applied,
        None => engine(&args.root, &args.state_dir)?.apply(&request)?,
    };
    match args.json {
        true => crate::output::print_json(&applied)?,
        false => out!("{}", render_applied(&applied)),
    }
    Ok(ExitCode::SUCCESS)
}

fn render_applied(applied: &Applied) -> String {
    let report = &applied.report;
    let mut out = render(&applied.plan);
    out.push_str(&format!(
        "applied {}: {} changed, {} already set, {} drifted since planning, {} unchangeable, {} gone\n",
        applied.plan.workload,
        report.changed.len(),
        report.skipped.len(),
        report.drifted.len(),
        report.unchangeable.len(),
        report.vanished.len()
    ));
    for refused in &report.unchangeable {
        out.push_str(&format!(
            "  left as it was: {} ({}): {}\n",
            refused.knob.object, refused.knob.location, refused.reason
        ));
    }
    out.push_str(&format!(
        "journal {}\nundo with: nearnative revert {}\n",
        report.journal.display(),
        applied.plan.target
    ));
    out
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["target", "all"]))]
pub struct RevertArgs {
    /// The workload as applied (vm:NAME, vm-pid:PID, pid:PID, cgroup:/PATH) or as status
    /// lists it.
    target: Option<String>,
    /// Every journal, newest first, and the whole ledger.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    applied: AppliedArgs,
    #[command(flatten)]
    control: ControlArgs,
    #[arg(long)]
    json: bool,
}

/// Where an earlier apply went: the host (or tree) and the state directory.
#[derive(Debug, Args)]
pub struct AppliedArgs {
    /// The tree the plan was applied to (default: the live host).
    #[arg(long, default_value = "/")]
    root: PathBuf,
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
}

impl AppliedArgs {
    pub(crate) fn engine(&self) -> anyhow::Result<Engine> {
        engine(&self.root, &self.state_dir)
    }

    pub(crate) fn client(&self, control: &ControlArgs) -> Client {
        control.client(&self.root, &self.state_dir)
    }
}

pub fn revert(args: RevertArgs) -> anyhow::Result<ExitCode> {
    let which = match args.target {
        Some(target) => RevertWhich::Target(target),
        None => RevertWhich::All,
    };
    let reverted = match args.applied.client(&args.control).revert(&which)? {
        Some(reverted) => reverted,
        None => args.applied.engine()?.revert(&which)?,
    };
    match args.json {
        true => crate::output::print_json(&RevertOutput::from(&reverted))?,
        false => out!("{}", render_reverted(&reverted, &which)),
    }
    match reverted.born.failed.as_slice() {
        [] => Ok(ExitCode::SUCCESS),
        failed => anyhow::bail!(
            "reverted, but {} task(s) born during the apply keep the mask it gave them: {}",
            failed.len(),
            failed.join("; ")
        ),
    }
}

#[derive(Serialize)]
struct RevertOutput<'a> {
    workloads: Vec<&'a str>,
    journals: &'a nearnative_apply::RevertReport,
    born: &'a nearnative_engine::BornReverted,
}

impl<'a> From<&'a Reverted> for RevertOutput<'a> {
    fn from(reverted: &'a Reverted) -> Self {
        RevertOutput {
            workloads: reverted.workloads.iter().map(|w| w.0.as_str()).collect(),
            journals: &reverted.report,
            born: &reverted.born,
        }
    }
}

fn render_reverted(reverted: &Reverted, which: &RevertWhich) -> String {
    if reverted.nothing_to_revert() {
        return match which {
            RevertWhich::Target(target) => {
                let applied: Vec<&str> = reverted
                    .still_applied
                    .iter()
                    .map(|w| w.0.as_str())
                    .collect();
                match applied.is_empty() {
                    true => format!("{target}: nothing to revert\n"),
                    false => format!(
                        "{target}: nothing to revert (applied: {})\n",
                        applied.join(", ")
                    ),
                }
            }
            RevertWhich::All => "nothing to revert\n".to_owned(),
        };
    }
    let mut out = String::new();
    for journal in &reverted.report.journals {
        out.push_str(&format!(
            "reverted journal {}: {} restored, {} already as before, {} gone since\n",
            journal.id,
            journal.restored.len(),
            journal.already.len(),
            journal.vanished.len()
        ));
        let handed = &journal.handed_over;
        if !handed.is_empty() {
            let mut to: Vec<String> = handed.iter().map(|h| h.to.to_string()).collect();
            to.sort();
            to.dedup();
            out.push_str(&format!(
                "left {} knob(s) a newer workload changed too as they are; journal(s) {} restore them\n",
                handed.len(),
                to.join(", ")
            ));
        }
    }
    if !reverted.born.widened.is_empty() {
        out.push_str(&format!(
            "gave {} task(s) born during the apply their creator's prior affinity\n",
            reverted.born.widened.len()
        ));
    }
    for workload in &reverted.workloads {
        out.push_str(&format!("released the cores of {workload}\n"));
    }
    out
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    #[command(flatten)]
    control: ControlArgs,
    /// Through the daemon: its whole report (sources, states, free cores).
    #[arg(long)]
    json: bool,
}

pub fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let client = args.control.client(Path::new("/"), &args.state_dir);
    if let Some(status) = client.status()? {
        match args.json {
            true => crate::output::print_json(&status)?,
            false => out!("{}", crate::daemon_status::render(&status)),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let engine = Engine::new(
        nearnative_host::Root::default(),
        Box::new(LiveBackend::new()),
        checked_state_dir(&args.state_dir)?,
    );
    let status = engine.status()?;
    match args.json {
        true => crate::output::print_json(&status)?,
        false => out!("{}", render_status(&status)),
    }
    Ok(ExitCode::SUCCESS)
}

fn render_status(status: &Status) -> String {
    if status.workloads.is_empty() && status.orphan_journals.is_empty() {
        return format!("no latency-sensitive workloads ({})\n", status.state_dir);
    }
    let mut out = String::new();
    for entry in &status.workloads {
        let journal = match (&entry.journal, entry.journal_status) {
            (Some(id), Some(state)) => format!(
                "journal {id} ({}, {} changes)",
                serde_json::to_value(state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                entry.changes
            ),
            _ => "no journal".to_owned(),
        };
        let io = match entry.io_cpus.is_empty() {
            true => String::new(),
            false => format!(", I/O CPUs {}", entry.io_cpus),
        };
        out.push_str(&format!(
            "{} ({}): level {}, exclusive CPUs {}{io}; {journal}\n",
            entry.workload,
            entry.target.as_deref().unwrap_or("no plan record"),
            entry.level,
            entry.exclusive_cpus,
        ));
    }
    for id in &status.orphan_journals {
        out.push_str(&format!(
            "journal {id}: no plan names it; `revert --all` undoes it\n"
        ));
    }
    out
}
