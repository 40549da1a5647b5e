//! Issue 14, defect 1, through the binary on the live host: a planted lock link, a planted
//! journal and a world-writable state directory are refused in one line naming the path and
//! its owner or mode, before anything is written: the link's target keeps its bytes, and the
//! process the journal names keeps its scheduling policy and affinity.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command};

use nearnative_apply::{Journal, JournalId, StateDir};
use nearnative_host::CpuSet;
use nearnative_knob::exclusivity::sched::{Policy, SchedPolicy};
use nearnative_knob::exclusivity::task::ThreadAffinity;
use nearnative_knob::{Change, Step};
use nearnative_testkit::tree::{furnish, TreeImage};
use nix::unistd::{chown, Uid};

use crate::nearnative;

/// Runs `args` with `--state-dir state` and checks it fails with one line holding `expected`.
fn refused(args: &[&str], state: &Path, expected: &str) {
    let mut all = args.to_vec();
    all.extend(["--state-dir", state.to_str().unwrap()]);
    let output = nearnative(&all);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.contains(expected), "{args:?}: {stderr}");
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn give_to_nobody(path: &Path) {
    chown(path, Some(Uid::from_raw(65534)), None).unwrap();
}

/// A sleeping child of this test: the process a planted journal names.
struct Sleeper(Child);

impl Sleeper {
    fn start() -> Sleeper {
        Sleeper(Command::new("sleep").arg("60").spawn().unwrap())
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn stat_field(&self, field: usize) -> String {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
        after_comm.split(' ').nth(field - 3).unwrap().to_owned()
    }

    fn start_time(&self) -> u64 {
        self.stat_field(22).parse().unwrap()
    }

    /// `(policy, rt_priority)` from the stat line.
    fn policy(&self) -> (String, String) {
        (self.stat_field(41), self.stat_field(40))
    }

    fn affinity(&self) -> String {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with("Cpus_allowed_list:"))
            .unwrap();
        line.split_whitespace().nth(1).unwrap().to_owned()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Stores journal `name` with `changes` into `state`, as nearnative would.
fn plant(state: &Path, name: &str, changes: Vec<Step>) {
    let state = StateDir::new(state);
    state.ensure().unwrap();
    let id = JournalId::try_from(name).unwrap();
    let mut journal = Journal::new(id.clone());
    journal.changes = changes;
    journal.store(&state.journal_path(&id)).unwrap();
}

#[test]
#[ignore = "needs root: plants a root-owned victim file and hands the state directory to nobody"]
fn a_planted_lock_link_is_refused_and_its_target_keeps_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, "root's file\n").unwrap();
    chmod(&victim, 0o600);
    let state = dir.path().join("state");
    fs::create_dir(&state).unwrap();
    symlink(&victim, state.join("lock")).unwrap();
    let link = format!("{}: is a symbolic link", state.join("lock").display());
    refused(&["revert", "--all"], &state, &link);
    chmod(&state, 0o777);
    give_to_nobody(&state);
    let owner = format!("{}: owned by uid 65534, not by root", state.display());
    refused(&["revert", "--all"], &state, &owner);
    refused(&["status"], &state, &owner);
    assert_eq!(fs::read_to_string(&victim).unwrap(), "root's file\n");
}

#[test]
#[ignore = "needs root: reverts on the live host and hands a state directory to nobody"]
fn a_planted_journal_is_refused_and_the_process_keeps_its_policy() {
    let sleeper = Sleeper::start();
    let before = sleeper.policy();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let fifo_99 = Step::from(Change {
        knob: SchedPolicy {
            pid: sleeper.pid(),
            tid: sleeper.pid(),
            start_time: sleeper.start_time(),
        },
        from: Policy::Fifo { priority: 99 },
        to: Policy::Fifo { priority: 10 },
    });
    plant(&state, "evil", vec![fifo_99]);
    let journal = state.join("journals/evil.json");
    give_to_nobody(&journal);
    let owner = format!("{}: owned by uid 65534, not by root", journal.display());
    refused(&["revert", "--all"], &state, &owner);
    give_to_nobody(&state.join("journals"));
    give_to_nobody(&state);
    chmod(&state, 0o777);
    let owner = format!("{}: owned by uid 65534, not by root", state.display());
    refused(&["revert", "--all"], &state, &owner);
    refused(&["revert", "pid:1"], &state, &owner);
    refused(&["verify", "pid:1"], &state, &owner);
    assert_eq!(sleeper.policy(), before, "the planted journal was obeyed");
    assert!(state.join("journals/evil.json").exists());
}

#[test]
#[ignore = "needs root: reverts on the live host"]
fn a_world_writable_state_dir_is_refused_and_the_process_keeps_its_affinity() {
    let sleeper = Sleeper::start();
    let before = sleeper.affinity();
    let online = fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let first = CpuSet::parse_list(online.trim()).unwrap().first().unwrap();
    let pinned = Step::from(Change {
        knob: ThreadAffinity {
            pid: sleeper.pid(),
            tid: sleeper.pid(),
            start_time: sleeper.start_time(),
        },
        from: CpuSet::from_ids([first]),
        to: CpuSet::from_ids([first]),
    });
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    plant(&state, "pinned", vec![pinned]);
    chmod(&state, 0o777);
    let mode = format!("{}: mode 0777", state.display());
    refused(&["revert", "--all"], &state, &mode);
    refused(&["status"], &state, &mode);
    assert_eq!(sleeper.affinity(), before, "the journal was obeyed");
}

#[test]
fn apply_into_a_world_writable_state_dir_is_refused_and_the_tree_untouched() {
    let snapshot = nearnative_testkit::extract("16em64t-4s2c2t");
    furnish(&snapshot.root);
    let before = TreeImage::take(&snapshot.root);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    fs::create_dir(&state).unwrap();
    chmod(&state, 0o777);
    let root = snapshot.root.to_str().unwrap();
    let mode = format!("{}: mode 0777", state.display());
    refused(&["apply", "pid:4000", "--root", root], &state, &mode);
    let diff = TreeImage::take(&snapshot.root).diff(&before);
    assert!(diff.is_empty(), "the refused apply changed {diff:?}");
    assert!(!state.join("journals").exists());
}
