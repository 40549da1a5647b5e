//! Issue 14, defect 1: a state directory someone else could write into, and a journal that
//! names what nearnative never writes, are refused before revert writes anything.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use nearnative_apply::{revert, Journal, RevertError, RevertTarget};
use nearnative_knob::exclusivity::cgroup::{Cgroup, CgroupDir, Presence};
use nearnative_knob::exclusivity::sched::{Policy, SchedPolicy};
use nearnative_knob::{CgroupMount, CgroupPath, Change, Step};
use nix::unistd::{chown, Uid};

use crate::tree::{PID, START_TIME, TIDS};
use crate::{id, Bench};

/// Stores a journal `name` holding `changes` into the bench's state, as nearnative would.
fn plant(bench: &Bench, name: &str, changes: Vec<Step>) {
    bench.state.ensure().unwrap();
    let mut journal = Journal::new(id(name));
    journal.changes = changes;
    journal.store(&bench.state.journal_path(&id(name))).unwrap();
}

/// The planted step: the workload's thread back "to" SCHED_FIFO 99.
fn fifo_99() -> Step {
    Step::from(Change {
        knob: SchedPolicy {
            pid: PID,
            tid: TIDS[1],
            start_time: START_TIME,
        },
        from: Policy::Fifo { priority: 99 },
        to: Policy::Fifo { priority: 10 },
    })
}

fn nobody() -> Option<Uid> {
    Some(Uid::from_raw(65534))
}

#[test]
fn a_journal_naming_a_foreign_cgroup_mount_is_refused_before_any_write() {
    let bench = Bench::new("16em64t-4s2c2t");
    bench.apply_every_file_knob("a").unwrap();
    let applied = bench.image();
    let outside = Cgroup {
        mount: CgroupMount::try_from("/etc").unwrap(),
        path: CgroupPath::try_from("/nearnative-x").unwrap(),
    };
    let made = Step::from(Change {
        knob: CgroupDir { cgroup: outside },
        from: Presence::Absent,
        to: Presence::Present,
    });
    plant(&bench, "evil", vec![made]);
    let err = revert(&bench.state, &RevertTarget::All, &bench.backend).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RevertError::Invalid { .. }), "{msg}");
    assert!(
        msg.contains("evil.json: change 1 (CgroupDir): knob.cgroup.mount /etc is not"),
        "{msg}"
    );
    assert!(msg.contains("nothing was reverted"), "{msg}");
    let diff = bench.image().diff(&applied);
    assert!(diff.is_empty(), "the refused revert wrote {diff:?}");
    fs::remove_file(bench.state.journal_path(&id("evil"))).unwrap();
    revert(&bench.state, &RevertTarget::All, &bench.backend).unwrap();
    bench.assert_unchanged("after the real revert");
}

#[test]
#[ignore = "needs root: hands the state directory over to nobody with chown"]
fn a_planted_journal_in_a_nobody_owned_state_dir_is_refused() {
    let bench = Bench::new("16em64t-4s2c2t");
    plant(&bench, "evil", vec![fifo_99()]);
    fs::set_permissions(bench.state.dir(), fs::Permissions::from_mode(0o777)).unwrap();
    chown(bench.state.dir(), nobody(), None).unwrap();
    let err = revert(&bench.state, &RevertTarget::All, &bench.backend).unwrap_err();
    let msg = err.to_string();
    let expected = format!("{}: owned by uid 65534", bench.state.dir().display());
    assert!(msg.starts_with(&expected), "{msg}");
    bench.assert_unchanged("refused revert");
}

#[test]
#[ignore = "needs root: hands a journal over to nobody with chown"]
fn a_journal_another_user_owns_is_refused_even_in_roots_directory() {
    let bench = Bench::new("16em64t-4s2c2t");
    plant(&bench, "evil", vec![fifo_99()]);
    let journal = bench.state.journal_path(&id("evil"));
    chown(&journal, nobody(), None).unwrap();
    let err = revert(&bench.state, &RevertTarget::All, &bench.backend).unwrap_err();
    let expected = format!("{}: owned by uid 65534", journal.display());
    assert!(err.to_string().starts_with(&expected), "{err}");
    bench.assert_unchanged("refused revert");
}

#[test]
fn a_world_writable_state_dir_is_refused_by_apply_and_revert() {
    let bench = Bench::new("16em64t-4s2c2t");
    plant(&bench, "evil", vec![fifo_99()]);
    fs::set_permissions(bench.state.dir(), fs::Permissions::from_mode(0o777)).unwrap();
    let err = revert(&bench.state, &RevertTarget::All, &bench.backend).unwrap_err();
    assert!(err.to_string().contains("mode 0777"), "{err}");
    let err = bench.apply_every_file_knob("a").unwrap_err();
    assert!(err.to_string().contains("mode 0777"), "{err}");
    bench.assert_unchanged("refused apply and revert");
}
