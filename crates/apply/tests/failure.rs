//! Acceptance 2: a step that fails part-way rolls back the earlier ones; the error names the
//! knob, its file and the reason; the tree ends byte-identical. A best-effort knob the kernel
//! refuses is recorded as unchangeable instead.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nearnative_apply::{apply, revert, ApplyError, Journal, RevertTarget};
use nearnative_host::nic::Coalescing;
use nearnative_host::{CpuSet, Root};
use nearnative_knob::exclusivity::sched::Policy;
use nearnative_knob::exclusivity::task::ThreadAffinity;
use nearnative_knob::{Backend, Offload, TaskId, TreeBackend};

use crate::steps::{change, every_file_knob};
use crate::tree::{TreeImage, PID, START_TIME};
use crate::{id, Bench};

fn assert_failed_and_rolled_back(bench: &Bench, err: ApplyError, expected: &[&str]) {
    let msg = err.to_string();
    for part in expected {
        assert!(msg.contains(part), "{part:?} missing from: {msg}");
    }
    assert!(msg.contains("the host is as it was"), "{msg}");
    assert!(!bench.state.journal_path(&id("f")).exists());
    bench.assert_unchanged(&msg);
}

#[test]
fn read_only_file_fails_the_apply_and_rolls_back() {
    let bench = Bench::new("16amd64-8n2c");
    let file = bench.root().join("proc/sys/net/core/busy_read");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o444)).unwrap();
    let err = bench.apply_every_file_knob("f").unwrap_err();
    let expected = [
        "net.core.busy_read",
        "/proc/sys/net/core/busy_read",
        "not writable",
        "rolled back 18 earlier change(s)",
    ];
    assert_failed_and_rolled_back(&bench, err, &expected);
}

#[test]
fn knob_whose_file_disappeared_fails_the_apply_and_rolls_back() {
    let mut bench = Bench::new("20em64t-hybrid-1p6c2t+2ca4co1t");
    fs::remove_file(bench.root().join("sys/kernel/mm/ksm/run")).unwrap();
    bench.before = TreeImage::take(bench.root());
    let err = bench.apply_every_file_knob("f").unwrap_err();
    let expected = ["KSM (/sys/kernel/mm/ksm/run): does not exist"];
    assert_failed_and_rolled_back(&bench, err, &expected);
}

/// A tree that answers EIO to writes of one file, as the kernel does for a managed IRQ.
struct RefusingBackend {
    inner: TreeBackend,
    refuse: PathBuf,
}

impl Backend for RefusingBackend {
    fn root(&self) -> &Root {
        self.inner.root()
    }
    fn is_live(&self) -> bool {
        false
    }
    fn write_file(&self, path: &Path, text: &str) -> io::Result<()> {
        match path == self.refuse {
            true => Err(io::Error::from_raw_os_error(libc::EIO)),
            false => self.inner.write_file(path, text),
        }
    }
    fn set_thread_affinity(&self, task: TaskId, cpus: &CpuSet) -> io::Result<()> {
        self.inner.set_thread_affinity(task, cpus)
    }
    fn set_sched_policy(&self, task: TaskId, policy: Policy) -> io::Result<()> {
        self.inner.set_sched_policy(task, policy)
    }
    fn move_task(&self, task_move: &nearnative_knob::backend::TaskMove) -> io::Result<()> {
        self.inner.move_task(task_move)
    }
    fn create_cgroup(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_cgroup(dir)
    }
    fn remove_cgroup(&self, dir: &Path) -> io::Result<()> {
        self.inner.remove_cgroup(dir)
    }
    fn coalescing(&self, iface: &str) -> io::Result<Coalescing> {
        self.inner.coalescing(iface)
    }
    fn set_coalescing(&self, iface: &str, value: &Coalescing) -> io::Result<()> {
        self.inner.set_coalescing(iface, value)
    }
    fn offload(&self, iface: &str, offload: Offload) -> io::Result<bool> {
        self.inner.offload(iface, offload)
    }
    fn set_offload(&self, iface: &str, offload: Offload, on: bool) -> io::Result<()> {
        self.inner.set_offload(iface, offload, on)
    }
}

#[test]
fn refused_managed_irq_is_unchangeable_and_the_apply_goes_on() {
    let bench = Bench::new("16em64t-4s2c2t");
    let backend = RefusingBackend {
        inner: TreeBackend::new(bench.root()),
        refuse: "/proc/irq/25/smp_affinity_list".into(),
    };
    let steps = every_file_knob(&bench.cpus);
    let report = apply(&steps, &backend, &bench.state, &id("f")).unwrap();
    assert_eq!(report.unchangeable.len(), 1);
    let refusal = &report.unchangeable[0];
    assert_eq!(refusal.knob.object, "IRQ 25 affinity");
    assert!(refusal.reason.contains("refuses"), "{}", refusal.reason);
    let journal = Journal::load(&report.journal).unwrap().unwrap();
    assert_eq!(journal.unchangeable, report.unchangeable);
    assert!(journal
        .changes
        .iter()
        .all(|s| !s.describe().object.contains("IRQ 25")));
    revert(&bench.state, &RevertTarget::All, &backend).unwrap();
    bench.assert_unchanged("after revert");
}

#[test]
fn refusal_of_a_knob_that_is_not_best_effort_fails_the_apply() {
    let bench = Bench::new("16em64t-4s2c2t");
    let backend = RefusingBackend {
        inner: TreeBackend::new(bench.root()),
        refuse: "/proc/sys/kernel/timer_migration".into(),
    };
    let steps = every_file_knob(&bench.cpus);
    let err = apply(&steps, &backend, &bench.state, &id("f")).unwrap_err();
    let expected = ["kernel.timer_migration", "the kernel refuses the change"];
    assert_failed_and_rolled_back(&bench, err, &expected);
}

#[test]
fn a_thread_that_exited_before_its_step_is_reported_vanished_and_the_apply_goes_on() {
    let bench = Bench::new("16em64t-4s2c2t");
    let mut steps = every_file_knob(&bench.cpus);
    let exited = ThreadAffinity {
        pid: PID,
        tid: 999_999,
        start_time: START_TIME,
    };
    steps.insert(0, change(exited, CpuSet::from_ids([bench.cpus.first])));
    let report = apply(&steps, &bench.backend, &bench.state, &id("v")).unwrap();
    assert_eq!(report.vanished.len(), 1, "{:?}", report.vanished);
    assert!(
        report.vanished[0].to_string().contains("999999"),
        "{:?}",
        report.vanished
    );
    assert_eq!(report.changed.len(), steps.len() - 1);
    revert(&bench.state, &RevertTarget::All, &bench.backend).unwrap();
    bench.assert_unchanged("after revert");
}
