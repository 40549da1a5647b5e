//! `nearnative lab`: the latency-sensitivity experiment on this machine, printed as a table
//! and a verdict (or JSON), with a self-contained HTML report, and a progress bar on stderr
//! while it runs.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use nearnative_apply::DEFAULT_STATE_DIR;
use nearnative_lab::experiment::{self, ExperimentError, Options, Progress};
use nearnative_lab::report::{check_writable, render_text, write_html, Config, LabReport};
use nearnative_lab::{clean_up_on_signals, CgroupChoice, Layer, DEFAULT_RUN_DIR};

use crate::duration::parse_duration;

/// The exit code after SIGINT/SIGTERM, as a shell reports a command ended by SIGINT.
const EXIT_INTERRUPTED: u8 = 130;

#[derive(Debug, Args)]
pub struct LabArgs {
    /// Short runs for CI: about a minute in all on a 2-CPU machine
    #[arg(long)]
    quick: bool,
    /// Length of every measured run (closed-loop, fixed-rate and jitter), overriding the
    /// profile; 100ms to 30s
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// The paths to measure, comma-separated
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "loopback,veth,bridge,tap"
    )]
    paths: Vec<Layer>,
    /// The configurations to measure, comma-separated: default (the host as found), pinned
    /// (the measured threads pinned to the exclusive CPUs, nothing else), latency-sensitive
    /// (the plan applied)
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "default,pinned,latency-sensitive"
    )]
    configs: Vec<Config>,
    /// Print the report as JSON on stdout instead of the table
    #[arg(long)]
    json: bool,
    /// Where to write the HTML report
    #[arg(long, value_name = "PATH", default_value = "nearnative-lab.html")]
    html: PathBuf,
    /// The engine's state directory (journal and ledger of the latency-sensitive apply)
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// Where the lab registers what it creates, for cleanup after a crash
    #[arg(long, value_name = "DIR", default_value = DEFAULT_RUN_DIR)]
    run_dir: PathBuf,
    /// The cgroup hierarchy of the lab's own cgroup: auto (the v1 cpuset hierarchy if there
    /// is one, else cgroup v2), v1 or v2
    #[arg(long, value_name = "auto|v1|v2", default_value = "auto")]
    cgroup: CgroupChoice,
}

pub fn run(args: LabArgs) -> anyhow::Result<ExitCode> {
    let options = Options {
        quick: args.quick,
        duration: args.duration,
        paths: args.paths,
        configs: args.configs,
        state_dir: absolute("--state-dir", &args.state_dir)?,
        run_dir: absolute("--run-dir", &args.run_dir)?,
        cgroup: args.cgroup,
    };
    // What the run needs comes first (bad options, no root, no `ip`), then the report path:
    // all before minutes of measuring.
    options.timing()?;
    experiment::preflight(options.cgroup)?;
    check_writable(&args.html)?;
    let stop = clean_up_on_signals()?;
    let bar = Bar::new(!args.json && std::io::stderr().is_terminal());
    let report = match experiment::run(&options, &bar, stop) {
        Err(ExperimentError::Interrupted) => {
            eprintln!("nearnative: lab interrupted; everything it changed is undone");
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
        other => other?,
    };
    // Everything is cleaned up by now: a reader gone early (`| head`) is no failure.
    let printed = print_report(&report, args.json);
    write_html(&report, &args.html)?;
    let printed = printed.and_then(|()| match args.json {
        true => Ok(()),
        false => writeln!(io::stdout().lock(), "HTML report: {}", args.html.display()),
    });
    match printed {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        printed => printed
            .map(|()| ExitCode::SUCCESS)
            .context("cannot print the lab report"),
    }
}

/// The table (or JSON) on stdout, before the HTML report is written.
fn print_report(report: &LabReport, json: bool) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match json {
        true => {
            serde_json::to_writer_pretty(&mut out, report).map_err(io::Error::from)?;
            writeln!(out)?;
        }
        false => write!(out, "{}", render_text(report))?,
    }
    out.flush()
}

/// `dir` made absolute against the current directory: the registry records these paths, and
/// a sweep run from another directory must find the same ones.
fn absolute(flag: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(dir)
        .with_context(|| format!("{flag} {}: cannot make it an absolute path", dir.display()))
}

/// The progress bar: one tick per measurement, the cell and run as its message. Hidden when
/// stderr is not a terminal, or with `--json`.
struct Bar(ProgressBar);

impl Bar {
    fn new(visible: bool) -> Bar {
        let bar = match visible {
            true => ProgressBar::new(0),
            false => ProgressBar::hidden(),
        };
        Bar(bar)
    }
}

impl Progress for Bar {
    fn start(&self, runs: u64) {
        self.0.set_length(runs);
        let template = "{bar:30} {pos}/{len} runs, {elapsed} {msg}";
        if let Ok(style) = ProgressStyle::with_template(template) {
            self.0.set_style(style);
        }
    }

    fn step(&self, what: &str) {
        self.0.set_message(what.to_owned());
    }

    fn run_done(&self) {
        self.0.inc(1);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}
