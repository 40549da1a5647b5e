//! An intruder on the target's CPU is named with its CPU time; the target never is.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use nearnative_host::cpus::online_cpus;
use nearnative_host::Root;
use nearnative_verify::{
    sample, verdict, Attribution, CheckKind, Expectations, Outcome, SampleSpec, ThreadClass,
};

use super::{need_cpus, sample_cpu, serialize, Busy, OffCpu, CPU};

#[test]
fn an_intruder_is_named_and_the_target_is_not() {
    let _live = serialize();
    need_cpus();
    let _off = OffCpu::new();
    let target = Busy::start("nn-target", |_| {});
    let intruder = Busy::start("nn-intruder", |_| {});

    let sample = sample_cpu(&[target.tid], None);

    let found = sample.threads.iter().find(|t| t.tid == intruder.tid);
    let found = found.unwrap_or_else(|| panic!("intruder not found in {:#?}", sample.threads));
    assert_eq!(found.comm, "nn-intruder");
    assert_eq!(found.class, ThreadClass::InScope);
    assert_eq!(found.attribution, Attribution::Exact);
    assert_eq!(found.cpu_time.len(), 1);
    assert_eq!(found.cpu_time[0].cpu, CPU);
    assert!(
        found.total_ns > 50_000_000,
        "sharing CPU 1 for 1 s: {found:?}"
    );
    assert!(sample.threads.iter().all(|t| t.tid != target.tid));
    let target_seen = sample.targets.iter().find(|t| t.tid == target.tid).unwrap();
    assert_eq!(target_seen.comm, "nn-target");
    assert!(target_seen.runtime_ns > 50_000_000, "{target_seen:?}");
    assert!(
        target_seen.nonvoluntary_switches > 0,
        "two spinners share one CPU: {target_seen:?}"
    );

    eprintln!(
        "intruder credited {} ms, target ran {} ms ({} preemptions) in {} ms",
        found.total_ns / 1_000_000,
        target_seen.runtime_ns / 1_000_000,
        target_seen.nonvoluntary_switches,
        sample.duration_ns / 1_000_000
    );
    let verdict = verdict(&sample, &Expectations::default());
    let threads = &verdict.checks[0];
    assert_eq!(threads.kind, CheckKind::ForeignThreads);
    assert_eq!(threads.outcome, Outcome::Fail);
    let named = threads
        .offenders()
        .find(|f| f.object.contains(&format!("tid {}", intruder.tid)))
        .unwrap();
    assert!(named.object.starts_with("thread nn-intruder"), "{named:?}");
    assert!(named.evidence.contains("on CPU 1"), "{named:?}");
    assert_eq!(verdict.outcome, Outcome::Fail);
    serde_json::to_string(&sample).unwrap();
    serde_json::to_string(&verdict).unwrap();
}

#[test]
fn without_an_intruder_no_thread_of_this_process_is_listed() {
    let _live = serialize();
    need_cpus();
    let off = OffCpu::new();
    let target = Busy::start("nn-target", |_| {});

    let sample = sample_cpu(&[target.tid], None);

    let own = std::process::id();
    let ours: Vec<_> = sample
        .threads
        .iter()
        .filter(|t| t.pid == own && off.pinned(t.tid))
        .collect();
    assert!(ours.is_empty(), "{ours:#?}");
    let target_seen = sample.targets.iter().find(|t| t.tid == target.tid).unwrap();
    assert!(target_seen.runtime_ns > 50_000_000, "{target_seen:?}");
    assert_eq!(target_seen.last_cpu, CPU);
    let cost = &sample.sampler;
    assert!(
        cost.threads.polls > 10 && cost.threads.rescans >= 2,
        "{cost:?}"
    );
    assert!(
        cost.pinned_to.as_ref().is_some_and(|p| !p.contains(CPU)),
        "{cost:?}"
    );
    eprintln!(
        "sampler: {} µs CPU over {} ms, {} polls, {} rescans, {} threads listed, \
         at most {} followed, {} files read",
        cost.cpu_time_ns / 1000,
        sample.duration_ns / 1_000_000,
        cost.threads.polls,
        cost.threads.rescans,
        cost.threads.threads_listed,
        cost.threads.candidates_max,
        cost.threads.files_read,
    );
}

#[test]
fn an_unpinned_sampler_never_lists_itself() {
    let _live = serialize();
    let root = Root::default();
    let spec = SampleSpec::new(online_cpus(&root).unwrap());
    let stop = AtomicBool::new(false);
    let sample = sample(&root, &spec, Duration::from_millis(500), &stop).unwrap();
    assert_eq!(
        sample.sampler.pinned_to, None,
        "no housekeeping CPU is left"
    );
    assert!(sample.sampler.cpu_time_ns > 0);
    let own = std::process::id();
    let listed: Vec<_> = sample
        .threads
        .iter()
        .filter(|t| t.pid == own && t.comm == "nn-verify")
        .collect();
    assert!(listed.is_empty(), "{listed:#?}");
}
