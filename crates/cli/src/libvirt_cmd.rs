//! `nearnative libvirt`: the hook that makes a domain's metadata its switch, and its XML.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use nearnative_apply::DEFAULT_STATE_DIR;
use nearnative_daemon::control::DEFAULT_SOCKET;
use nearnative_daemon::libvirt::{hook, install};
use nearnative_engine::{AppliedPlan, Engine, APPLIED_SCHEMA_VERSION};
use nearnative_host::Root;
use nearnative_libvirt::domain_xml::{self, Tuning};
use nearnative_libvirt::metadata::Domain;
use nearnative_libvirt::virsh::{Virsh, DEFAULT_URI};
use nearnative_plan::{Plan, PlanRequest, Target};
use nearnative_sys::durable;

use crate::output::{out, outln};

#[derive(Debug, Subcommand)]
pub enum LibvirtCommand {
    /// Install the qemu hook (HOOKS_DIR/qemu.d/nearnative). libvirtd finds hooks when it
    /// starts: restart it afterwards.
    InstallHook(InstallHookArgs),
    /// Remove the qemu hook installed by install-hook.
    RemoveHook(HooksDirArgs),
    /// What the installed hook runs: libvirt's GUEST OP SUBOP EXTRA, the domain XML on stdin.
    #[command(hide = true)]
    Hook(HookArgs),
    /// Print DOMAIN's XML with the <cputune>, <kvm><hint-dedicated> and <memoryBacking> of its
    /// allocation merged in, for the persistent definition.
    Xml(XmlArgs),
}

#[derive(Debug, Args)]
pub struct HooksDirArgs {
    /// libvirt's hooks directory.
    #[arg(long, default_value = "/etc/libvirt/hooks")]
    pub hooks_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct InstallHookArgs {
    #[command(flatten)]
    pub hooks: HooksDirArgs,
    /// The daemon's control socket the hook talks to.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub control_socket: PathBuf,
}

#[derive(Debug, Args)]
pub struct HookArgs {
    /// The daemon's control socket.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub control_socket: PathBuf,
    /// libvirt's arguments: GUEST OP SUBOP EXTRA.
    #[arg(num_args = 0.., allow_hyphen_values = true, trailing_var_arg = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct XmlArgs {
    /// The domain's name.
    pub domain: String,
    /// libvirt's connection URI.
    #[arg(long, value_name = "URI", default_value = DEFAULT_URI)]
    pub connect: String,
    /// Where the plans applied to running workloads are recorded.
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
}

pub fn run(command: LibvirtCommand) -> anyhow::Result<ExitCode> {
    match command {
        LibvirtCommand::InstallHook(args) => install_hook(&args),
        LibvirtCommand::RemoveHook(args) => remove_hook(&args),
        LibvirtCommand::Hook(args) => Ok(run_hook(&args)),
        LibvirtCommand::Xml(args) => xml(&args),
    }
}

fn install_hook(args: &InstallHookArgs) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot tell where this nearnative binary is")?;
    let path = install::install(&args.hooks.hooks_dir, &exe, &args.control_socket)?;
    outln!(
        "installed {}; restart libvirtd so that it sees a new hook",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn remove_hook(args: &HooksDirArgs) -> anyhow::Result<ExitCode> {
    match install::remove(&args.hooks_dir)? {
        Some(path) => outln!("removed {}", path.display()),
        None => outln!(
            "no nearnative hook in {}; nothing to remove",
            install::hook_path(&args.hooks_dir).display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// libvirt shows a failed hook's stderr in the error of the operation it failed.
fn run_hook(args: &HookArgs) -> ExitCode {
    let exit = hook::run(&args.control_socket, &args.args, &mut std::io::stdin());
    if let Some(line) = exit.line {
        eprintln!("nearnative: {line}");
    }
    match exit.refused {
        true => ExitCode::FAILURE,
        false => ExitCode::SUCCESS,
    }
}

/// Prints the domain's XML with the tuning of its allocation merged in: the plan applied to
/// it, or the plan `apply` would make now.
fn xml(args: &XmlArgs) -> anyhow::Result<ExitCode> {
    let xml = Virsh::new(Some(&args.connect)).dumpxml(&args.domain)?;
    let engine = crate::apply_cmd::engine(Path::new("/"), &args.state_dir)?;
    let target: Target = format!("vm:{}", args.domain)
        .parse()
        .map_err(|e: String| anyhow::anyhow!("DOMAIN {}: {e}", args.domain))?;
    let plan = match applied_plan(&engine, &target.to_string())? {
        Some(plan) => plan,
        None => engine.plan(&dry_run_request(&xml, target, &args.connect)?)?,
    };
    let meminfo = Root::default().read_to_string("/proc/meminfo")?;
    let hugepages = domain_xml::hugepages_cover(&meminfo, domain_xml::memory_kib(&xml)?);
    let tuning = Tuning::from_plan(&plan, hugepages)?;
    out!("{}", domain_xml::merge(&xml, &tuning)?.trim_end());
    Ok(ExitCode::SUCCESS)
}

/// What `apply` would be asked for the domain: its switch's options when it carries one.
fn dry_run_request(xml: &str, target: Target, uri: &str) -> anyhow::Result<PlanRequest> {
    let domain = Domain::parse(xml)?;
    Ok(match domain.switch {
        Some(switch) => switch.request(&domain.name, None, Some(uri)),
        None => PlanRequest {
            libvirt_uri: Some(uri.to_owned()),
            ..PlanRequest::new(target)
        },
    })
}

/// The plan recorded for `workload` when it is applied.
fn applied_plan(engine: &Engine, workload: &str) -> anyhow::Result<Option<Plan>> {
    let status = engine.status()?;
    let entry = status.workloads.iter().find(|w| w.workload.0 == workload);
    let Some(id) = entry.and_then(|e| e.journal.as_ref()) else {
        return Ok(None);
    };
    let path = engine.state().plan_path(id);
    let record: Option<AppliedPlan> = durable::load(&path, APPLIED_SCHEMA_VERSION)?;
    Ok(record.map(|r| r.plan))
}
