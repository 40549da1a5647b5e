//! `nearnative probe jitter`.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct JitterArgs {}

pub fn run(_args: JitterArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("probe jitter is not built yet")
}
