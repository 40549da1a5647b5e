//! `nearnative inspect` and `nearnative capture`: read the host (or a captured tree) and print
//! it, or save what was read as an archive.

mod summary;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use nearnative_host::capture::{self, DEFAULT_MAX_BYTES};
use nearnative_host::workloads;
use nearnative_host::{Host, InspectOptions, Root};
use serde::Serialize;

use crate::output::{out, outln, print_json};

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Directory to read as `/`: a captured or extracted snapshot.
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// Print JSON (schema: docs/inspect-schema.md) instead of the summary.
    #[arg(long)]
    json: bool,
    /// QMP socket of a QEMU started without `-name ...,debug-threads=on` whose command line
    /// opens no QMP socket, to find its vCPU threads (repeatable; live host only).
    #[arg(long, value_name = "SOCKET")]
    qmp: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// The archive to write, e.g. host1.tar.gz; it unpacks to a folder named host1.
    out: PathBuf,
    /// Directory to read as `/`.
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// Most file content to keep, in MiB.
    #[arg(long, default_value_t = DEFAULT_MAX_BYTES >> 20)]
    max_mib: u64,
    /// Print what went into the archive as JSON.
    #[arg(long)]
    json: bool,
}

/// `capture --json`: the archive and what went into it.
#[derive(Serialize)]
struct CaptureReport<'a> {
    archive: &'a Path,
    #[serde(flatten)]
    summary: &'a capture::CaptureSummary,
    cpus: usize,
    unknowns: usize,
}

pub fn inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let root = checked_root(&args.root)?;
    workloads::check_qmp_sockets(&root, &args.qmp)?;
    let options = InspectOptions {
        qmp_sockets: args.qmp,
        ..InspectOptions::default()
    };
    let host = Host::read(&root, &options);
    if args.json {
        print_json(&host)?;
    } else {
        out!("{}", summary::render(&host));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn capture(args: CaptureArgs) -> anyhow::Result<ExitCode> {
    let root = checked_root(&args.root)?;
    if args.out.is_dir() {
        bail!(
            "{}: is a directory, give the archive's file name",
            args.out.display()
        );
    }
    let max_bytes = args.max_mib.saturating_mul(1 << 20);
    let (host, summary) =
        capture::capture(&root, &InspectOptions::default(), &args.out, max_bytes)?;
    if args.json {
        print_json(&CaptureReport {
            archive: &args.out,
            summary: &summary,
            cpus: host.topology.cpus.len(),
            unknowns: host.unknowns.len(),
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "wrote {}: {} files, {} directories, {} symlinks, {} KiB read ({} CPUs, {} unknowns)",
        args.out.display(),
        summary.files,
        summary.dirs,
        summary.symlinks,
        summary.bytes.div_ceil(1024),
        host.topology.cpus.len(),
        host.unknowns.len(),
    );
    if summary.dropped_files > 0 {
        outln!(
            "left out {} files over the {} MiB bound (raise --max-mib)",
            summary.dropped_files,
            args.max_mib
        );
    }
    if summary.vanished > 0 {
        outln!(
            "skipped {} paths that vanished while reading",
            summary.vanished
        );
    }
    outln!(
        "read it back: tar xzf {} -C DIR && nearnative inspect --root DIR/{}",
        args.out.display(),
        summary.folder
    );
    Ok(ExitCode::SUCCESS)
}

/// The root must be a directory; a typo would otherwise read as a host with nothing in it.
pub(crate) fn checked_root(dir: &Path) -> anyhow::Result<Root> {
    let meta = std::fs::metadata(dir).with_context(|| format!("--root {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("--root {}: not a directory", dir.display());
    }
    Ok(Root::new(dir))
}
