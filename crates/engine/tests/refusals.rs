//! Acceptance 4 at the engine: each refusal is one line naming the object and the reason,
//! and the tree, the ledger and the state directory are left as they were.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nearnative_engine::{load_ledger, EngineError};
use nearnative_host::nic::Coalescing;
use nearnative_host::{CpuSet, Root};
use nearnative_knob::backend::{Offload, TaskId, TaskMove};
use nearnative_knob::exclusivity::sched::Policy;
use nearnative_knob::{Backend, TreeBackend};
use nearnative_plan::PlanRequest;
use nearnative_testkit::tree::{add_process, cpus, TreeImage, PID, TIDS};

use crate::{worker_request, Bench};

/// Applying `request` fails with a one-line message containing `expected`, and changes
/// nothing.
fn refused(bench: &Bench, request: &PlanRequest, expected: &str) -> EngineError {
    let err = bench.engine().apply(request).unwrap_err();
    let message = err.to_string();
    assert!(message.contains(expected), "{message}");
    assert!(!message.contains('\n'), "{message}");
    bench.assert_unchanged(expected);
    assert!(load_ledger(&bench.state).unwrap().is_empty(), "{message}");
    assert!(bench.state.journal_ids().unwrap().is_empty(), "{message}");
    assert!(bench.state.plan_ids().unwrap().is_empty(), "{message}");
    err
}

#[test]
fn unknown_vm_and_process_are_named() {
    let bench = Bench::new("16em64t-4s2c2t");
    refused(
        &bench,
        &PlanRequest::new("vm:nope".parse().unwrap()),
        "no VM named \"nope\"",
    );
    refused(
        &bench,
        &PlanRequest::new("pid:999999".parse().unwrap()),
        "no process 999999",
    );
}

#[test]
fn more_cores_than_free_and_no_housekeeping_are_refused() {
    let bench = Bench::new("16em64t-4s2c2t");
    let mut both_threads = PlanRequest::new(format!("pid:{PID}").parse().unwrap());
    both_threads.housekeeping = Some("0-13".parse().unwrap());
    refused(&bench, &both_threads, "asks for 2 exclusive cores");
    let bench = Bench::new("16amd64-8n2c");
    let mut one_node = worker_request();
    one_node.housekeeping = Some("0-1".parse().unwrap());
    refused(&bench, &one_node, "has no core on NUMA node");
}

/// A backend that deletes the fake process at its first write, as if the process exited
/// just as the apply began.
struct ExitsMidApply {
    inner: TreeBackend,
    proc_dir: PathBuf,
}

impl ExitsMidApply {
    fn exit(&self) {
        let _ = fs::remove_dir_all(&self.proc_dir);
    }
}

impl Backend for ExitsMidApply {
    fn root(&self) -> &Root {
        self.inner.root()
    }
    fn is_live(&self) -> bool {
        false
    }
    fn write_file(&self, host_path: &Path, text: &str) -> io::Result<()> {
        self.exit();
        self.inner.write_file(host_path, text)
    }
    fn set_thread_affinity(&self, task: TaskId, cpus: &CpuSet) -> io::Result<()> {
        self.exit();
        self.inner.set_thread_affinity(task, cpus)
    }
    fn set_sched_policy(&self, task: TaskId, policy: Policy) -> io::Result<()> {
        self.exit();
        self.inner.set_sched_policy(task, policy)
    }
    fn move_task(&self, task_move: &TaskMove) -> io::Result<()> {
        self.exit();
        self.inner.move_task(task_move)
    }
    fn create_cgroup(&self, host_dir: &Path) -> io::Result<()> {
        self.exit();
        self.inner.create_cgroup(host_dir)
    }
    fn remove_cgroup(&self, host_dir: &Path) -> io::Result<()> {
        self.inner.remove_cgroup(host_dir)
    }
    fn coalescing(&self, iface: &str) -> io::Result<Coalescing> {
        self.inner.coalescing(iface)
    }
    fn set_coalescing(&self, iface: &str, coalescing: &Coalescing) -> io::Result<()> {
        self.exit();
        self.inner.set_coalescing(iface, coalescing)
    }
    fn offload(&self, iface: &str, offload: Offload) -> io::Result<bool> {
        self.inner.offload(iface, offload)
    }
    fn set_offload(&self, iface: &str, offload: Offload, on: bool) -> io::Result<()> {
        self.exit();
        self.inner.set_offload(iface, offload, on)
    }
}

#[test]
fn a_target_that_exits_mid_apply_is_rolled_back() {
    let bench = Bench::new("16em64t-4s2c2t");
    let proc_dir = bench.root().join(format!("proc/{PID}"));
    let backend = ExitsMidApply {
        inner: TreeBackend::new(bench.root()),
        proc_dir: proc_dir.clone(),
    };
    let err = bench
        .engine_with(Box::new(backend))
        .apply(&worker_request())
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "thread {} of process {PID} exited during the apply",
            TIDS[1]
        )),
        "{message}"
    );
    assert!(!proc_dir.exists());
    let diff = TreeImage::take(bench.root()).diff(&bench.before);
    let proc_prefix = PathBuf::from(format!("proc/{PID}"));
    let changed: Vec<_> = diff
        .iter()
        .filter(|p| !p.starts_with(&proc_prefix) && p.as_path() != Path::new("proc"))
        .collect();
    assert!(
        changed.is_empty(),
        "changed beyond the exited process: {changed:?}"
    );
    assert!(load_ledger(&bench.state).unwrap().is_empty());
    assert!(bench.state.journal_ids().unwrap().is_empty());
    assert!(bench.state.plan_ids().unwrap().is_empty());
}

#[test]
fn applying_twice_is_refused_and_a_second_workload_cannot_take_the_cores() {
    let bench = Bench::new("16em64t-4s2c2t");
    add_process(bench.root(), 4100, &[4100, 4101], &cpus(bench.root()));
    let engine = bench.engine();
    let first = engine.apply(&worker_request()).unwrap();
    let after_first = TreeImage::take(bench.root());
    let again = engine.apply(&worker_request()).unwrap_err().to_string();
    assert!(
        again.contains("pid:4000 is already latency-sensitive"),
        "{again}"
    );
    // Every core but the first workload's is kept for the host: none is left to give.
    let held = first.plan.allocation.held();
    let keep: CpuSet = (0..16).filter(|cpu| !held.contains(*cpu)).collect();
    let mut rival = PlanRequest::new("pid:4100".parse().unwrap());
    rival.threads = Some(vec![4101]);
    rival.housekeeping = Some(keep);
    let err = engine.apply(&rival).unwrap_err().to_string();
    assert!(err.contains("asks for 1 exclusive core"), "{err}");
    assert!(err.contains("0 are free"), "{err}");
    assert_eq!(
        TreeImage::take(bench.root()).diff(&after_first),
        Vec::<PathBuf>::new()
    );
    assert_eq!(load_ledger(&bench.state).unwrap().len(), 1);
}

#[test]
fn a_thread_already_exclusive_under_another_name_is_refused() {
    let bench = Bench::new("16em64t-4s2c2t");
    let engine = bench.engine();
    engine.apply(&worker_request()).unwrap();
    let after_first = TreeImage::take(bench.root());
    let same_threads = PlanRequest::new("cgroup:/init.scope".parse().unwrap());
    let err = engine.apply(&same_threads).unwrap_err().to_string();
    assert!(
        err.contains("already belongs to latency-sensitive workload pid:4000"),
        "{err}"
    );
    assert_eq!(
        TreeImage::take(bench.root()).diff(&after_first),
        Vec::<PathBuf>::new()
    );
}
