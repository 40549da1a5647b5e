//! Acceptance 3: revert twice is harmless; a corrupt journal stops revert with durable.rs's
//! message and changes nothing; an apply while the lock is held is refused naming the holder.
//! Also: an unwritable journal aborts before any knob is touched, and a partial revert keeps
//! what is left for the next one.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use nearnative_apply::{apply, revert, ApplyError, Journal, RevertError, RevertTarget, StateDir};
use nearnative_sys::lock::StateLock;

use crate::steps::every_file_knob;
use crate::tree::{PID, TIDS};
use crate::{id, Bench};

#[test]
fn second_revert_is_a_harmless_no_op() {
    let bench = Bench::new("16em64t-4s2c2t");
    bench.apply_every_file_knob("a").unwrap();
    let first = revert(&bench.state, &RevertTarget::One(id("a")), &bench.backend).unwrap();
    assert!(!first.nothing_to_revert());
    for target in [RevertTarget::One(id("a")), RevertTarget::All] {
        let again = revert(&bench.state, &target, &bench.backend).unwrap();
        assert!(again.nothing_to_revert(), "{target:?}");
    }
    bench.assert_unchanged("after two reverts");
}

#[test]
fn corrupt_journal_stops_revert_and_changes_nothing() {
    let bench = Bench::new("16em64t-4s2c2t");
    let report = bench.apply_every_file_knob("a").unwrap();
    let applied = bench.image();
    let text = fs::read_to_string(&report.journal).unwrap();
    fs::write(&report.journal, text.replacen("\"to\":50", "\"to\":51", 1)).unwrap();
    let err = revert(&bench.state, &RevertTarget::All, &bench.backend).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RevertError::Journal(_)), "{msg}");
    assert!(msg.contains("checksum mismatch"), "{msg}");
    assert!(msg.contains("move it aside"), "{msg}");
    assert!(msg.contains("nothing was reverted"), "{msg}");
    assert!(bench.image().diff(&applied).is_empty());
    assert!(report.journal.exists());
}

#[test]
fn apply_while_the_lock_is_held_is_refused_naming_the_holder() {
    let bench = Bench::new("16em64t-4s2c2t");
    bench.state.ensure().unwrap();
    let _held = StateLock::acquire(bench.state.dir()).unwrap();
    let err = bench.apply_every_file_knob("a").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ApplyError::Lock(_)), "{msg}");
    assert!(
        msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    bench.assert_unchanged("refused apply");
}

#[test]
fn existing_journal_id_is_refused() {
    let bench = Bench::new("16em64t-4s2c2t");
    let steps = every_file_knob(&bench.cpus);
    apply(&steps, &bench.backend, &bench.state, &id("a")).unwrap();
    let err = apply(&steps, &bench.backend, &bench.state, &id("a")).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    revert(&bench.state, &RevertTarget::All, &bench.backend).unwrap();
    bench.assert_unchanged("after revert");
}

/// `chattr +i` on a directory: not even root can create a file in it until the flag goes,
/// which this guard does on drop (also when the test fails).
struct Immutable<'p>(&'p std::path::Path);

impl<'p> Immutable<'p> {
    fn set(dir: &'p std::path::Path) -> Self {
        let status = std::process::Command::new("chattr")
            .arg("+i")
            .arg(dir)
            .status()
            .expect("needs chattr (e2fsprogs)");
        assert!(status.success(), "chattr +i {}: {status}", dir.display());
        Immutable(dir)
    }
}

impl Drop for Immutable<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(self.0)
            .status();
    }
}

#[test]
#[ignore = "needs root and a file system with chattr +i: an immutable journals directory"]
fn unwritable_journal_aborts_before_any_knob_is_touched() {
    let bench = Bench::new("16em64t-4s2c2t");
    bench.state.ensure().unwrap();
    let journals = bench.state.journals_dir();
    let immutable = Immutable::set(&journals);
    let err = bench.apply_every_file_knob("a").unwrap_err();
    drop(immutable);
    let msg = err.to_string();
    assert!(matches!(err, ApplyError::Journal { .. }), "{msg}");
    assert!(msg.contains("cannot write the journal"), "{msg}");
    bench.assert_unchanged("journal unwritable");
}

#[test]
fn partial_revert_keeps_what_is_left_and_a_later_revert_finishes() {
    let bench = Bench::new("16em64t-4s2c2t");
    bench.apply_every_file_knob("a").unwrap();
    let thp = bench
        .root()
        .join("sys/kernel/mm/transparent_hugepage/enabled");
    fs::set_permissions(&thp, fs::Permissions::from_mode(0o444)).unwrap();
    let err = revert(&bench.state, &RevertTarget::All, &bench.backend).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("keeps 1 change(s)"), "{msg}");
    assert!(msg.contains("transparent huge pages"), "{msg}");
    let left = Journal::load(&bench.state.journal_path(&id("a")))
        .unwrap()
        .unwrap();
    assert_eq!(left.changes.len(), 1);
    fs::set_permissions(&thp, fs::Permissions::from_mode(0o644)).unwrap();
    let done = revert(&bench.state, &RevertTarget::All, &bench.backend).unwrap();
    assert_eq!(done.journals[0].restored.len(), 1);
    bench.assert_unchanged("after the second revert");
}

#[test]
fn revert_counts_an_exited_thread_as_done() {
    let bench = Bench::new("16em64t-4s2c2t");
    bench.apply_every_file_knob("a").unwrap();
    // An exiting thread leaves /proc and its cgroup's task list.
    fs::remove_dir_all(bench.root().join(format!("proc/{PID}/task/{}", TIDS[1]))).unwrap();
    fs::write(
        bench
            .root()
            .join("sys/fs/cgroup/cpuset/nearnative-vm1/tasks"),
        "",
    )
    .unwrap();
    let report = revert(&bench.state, &RevertTarget::All, &bench.backend).unwrap();
    assert_eq!(report.journals[0].vanished.len(), 3, "{report:?}");
    assert!(StateDir::new(bench.state.dir())
        .journal_ids()
        .unwrap()
        .is_empty());
}
