//! `nearnative libvirt`: the hook that makes a domain's metadata its switch, and its XML.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum LibvirtCommand {
    /// Install the qemu hook (HOOKS_DIR/qemu.d/nearnative). libvirtd finds hooks when it
    /// starts: restart it afterwards.
    InstallHook(HooksDirArgs),
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
pub struct HookArgs {
    /// libvirt's arguments: GUEST OP SUBOP EXTRA.
    #[arg(num_args = 0..)]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct XmlArgs {
    /// The domain's name.
    pub domain: String,
}

pub fn run(command: LibvirtCommand) -> anyhow::Result<ExitCode> {
    match command {
        LibvirtCommand::InstallHook(_)
        | LibvirtCommand::RemoveHook(_)
        | LibvirtCommand::Hook(_)
        | LibvirtCommand::Xml(_) => anyhow::bail!("nearnative libvirt: being written"),
    }
}
