//! Sampling a tree that is not a healthy live host: missing and malformed files become
//! unknowns naming their path, never a panic or an error for the whole sample.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use nearnative_host::{CpuSet, Root};
use nearnative_verify::{
    sample, verdict, CheckKind, Expectations, Outcome, SampleSpec, VerifyError,
};

const SHORT: Duration = Duration::from_millis(60);

fn write(dir: &Path, path: &str, text: &str) {
    let path = dir.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A stat line for a user thread named `comm` that last ran on CPU 1.
fn stat(tid: u32, comm: &str) -> String {
    format!(
        "{tid} ({comm}) R 1 0 0 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 25 0 0 \
         18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
    )
}

fn spec(targets: &[u32]) -> SampleSpec {
    let mut spec = SampleSpec::new(CpuSet::from_ids([1]));
    spec.targets = targets.iter().copied().collect();
    spec
}

#[test]
fn an_empty_tree_gives_unknowns_not_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = Root::new(dir.path());
    let sample = sample(&root, &spec(&[42]), SHORT, &AtomicBool::new(false)).unwrap();
    assert!(sample.irqs.is_none() && sample.softirqs.is_none());
    assert!(sample.threads.is_empty() && sample.targets.is_empty());
    assert_eq!(
        sample.sampler.pinned_to, None,
        "not the live host: not pinned"
    );
    for needle in ["proc/interrupts", "proc/softirqs", "proc/42/task/42"] {
        let found = sample
            .unknowns
            .iter()
            .any(|u| u.path.to_string_lossy().contains(needle));
        assert!(found, "{needle}: {:#?}", sample.unknowns);
    }
    let verdict = verdict(&sample, &Expectations::default());
    assert_eq!(verdict.outcome, Outcome::Unknown);
    for check in &verdict.checks {
        assert_eq!(check.outcome, Outcome::Unknown, "{:?}", check.kind);
        assert!(check.unknown.is_some(), "{:?}", check.kind);
    }
}

#[test]
fn malformed_thread_files_are_unknowns_and_good_threads_are_followed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "proc/interrupts",
        "CPU0 CPU1\n 9: 1 2 IO-APIC 9-fasteoi acpi\nnot a row\n",
    );
    write(d, "proc/softirqs", "garbage header\n");
    write(
        d,
        "proc/10/task/10/status",
        "Name:\tok\nCpus_allowed_list:\t0-1\n",
    );
    write(d, "proc/10/task/10/stat", &stat(10, "ok"));
    write(d, "proc/10/task/10/schedstat", "5 0 1\n");
    write(d, "proc/10/task/11/status", "Cpus_allowed_list:\tzz\n");
    write(d, "proc/10/task/12/status", "Cpus_allowed_list:\t1\n");
    write(d, "proc/10/task/12/stat", "truncated (x) R 1\n");
    write(d, "proc/10/task/13/status", "Cpus_allowed_list:\t1\n");
    write(d, "proc/10/task/13/stat", &stat(13, "no-schedstat"));
    let root = Root::new(d);
    let sample = sample(&root, &spec(&[]), SHORT, &AtomicBool::new(false)).unwrap();
    assert!(sample.irqs.is_some(), "a bad row does not lose the file");
    assert!(sample.softirqs.is_none());
    let unknown_paths: Vec<String> = sample
        .unknowns
        .iter()
        .map(|u| u.path.to_string_lossy().into_owned())
        .collect();
    for needle in [
        "proc/interrupts",
        "proc/softirqs",
        "task/11/status",
        "task/12/stat",
        "task/13/schedstat",
    ] {
        assert!(
            unknown_paths.iter().any(|p| p.ends_with(needle)),
            "{needle}: {unknown_paths:#?}"
        );
    }
    assert_eq!(
        sample.sampler.threads.candidates_max, 1,
        "only thread 10 is followed"
    );
    assert!(sample.threads.is_empty(), "its CPU time never grew");
    let irqs = verdict(&sample, &Expectations::default()).checks;
    let softirqs = irqs.iter().find(|c| c.kind == CheckKind::Softirqs).unwrap();
    assert_eq!(softirqs.outcome, Outcome::Unknown);
}

#[test]
fn the_stop_flag_ends_a_long_sample_early() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let stop = AtomicBool::new(true);
    let root = Root::new(dir.path());
    let sample = sample(&root, &spec(&[]), Duration::from_secs(600), &stop).unwrap();
    assert!(sample.stopped_early);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_bad_spec_is_refused_before_sampling() {
    let root = Root::default();
    let empty = SampleSpec::new(CpuSet::new());
    let err = sample(&root, &empty, SHORT, &AtomicBool::new(false)).unwrap_err();
    assert!(matches!(err, VerifyError::InvalidSpec { .. }), "{err}");
    assert!(err.to_string().contains("exclusive CPUs is empty"), "{err}");
    let offline = SampleSpec::new(CpuSet::from_ids([60_000]));
    let err = sample(&root, &offline, SHORT, &AtomicBool::new(false)).unwrap_err();
    assert!(err.to_string().contains("CPU 60000 is not online"), "{err}");
}
