//! `nearnative libvirt`: the hook that makes a domain's metadata its switch, and its XML.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use nearnative_daemon::control::DEFAULT_SOCKET;
use nearnative_daemon::libvirt::{hook, install};

use crate::output::outln;

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
}

pub fn run(command: LibvirtCommand) -> anyhow::Result<ExitCode> {
    match command {
        LibvirtCommand::InstallHook(args) => install_hook(&args),
        LibvirtCommand::RemoveHook(args) => remove_hook(&args),
        LibvirtCommand::Hook(args) => Ok(run_hook(&args)),
        LibvirtCommand::Xml(_) => anyhow::bail!("nearnative libvirt xml: being written"),
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
