//! Putting journaled changes back, newest first: shared by an apply's rollback and by
//! `revert`. A knob already at its prior value is left alone (so restoring twice is harmless);
//! a task that exited or a kernel object that vanished has nothing left to restore.

use std::time::{Duration, Instant};

use nearnative_knob::exclusivity::cgroup::{CgroupDir, Presence};
use nearnative_knob::{Backend, Described, KnobError, Step};

use crate::threads::Threads;

/// What restoring a list of changes came to.
#[derive(Debug, Default)]
pub struct Restored {
    /// Written back to the prior value.
    pub restored: Vec<Described>,
    /// Already at the prior value (never changed, or restored before).
    pub already: Vec<Described>,
    /// The task exited or the object is gone: nothing to restore.
    pub vanished: Vec<Described>,
    /// Could not be restored, in journal order: what a journal keeps for the next revert.
    pub failed: Vec<(Step, KnobError)>,
}

impl Restored {
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Restores `changes` (in the order they were made) from the last to the first. Before a
/// cgroup the journal created is torn down, the tasks born in it since are moved to its
/// parent, so the cgroup can be emptied and removed.
pub fn restore(changes: &[Step], backend: &dyn Backend) -> Restored {
    let mut outcome = Restored::default();
    let mut evacuated = Vec::new();
    let mut threads = Threads::new(backend);
    for step in changes.iter().rev() {
        if let Some(created) = created_cgroup_of(step, changes) {
            if !evacuated.contains(&created.cgroup) {
                evacuate(created, changes, backend, &mut outcome);
                evacuated.push(created.cgroup.clone());
            }
        }
        if !is_thread_step(step) {
            // Cgroups change from here on: what their lists said may no longer hold.
            threads.forget_lists();
        }
        let knob = step.describe();
        let result = threads.holds_prior(step).and_then(|holds| match holds {
            true => Ok(false),
            false => threads.write_prior(step).map(|()| true),
        });
        match result {
            Ok(true) => outcome.restored.push(knob),
            Ok(false) => outcome.already.push(knob),
            Err(KnobError::Gone { .. } | KnobError::Missing { .. }) => outcome.vanished.push(knob),
            Err(err) => outcome.failed.push((step.clone(), err)),
        }
    }
    outcome.failed.reverse();
    outcome
}

fn is_thread_step(step: &Step) -> bool {
    matches!(step, Step::ThreadAffinity(_) | Step::TaskCgroup(_))
}

/// True when `step` configures or creates a cgroup that `changes` created (and their revert
/// removes).
pub fn in_created_cgroup(step: &Step, changes: &[Step]) -> bool {
    created_cgroup_of(step, changes).is_some()
}

/// The cgroup `step` configures or creates, when `changes` created it.
fn created_cgroup_of<'c>(step: &Step, changes: &'c [Step]) -> Option<&'c CgroupDir> {
    let cgroup = match step {
        Step::CgroupDir(c) => &c.knob.cgroup,
        Step::CpusetCpus(c) => &c.knob.cgroup,
        Step::CpusetMems(c) => &c.knob.cgroup,
        Step::CpusetCpuExclusive(c) => &c.knob.cgroup,
        Step::CpusetPartition(c) => &c.knob.cgroup,
        _ => return None,
    };
    changes.iter().find_map(|s| match s {
        Step::CgroupDir(c) if c.from == Presence::Absent && &c.knob.cgroup == cgroup => {
            Some(&c.knob)
        }
        _ => None,
    })
}

/// How long a created cgroup may take to empty: the threads of a workload killed during the
/// apply stay listed until the kernel has finished their exit, and until then the cgroup
/// refuses to have its CPUs emptied (ENOSPC) or to be removed (EBUSY).
const EXITING_TASKS_WAIT: Duration = Duration::from_secs(2);

/// Moves the tasks in `created` (born there since the apply, or whose move back failed) out,
/// then waits for the ones still exiting to leave, so that restoring its files and removing it
/// asks nothing of the kernel it must refuse. A cgroup that does not empty in time is not an
/// error here: the writes that follow fail, name the cgroup, and the journal keeps them.
fn evacuate(created: &CgroupDir, changes: &[Step], backend: &dyn Backend, outcome: &mut Restored) {
    let deadline = Instant::now() + EXITING_TASKS_WAIT;
    loop {
        move_out(created, changes, backend, outcome);
        if !created.holds_tasks(backend) || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Moves the tasks in `created` to where their process was before the apply (its journaled
/// cgroup), else to the parent.
fn move_out(created: &CgroupDir, changes: &[Step], backend: &dyn Backend, outcome: &mut Restored) {
    let mount = &created.cgroup.mount;
    let home = |pid: u32| {
        changes.iter().find_map(|step| match step {
            Step::TaskCgroup(c) if c.knob.pid == pid && c.knob.hierarchy.mount() == mount => {
                Some(c.from.as_str().to_owned())
            }
            _ => None,
        })
    };
    let Ok(moved) = created.evacuate(backend, &home) else {
        return;
    };
    outcome.restored.extend(moved.into_iter().map(|task| {
        Described::new(
            format!(
                "thread {} of process {} (started after the apply)",
                task.tid, task.pid
            ),
            format!("moved out of {}", created.cgroup.dir().display()),
        )
    }));
}

/// One line per failure, for error messages.
pub fn failure_lines(failed: &[(Step, KnobError)]) -> String {
    failed.iter().map(|(_, err)| format!("\n  {err}")).collect()
}
