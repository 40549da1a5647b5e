//! Workload ids are lossless, and revert finds a workload only by its full key: two
//! Kubernetes containers whose cgroup paths differ after character 64 apply side by side, a
//! name that merely escapes to an applied workload's old id reverts nothing, and a state
//! directory written with main's ids (`tests/fixtures/main-ids-state`) still reverts.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nearnative_apply::{JournalId, StateDir};
use nearnative_engine::{load_ledger, AppliedPlan, EngineError, RevertWhich};
use nearnative_knob::TreeBackend;
use nearnative_plan::PlanRequest;
use nearnative_testkit::tree::{add_process_in, TreeImage};

use crate::{worker_request, Bench};

/// A snapshot whose `/proc/mounts` has a v1 cpuset hierarchy: cgroup targets and the plan's
/// own cgroups are named there.
const CPUSET_SNAPSHOT: &str = "offline-cpu0-node0";
const POD: &str = "/kubepods.slice/kubepods-burstable.slice/\
                   kubepods-burstable-pod0f3c8a2e_5b1d_4c7e_9a6f_2d8e1b4c7a90.slice";

fn container(c: char) -> String {
    format!("{POD}/cri-containerd-{}.scope", c.to_string().repeat(64))
}

fn cgroup_request(path: &str) -> PlanRequest {
    PlanRequest::new(format!("cgroup:{path}").parse().unwrap())
}

fn bench_with(processes: &[(u32, &str)]) -> Bench {
    let mut bench = Bench::new(CPUSET_SNAPSHOT);
    for (pid, path) in processes {
        add_process_in(bench.root(), *pid, path);
    }
    bench.before = TreeImage::take(bench.root());
    bench
}

#[test]
fn two_kubernetes_containers_apply_side_by_side() {
    let (a, b) = (container('a'), container('b'));
    assert_eq!(a[..64], b[..64], "the paths differ only after character 64");
    let bench = bench_with(&[(4100, &a), (4200, &b)]);
    let engine = bench.engine();
    let first = engine.apply(&cgroup_request(&a)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let second = engine.apply(&cgroup_request(&b)).unwrap();
    assert_ne!(first.plan.id, second.plan.id);
    for applied in [&first, &second] {
        let id = JournalId::try_from(applied.plan.id.as_str()).unwrap();
        assert!(bench.state.journal_path(&id).exists(), "{id}");
        assert!(bench.state.plan_path(&id).exists(), "{id}");
        let made = applied.plan.changes.iter().any(|c| {
            c.step
                .describe()
                .object
                .contains(&format!("nearnative-{}-t0", applied.plan.id))
        });
        assert!(made, "{}: its own cgroup", applied.plan.id);
    }
    let status = engine.status().unwrap();
    assert_eq!(status.workloads.len(), 2, "{status:#?}");

    for path in [&b, &a] {
        let reverted = engine
            .revert(&RevertWhich::Target(format!("cgroup:{path}")))
            .unwrap();
        assert_eq!(reverted.workloads[0].0, format!("cgroup:{path}"));
    }
    bench.assert_unchanged("both reverted, newest first");
    assert!(load_ledger(&bench.state).unwrap().is_empty());
}

#[test]
fn a_name_that_escapes_like_an_applied_one_reverts_nothing() {
    let bench = bench_with(&[(4100, "/nn sp")]);
    let engine = bench.engine();
    engine.apply(&worker_request()).unwrap();
    engine.apply(&cgroup_request("/nn sp")).unwrap();
    let applied = TreeImage::take(bench.root());
    let journals = bench.state.journal_ids().unwrap();

    let lookalike = engine
        .revert(&RevertWhich::Target("cgroup:/nn-sp".into()))
        .unwrap();
    assert!(lookalike.nothing_to_revert(), "{:#?}", lookalike.report);
    let still: Vec<&str> = lookalike
        .still_applied
        .iter()
        .map(|w| w.0.as_str())
        .collect();
    assert_eq!(still, ["cgroup:/nn sp", "pid:4000"]);

    let malformed = engine.revert(&RevertWhich::Target("pid:4000/".into()));
    let err = malformed.unwrap_err().to_string();
    assert!(err.contains("\"pid:4000/\""), "{err}");
    assert!(err.contains("nothing was reverted"), "{err}");

    assert!(TreeImage::take(bench.root()).diff(&applied).is_empty());
    assert_eq!(bench.state.journal_ids().unwrap(), journals);
    assert_eq!(load_ledger(&bench.state).unwrap().len(), 2);
}

#[test]
fn a_target_two_records_answer_to_is_refused() {
    let bench = bench_with(&[]);
    let engine = bench.engine();
    engine.apply(&worker_request()).unwrap();
    let record = bench.state.plans_dir().join("pid-4000.json");
    fs::copy(&record, bench.state.plans_dir().join("pid-4000-copy.json")).unwrap();
    let applied = TreeImage::take(bench.root());
    let err = engine
        .revert(&RevertWhich::Target("pid:4000".into()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("several plan records (pid-4000, pid-4000-copy)"),
        "{err}"
    );
    assert!(TreeImage::take(bench.root()).diff(&applied).is_empty());
}

/// Main's ids (`pid-4000`, `cgroup--nn-sp`) in `tests/fixtures/main-ids-state`, written by
/// applying `pid:4000 --threads 4001` and then `cgroup:/nn sp` on the furnished snapshot.
fn with_main_state() -> Bench {
    let bench = bench_with(&[(4100, "/nn sp")]);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/main-ids-state");
    copy_private(&fixture, bench.state.dir());
    // Bring the tree to where main's applies left it: run each record's steps, oldest first,
    // through a scratch journal that is then thrown away.
    let mut records: Vec<AppliedPlan> = ["pid-4000", "cgroup--nn-sp"]
        .iter()
        .map(|id| record(&bench.state, id))
        .collect();
    records.sort_by_key(|r| r.applied_unix_ms);
    let scratch = tempfile::tempdir().unwrap();
    let backend = TreeBackend::new(bench.root());
    for record in &records {
        let state = StateDir::new(scratch.path().join(record.plan.id.as_str()));
        let id = JournalId::try_from("scratch").unwrap();
        nearnative_apply::apply(&record.plan.steps(), &backend, &state, &id).unwrap();
    }
    bench
}

fn record(state: &StateDir, id: &str) -> AppliedPlan {
    let path = state.plan_path(&JournalId::try_from(id).unwrap());
    let schema = nearnative_engine::APPLIED_SCHEMA_VERSION;
    nearnative_sys::durable::load(&path, schema)
        .unwrap()
        .unwrap()
}

/// Copies a state directory as nearnative makes one: directories 0700, files 0600.
fn copy_private(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    fs::set_permissions(to, fs::Permissions::from_mode(0o700)).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        match entry.file_type().unwrap().is_dir() {
            true => copy_private(&entry.path(), &target),
            false => {
                fs::copy(entry.path(), &target).unwrap();
                fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
            }
        }
    }
}

#[test]
fn a_state_dir_with_mains_ids_still_reverts() {
    let bench = with_main_state();
    let engine = bench.engine();
    let status = engine.status().unwrap();
    let journals: Vec<String> = status
        .workloads
        .iter()
        .filter_map(|w| w.journal.as_ref().map(|j| j.to_string()))
        .collect();
    assert_eq!(journals, ["cgroup--nn-sp", "pid-4000"], "{status:#?}");
    assert!(status.orphan_journals.is_empty());

    let again = engine.apply(&cgroup_request("/nn sp")).unwrap_err();
    assert!(
        matches!(&again, EngineError::AlreadyApplied { path, .. }
            if path.ends_with("plans/cgroup--nn-sp.json")),
        "{again}"
    );
    let lookalike = engine
        .revert(&RevertWhich::Target("cgroup:/nn-sp".into()))
        .unwrap();
    assert!(lookalike.nothing_to_revert());

    for target in ["cgroup:/nn sp", "pid:4000"] {
        let reverted = engine.revert(&RevertWhich::Target(target.into())).unwrap();
        let restored = reverted.report.journals[0].restored.len();
        assert!(restored > 0, "{target}: {:#?}", reverted.report);
    }
    bench.assert_unchanged("main's journals reverted");
    assert!(engine.status().unwrap().workloads.is_empty());
}

#[test]
fn a_state_dir_with_mains_ids_reverts_all() {
    let bench = with_main_state();
    let reverted = bench.engine().revert(&RevertWhich::All).unwrap();
    assert_eq!(reverted.workloads.len(), 2);
    bench.assert_unchanged("revert --all of main's journals");
}
