//! `nearnative verify TARGET`: the applied plan's knobs read back and the exclusive CPUs
//! sampled; a pass, warn or fail per check, with the offenders. Exit 1 on fail or unknown.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use nearnative_engine::{VerifyOptions, VerifyReport};
use nearnative_sys::signal::stop_on_signals;
use nearnative_verify::{attribute, Check, EventCosts, Interference, Outcome, Sample};
use serde::Serialize;

use crate::apply_cmd::{AppliedArgs, ControlArgs};
use crate::duration::parse_duration;
use crate::output::out;
use crate::plan_cmd::mechanism;

/// Exit code when verify ran and the workload is not (provably) exclusive.
const EXIT_VERIFY_FAILED: u8 = 1;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The workload as applied (vm:NAME, vm-pid:PID, pid:PID, cgroup:/PATH).
    target: String,
    /// How long to watch the exclusive CPUs (0 reads the knobs back only).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    sample: Duration,
    #[command(flatten)]
    applied: AppliedArgs,
    #[command(flatten)]
    control: ControlArgs,
    #[arg(long)]
    json: bool,
}

pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let options = VerifyOptions {
        sample: args.sample,
    };
    // Through the daemon, Ctrl-C simply ends the command; the daemon's sample runs out alone.
    let client = args.applied.client(&args.control);
    let report = match client.verify(&args.target, &options)? {
        Some(report) => report,
        None => {
            let engine = args.applied.engine()?;
            engine.verify(&args.target, &options, stop_on_signals()?)?
        }
    };
    let interference = report.sample.as_ref().map(interference);
    match args.json {
        true => crate::output::print_json(&WithInterference {
            report: &report,
            interference: interference.as_ref(),
        })?,
        false => out!("{}", render(&report, interference.as_ref())),
    }
    Ok(match report.verdict.outcome {
        Outcome::Pass | Outcome::Warn => ExitCode::SUCCESS,
        Outcome::Fail | Outcome::Unknown => ExitCode::from(EXIT_VERIFY_FAILED),
    })
}

/// The report as `--json` prints it: the engine's report with the sample's attribution.
#[derive(Serialize)]
struct WithInterference<'a> {
    #[serde(flatten)]
    report: &'a VerifyReport,
    interference: Option<&'a Interference>,
}

/// What took the exclusive CPUs from the workload during the sample. No probe runs there
/// (the workload does), so shares are of the sample's wall time and nothing is unexplained.
fn interference(sample: &Sample) -> Interference {
    attribute(sample, None, EventCosts::default(), |_| false)
}

/// How many sources the text names.
const TOP_SOURCES: usize = 5;

fn render(report: &VerifyReport, interference: Option<&Interference>) -> String {
    let mut out = format!(
        "verify {}: {}\n",
        report.workload,
        outcome(report.verdict.outcome).to_uppercase()
    );
    if let Some(sample) = &report.sample {
        out.push_str(&format!(
            "  sampled CPUs {} for {:.1} s{}\n",
            sample.cpus,
            sample.duration_ns as f64 / 1e9,
            if sample.stopped_early {
                " (stopped early)"
            } else {
                ""
            }
        ));
    }
    if let Some(interference) = interference {
        let top = interference.top(TOP_SOURCES);
        let top = match top.is_empty() {
            true => "nothing".to_owned(),
            false => top.join(", "),
        };
        out.push_str(&format!(
            "  interference (share of the sample's time, ~ estimated): {top}\n"
        ));
    }
    for check in &report.verdict.checks {
        out.push_str(&render_check(check));
    }
    out
}

fn render_check(check: &Check) -> String {
    let kind = serde_json::to_value(check.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut out = format!(
        "  [{}] {kind}: {}\n",
        mechanism(check.mechanism),
        outcome(check.outcome)
    );
    for finding in check.offenders() {
        out.push_str(&format!("      {}: {}\n", finding.object, finding.evidence));
    }
    if let Some(reason) = &check.unknown {
        out.push_str(&format!("      unknown: {reason}\n"));
    }
    out
}

fn outcome(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Pass => "pass",
        Outcome::Warn => "warn",
        Outcome::Unknown => "unknown",
        Outcome::Fail => "fail",
    }
}
