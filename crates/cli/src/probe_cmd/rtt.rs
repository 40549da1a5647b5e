//! `nearnative probe rtt`.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct RttArgs {}

pub fn run(_args: RttArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("probe rtt is not built yet")
}
