//! `nearnative status` while the daemon runs: its view of each workload (who asked for it,
//! where it stands, its exclusive CPUs), the free cores per node, policy errors and notes.

use nearnative_daemon::status::{
    Counters, DaemonStatus, Interference, Source, WorkloadState, WorkloadStatus,
};

pub(crate) fn render(status: &DaemonStatus) -> String {
    let mut out = format!(
        "daemon pid {}: state {}, policies {}\n",
        status.pid,
        status.state_dir.display(),
        status.policy_dir.display()
    );
    if status.workloads.is_empty() {
        out.push_str("no latency-sensitive workloads\n");
    }
    for workload in &status.workloads {
        out.push_str(&workload_line(workload));
        if let Some(interference) = &workload.interference {
            out.push_str(&interference_line(interference));
        }
    }
    out.push_str(&free_cores_line(status));
    for error in &status.policy_errors {
        out.push_str(&format!("policy error: {error}\n"));
    }
    for note in &status.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out.push_str(&counters_line(&status.counters));
    out
}

/// `vm:web1 (vm-pid:4000) from policy /etc/.../web.toml:3: applied; exclusive CPUs 2-3`
fn workload_line(workload: &WorkloadStatus) -> String {
    let named = match workload.target == workload.workload {
        true => workload.workload.clone(),
        false => format!("{} ({})", workload.workload, workload.target),
    };
    let mut line = format!(
        "{named} from {}: {}",
        source(&workload.source),
        state(&workload.state)
    );
    if !workload.exclusive_cpus.is_empty() {
        line.push_str(&format!("; exclusive CPUs {}", workload.exclusive_cpus));
    }
    if !workload.io_cpus.is_empty() {
        line.push_str(&format!(", I/O CPUs {}", workload.io_cpus));
    }
    line.push('\n');
    line
}

fn source(source: &Source) -> String {
    match source {
        Source::Policy { file, line } => format!("policy {}:{line}", file.display()),
        Source::Cli => "the CLI".to_owned(),
        Source::Libvirt { domain } => format!("libvirt domain {domain}"),
        Source::Kubernetes { pod } => format!("kubernetes pod {pod}"),
    }
}

fn state(state: &WorkloadState) -> String {
    match state {
        WorkloadState::Applied => "applied".to_owned(),
        WorkloadState::Refused { reason } => format!("refused: {reason}"),
        WorkloadState::WaitingForCores { reason } => format!("waiting for cores: {reason}"),
        WorkloadState::Drifted { knobs } => format!("drifted: {}", knobs.join(", ")),
        WorkloadState::Failed { reason } => format!("failed: {reason}"),
    }
}

fn interference_line(interference: &Interference) -> String {
    format!(
        "  interference on its CPUs: {} IRQs, {:.3} ms run time of other threads, {} preemptions\n",
        interference.irqs,
        interference.foreign_runtime_ns as f64 / 1e6,
        interference.preemptions
    )
}

/// `free cores: node 0: 2, node 1: 3`
fn free_cores_line(status: &DaemonStatus) -> String {
    let nodes: Vec<String> = status
        .free_cores_by_node
        .iter()
        .map(|(node, cores)| format!("node {node}: {cores}"))
        .collect();
    match nodes.is_empty() {
        true => "free cores: none known yet\n".to_owned(),
        false => format!("free cores: {}\n", nodes.join(", ")),
    }
}

fn counters_line(counters: &Counters) -> String {
    format!(
        "since start: {} applies, {} reverts, {} refusals, {} drift repairs, {} drift reports\n",
        counters.applies,
        counters.reverts,
        counters.refusals,
        counters.drift_repairs,
        counters.drift_reports
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use nearnative_host::CpuSet;

    fn workload(target: &str, source: Source, state: WorkloadState, cpus: &str) -> WorkloadStatus {
        WorkloadStatus {
            workload: "vm:web1".to_owned(),
            target: target.to_owned(),
            source,
            state,
            exclusive_cpus: CpuSet::parse_list(cpus).unwrap(),
            io_cpus: CpuSet::new(),
            interference: None,
        }
    }

    #[test]
    fn each_workload_shows_its_source_state_and_cpus() {
        let policy = Source::Policy {
            file: "/etc/nearnative/workloads.d/web.toml".into(),
            line: 3,
        };
        let refused = WorkloadState::Refused {
            reason: "CPU 0's core is the host's".to_owned(),
        };
        let drifted = WorkloadState::Drifted {
            knobs: vec![
                "thread 4001 affinity".to_owned(),
                "IRQ 24 affinity".to_owned(),
            ],
        };
        assert_eq!(
            workload_line(&workload(
                "vm-pid:4000",
                policy,
                WorkloadState::Applied,
                "2-3"
            )),
            "vm:web1 (vm-pid:4000) from policy /etc/nearnative/workloads.d/web.toml:3: applied; \
             exclusive CPUs 2-3\n"
        );
        assert_eq!(
            workload_line(&workload("vm:web1", Source::Cli, refused, "")),
            "vm:web1 from the CLI: refused: CPU 0's core is the host's\n"
        );
        assert_eq!(
            workload_line(&workload("vm:web1", Source::Cli, drifted, "4")),
            "vm:web1 from the CLI: drifted: thread 4001 affinity, IRQ 24 affinity; exclusive CPUs 4\n"
        );
    }

    #[test]
    fn the_report_ends_with_free_cores_errors_notes_and_counters() {
        let status = DaemonStatus {
            pid: 77,
            state_dir: "/var/lib/nearnative".into(),
            policy_dir: "/etc/nearnative/workloads.d".into(),
            free_cores_by_node: [(0, 2), (1, 0)].into_iter().collect(),
            policy_errors: vec!["bad.toml:4: unknown key `cpu`".to_owned()],
            notes: vec!["proc connector unavailable: sweeping only".to_owned()],
            ..DaemonStatus::default()
        };
        assert_eq!(
            render(&status),
            "daemon pid 77: state /var/lib/nearnative, policies /etc/nearnative/workloads.d\n\
             no latency-sensitive workloads\n\
             free cores: node 0: 2, node 1: 0\n\
             policy error: bad.toml:4: unknown key `cpu`\n\
             note: proc connector unavailable: sweeping only\n\
             since start: 0 applies, 0 reverts, 0 refusals, 0 drift repairs, 0 drift reports\n"
        );
    }
}
