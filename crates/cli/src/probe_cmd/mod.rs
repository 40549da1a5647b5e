//! `nearnative probe`: the measuring instrument.

mod jitter;
mod rtt;

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ProbeCommand {
    /// Network round-trip time: a UDP/TCP ping-pong or fixed-rate client, and its server.
    Rtt(rtt::RttArgs),
    /// CPU jitter: a spinning thread per CPU records every interruption.
    Jitter(jitter::JitterArgs),
}

pub fn run(cmd: ProbeCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ProbeCommand::Rtt(args) => rtt::run(args),
        ProbeCommand::Jitter(args) => jitter::run(args),
    }
}
