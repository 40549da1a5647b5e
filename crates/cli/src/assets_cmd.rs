//! `nearnative completions SHELL` and the hidden `nearnative manpages --out DIR`: shell
//! completions and man pages made from the clap definitions themselves, so they never fall
//! behind the commands. packaging/build-deb.sh installs both.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use clap_complete::Shell;

use crate::output::out;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for; the script goes to stdout.
    #[arg(value_enum)]
    shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManpagesArgs {
    /// Directory to write nearnative.1 and one nearnative-COMMAND.1 per subcommand into.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Prints the completion script for `args.shell`, with `cli` the whole command tree.
pub fn completions(args: CompletionsArgs, mut cli: clap::Command) -> anyhow::Result<ExitCode> {
    let name = cli.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cli, name, &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    Ok(ExitCode::SUCCESS)
}

/// Writes a page for `cli` and, walking the tree, for every visible subcommand at any depth,
/// each named after its path (`nearnative-probe-rtt.1`), so a new command gets its page
/// without a change here. Hidden commands (this one) get none.
pub fn manpages(args: ManpagesArgs, cli: clap::Command) -> anyhow::Result<ExitCode> {
    let dir = &args.out;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Building names each subcommand after its path ("nearnative-probe-rtt"), the page's
    // title and file name; `help` is clap's, not a command of ours.
    let mut cli = cli.disable_help_subcommand(true);
    cli.build();
    // Subcommands carry no version, so every page's footer gets the binary's.
    let source = format!(
        "{} {}",
        cli.get_name(),
        cli.get_version().unwrap_or_default()
    );
    write_pages(&cli, &source, dir)?;
    Ok(ExitCode::SUCCESS)
}

fn write_pages(cmd: &clap::Command, source: &str, dir: &Path) -> anyhow::Result<()> {
    for sub in cmd.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        write_pages(sub, source, dir)?;
    }
    let page = clap_mangen::Man::new(cmd.clone()).source(source);
    page.generate_to(dir)
        .with_context(|| format!("cannot write {}", dir.join(page.get_filename()).display()))?;
    Ok(())
}
