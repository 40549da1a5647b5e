//! What the state directory holds, read once per round: each plan record with its journal's
//! status, and whether the workload still runs. The records are the truth the loop compares
//! the policies with; it keeps no list of its own.
//!
//! Whether an apply died part-way is decided apart ([`find_died`]): a record read without the
//! state lock may belong to an apply still running, or one that completed a moment later.

use nearnative_apply::journal::{Journal, JournalStatus};
use nearnative_apply::{JournalId, StateDir};
use nearnative_engine::{workload_runs, AppliedPlan, EngineError, APPLIED_SCHEMA_VERSION};
use nearnative_host::cgroup::is_within;
use nearnative_host::Root;
use nearnative_sys::durable;
use nearnative_sys::lock::{LockError, StateLock};

use crate::reconcile::Held;

/// One plan record and its journal.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: JournalId,
    pub applied: AppliedPlan,
    pub journal: Option<JournalStatus>,
    pub alive: bool,
    /// Its apply died part-way: found so under the state lock ([`find_died`]).
    pub died: bool,
}

impl Record {
    /// The record as the round's decision sees it.
    pub fn held(&self) -> Held {
        Held {
            key: self.applied.plan.workload.clone(),
            target: self.applied.plan.target.to_string(),
            request: self.applied.request.clone(),
            origin: self.applied.origin.clone(),
            alive: self.alive,
            unfinished: self.died,
        }
    }

    /// An apply not seen complete: its journal `in_progress` (or its rollback incomplete),
    /// or no journal yet (an apply stores its record before it creates the journal).
    fn suspect(&self) -> bool {
        unfinished(self.journal)
    }
}

fn unfinished(journal: Option<JournalStatus>) -> bool {
    matches!(
        journal,
        None | Some(JournalStatus::InProgress | JournalStatus::RollbackIncomplete)
    )
}

/// Every plan record of `state` planned within `scope` (the daemon's `--scope`; `None`: the
/// whole host), in id order, with whether its workload still runs. A record planned outside
/// it (by the CLI, or by a daemon of another scope) is none of this daemon's business: it is
/// neither kept, nor released, nor shown.
pub fn read(
    state: &StateDir,
    root: &Root,
    scope: Option<&str>,
) -> Result<Vec<Record>, EngineError> {
    let mut records = Vec::new();
    if !state.dir().is_dir() {
        return Ok(records);
    }
    state.check()?;
    for id in state.plan_ids()? {
        let Some(applied) =
            durable::load::<AppliedPlan>(&state.plan_path(&id), APPLIED_SCHEMA_VERSION)?
        else {
            continue;
        };
        if !planned_within(applied.request.scope.as_deref(), scope) {
            continue;
        }
        let journal = Journal::load(&state.journal_path(&id))?.map(|j| j.status);
        let alive = workload_runs(root, &applied.threads);
        records.push(Record {
            id,
            applied,
            journal,
            alive,
            died: false,
        });
    }
    Ok(records)
}

/// Whether a plan made in `planned` (its request's scope; `None`: the whole host) lies within
/// the daemon's `scope`.
fn planned_within(planned: Option<&str>, scope: Option<&str>) -> bool {
    scope.map_or(true, |scope| is_within(planned.unwrap_or("/"), scope))
}

/// Marks the records whose apply died part-way. An apply holds the state lock from before
/// it stores its record until its journal is complete, so a record found suspect without
/// the lock is judged under it: when nobody holds it, the journal is read again, and one
/// still unfinished (or still missing) belongs to an apply that died. When an apply or a
/// revert holds the lock, nothing is marked: the next round looks again. The caller holds
/// the daemon's turn, so no request of its own control socket is that apply.
pub fn find_died(state: &StateDir, records: &mut [Record]) -> Result<(), EngineError> {
    if !records.iter().any(Record::suspect) {
        return Ok(());
    }
    let _lock = match StateLock::acquire(state.dir()) {
        Ok(lock) => lock,
        Err(LockError::Busy { .. }) => return Ok(()),
        Err(err) => return Err(err.into()),
    };
    for record in records.iter_mut().filter(|r| r.suspect()) {
        record.journal = Journal::load(&state.journal_path(&record.id))?.map(|j| j.status);
        let still_held = state.plan_path(&record.id).exists();
        record.died = still_held && unfinished(record.journal);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::*;

    /// Two applied workloads (`cgroup:/nn sp`, `pid:4000`), with their journals.
    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../engine/tests/fixtures/main-ids-state"
    );

    /// Copies a state directory as nearnative makes one: directories 0700, files 0600.
    fn copy_private(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        fs::set_permissions(to, fs::Permissions::from_mode(0o700)).unwrap();
        for entry in fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_private(&entry.path(), &target);
            } else {
                fs::copy(entry.path(), &target).unwrap();
                fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
            }
        }
    }

    fn set_status(state: &StateDir, id: &str, status: JournalStatus) {
        let path = state.journal_path(&JournalId::try_from(id).unwrap());
        let mut journal = Journal::load(&path).unwrap().unwrap();
        journal.status = status;
        journal.store(&path).unwrap();
    }

    fn died(records: &[Record]) -> Vec<&str> {
        let died = records.iter().filter(|r| r.died);
        died.map(|r| r.id.as_str()).collect()
    }

    #[test]
    fn an_apply_is_judged_dead_only_under_the_state_lock() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        copy_private(Path::new(FIXTURE), state.dir());
        set_status(&state, "pid-4000", JournalStatus::InProgress);
        let mut records = read(&state, &Root::default(), None).unwrap();
        assert_eq!(records.len(), 2);

        // The apply completes between the read and the judgement: not dead.
        set_status(&state, "pid-4000", JournalStatus::Applied);
        // An apply killed between storing its record and creating its journal: dead.
        fs::remove_file(state.journal_path(&JournalId::try_from("cgroup--nn-sp").unwrap()))
            .unwrap();
        records[0].journal = None;
        let busy = StateLock::acquire(state.dir()).unwrap();
        find_died(&state, &mut records).unwrap();
        assert!(died(&records).is_empty(), "an apply holds the lock");
        drop(busy);
        find_died(&state, &mut records).unwrap();
        assert_eq!(died(&records), ["cgroup--nn-sp"]);
        assert!(records.iter().all(|r| r.died == r.held().unfinished));
    }

    #[test]
    fn records_planned_outside_the_daemons_scope_are_left_out() {
        let cases = [
            (None, None, true),
            (None, Some("/s"), false),
            (Some("/s"), Some("/s"), true),
            (Some("/s/t"), Some("/s"), true),
            (Some("/st"), Some("/s"), false),
            (Some("/x"), None, true),
            (None, Some("/"), true),
        ];
        for (planned, scope, within) in cases {
            assert_eq!(
                planned_within(planned, scope),
                within,
                "{planned:?} in {scope:?}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        copy_private(Path::new(FIXTURE), state.dir());
        let root = Root::default();
        assert_eq!(read(&state, &root, None).unwrap().len(), 2);
        assert!(read(&state, &root, Some("/nn-d")).unwrap().is_empty());
    }
}
