//! The `nearnative` binary: argument parsing and printing only. The work lives in the
//! library crates, one per pipeline stage.

mod apply_cmd;
mod assets_cmd;
mod daemon_cmd;
mod daemon_status;
mod duration;
mod inspect_cmd;
mod lab_cmd;
mod libvirt_cmd;
mod output;
mod plan_cmd;
mod probe_cmd;
mod verify_cmd;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

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
    /// Plan latency sensitivity = high for a VM, process or cgroup: cores, knob changes,
    /// advisories. Changes nothing.
    Plan(plan_cmd::PlanArgs),
    /// Plan, then make the changes through a crash-safe journal and record the allocation.
    Apply(apply_cmd::ApplyArgs),
    /// Undo an apply exactly (every knob back to its prior value) and release its cores.
    Revert(apply_cmd::RevertArgs),
    /// List the latency-sensitive workloads in force and their journals; while the daemon
    /// runs, its view: each workload's source, state and CPUs, and the free cores.
    Status(apply_cmd::StatusArgs),
    /// Prove an applied workload exclusive: knobs read back, exclusive CPUs sampled.
    Verify(verify_cmd::VerifyArgs),
    /// Measure: network round-trip time and CPU jitter.
    #[command(subcommand)]
    Probe(probe_cmd::ProbeCommand),
    /// Run the experiment: default vs latency-sensitive, quiet and noisy, across network
    /// layers; print the table and write an HTML report. Reverts everything at the end.
    Lab(lab_cmd::LabArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(assets_cmd::CompletionsArgs),
    /// Write the man pages (for packaging).
    #[command(hide = true)]
    Manpages(assets_cmd::ManpagesArgs),
    /// Keep the workloads the policy files declare latency-sensitive for their whole life:
    /// applied when they appear, repaired when they drift, released when they exit.
    Daemon(daemon_cmd::DaemonArgs),
    /// libvirt: install the hook that makes a domain's `<nn:latency>` metadata its switch, and
    /// print a domain's XML with its pinning merged in.
    #[command(subcommand)]
    Libvirt(libvirt_cmd::LibvirtCommand),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => {
            // --help and --version arrive as "errors" that belong on stdout with success.
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => return fail(&usage_error(&err)),
    };
    match run(cli) {
        // Reported on stderr when it happened; the work itself is done.
        Ok(_) if output::write_failed() => ExitCode::from(EXIT_ERROR),
        Ok(code) => code,
        Err(err) => fail(&chain(&err)),
    }
}

/// The error and its causes, each cause left out when the message before already quotes it
/// (many messages name their cause inline, which `{:#}` would print twice).
fn chain(err: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

/// Every error is one line on stderr, so scripts and logs get the object and the reason whole.
fn fail(message: &str) -> ExitCode {
    eprintln!("nearnative: {}", one_line(message));
    ExitCode::from(EXIT_ERROR)
}

/// Clap's message without its usage block, which `--help` gives in full.
fn usage_error(err: &clap::Error) -> String {
    let text = err.to_string();
    let message = text.split("\n\n").next().unwrap_or(&text);
    let message = message.strip_prefix("error: ").unwrap_or(message);
    format!("{message} (see --help)")
}

fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Inspect(args) => inspect_cmd::inspect(args),
        Command::Capture(args) => inspect_cmd::capture(args),
        Command::Plan(args) => plan_cmd::run(args),
        Command::Apply(args) => apply_cmd::apply(args),
        Command::Revert(args) => apply_cmd::revert(args),
        Command::Status(args) => apply_cmd::status(args),
        Command::Verify(args) => verify_cmd::run(args),
        Command::Probe(cmd) => probe_cmd::run(cmd),
        Command::Lab(args) => lab_cmd::run(args),
        Command::Completions(args) => assets_cmd::completions(args, Cli::command()),
        Command::Manpages(args) => assets_cmd::manpages(args, Cli::command()),
        Command::Daemon(args) => daemon_cmd::run_daemon(args),
        Command::Libvirt(cmd) => libvirt_cmd::run(cmd),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_messages_become_one_line() {
        let text = "the following required arguments were not provided:\n  <ADDR:PORT>\n";
        assert_eq!(
            one_line(text),
            "the following required arguments were not provided: <ADDR:PORT>"
        );
    }

    /// A new `apply` option must be taught to the daemon's policy files too (or listed here
    /// as one a policy cannot carry).
    #[test]
    fn every_apply_option_is_a_policy_option() {
        use clap::CommandFactory;
        let not_for_policies = ["root", "state-dir", "json", "threads", "control-socket"];
        let cli = Cli::command();
        let apply = cli.find_subcommand("apply").expect("an apply subcommand");
        let options: Vec<&str> = apply
            .get_arguments()
            .filter_map(|a| a.get_long())
            .filter(|long| !not_for_policies.contains(long))
            .collect();
        assert!(options.contains(&"level"), "{options:?}");
        for option in options {
            assert!(
                nearnative_daemon::policy::OPTION_NAMES.contains(&option),
                "apply --{option} is not an option of a daemon policy"
            );
        }
    }
}
