//! The `nearnative` binary: argument parsing and printing only. The work lives in the
//! library crates, one per pipeline stage.

mod inspect_cmd;
mod output;
mod probe_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for an error: bad input, a host that refuses, a failed step. Clap uses it too.
const EXIT_ERROR: u8 = 2;

#[derive(Debug, Parser)]
#[command(name = "nearnative", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read the host: topology, isolation, findings. `--json` for the full record.
    Inspect(inspect_cmd::InspectArgs),
    /// Save the files inspect reads as a .tar.gz, to plan offline or attach to a bug report.
    Capture(inspect_cmd::CaptureArgs),
    /// Measure: network round-trip time and CPU jitter.
    #[command(subcommand)]
    Probe(probe_cmd::ProbeCommand),
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("nearnative: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Inspect(args) => inspect_cmd::inspect(args),
        Command::Capture(args) => inspect_cmd::capture(args),
        Command::Probe(cmd) => probe_cmd::run(cmd),
    }
}
