//! Reading and writing the per-thread knobs of many threads without reading `/proc` more than
//! needed. Through its [`Knob`], a thread's affinity or cgroup costs two `/proc` reads to read
//! (its `stat` for the start-time guard, then `status` or `cgroup`) and another one or two to
//! write; with 10 000 threads, those reads are most of an apply. An affinity is asked of the
//! backend first, which on the live host answers with one system call where that is exact.
//!
//! So here a thread's start time is checked once per [`Threads`] (one apply, or one restore):
//! once it matched, the tid is taken to name the same thread for the rest of that run, which
//! lasts seconds, while the kernel hands out tids cyclically. A thread's cgroup in a v1
//! hierarchy is read from the cgroup's `tasks` list, read once for all the threads the plan
//! expects there; a thread not listed is read through its knob as usual. Every other knob goes
//! through [`Step`]'s own methods.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use nearnative_host::ReadError;
use nearnative_knob::backend::{cgroup_dir, CgroupLine, TaskId, TaskMove};
use nearnative_knob::error::Object;
use nearnative_knob::exclusivity::cgroup::{Hierarchy, TaskCgroup};
use nearnative_knob::exclusivity::task::{check_same_thread, parse_allowed_list, ThreadAffinity};
use nearnative_knob::{Backend, CgroupPath, Change, Described, Knob, KnobError, Step};

/// What one run has learnt about threads and cgroup lists.
pub(crate) struct Threads<'b> {
    backend: &'b dyn Backend,
    /// Threads whose start time matched.
    same: HashSet<(u32, u32)>,
    /// The tids in a v1 cgroup's `tasks` file (`None`: unreadable), by the file's path.
    listed: HashMap<PathBuf, Option<HashSet<u32>>>,
}

impl<'b> Threads<'b> {
    pub(crate) fn new(backend: &'b dyn Backend) -> Self {
        Threads {
            backend,
            same: HashSet::new(),
            listed: HashMap::new(),
        }
    }

    /// Drops the cgroup lists read so far: threads have moved since.
    pub(crate) fn forget_lists(&mut self) {
        self.listed.clear();
    }

    /// `step` with `from` replaced by the value read now.
    pub(crate) fn with_current(&mut self, step: &Step) -> Result<Step, KnobError> {
        match step {
            Step::ThreadAffinity(c) => {
                let from = self.affinity(&c.knob)?;
                Ok(Step::from(Change { from, ..c.clone() }))
            }
            Step::TaskCgroup(c) if is_v1(&c.knob) => {
                let from = self.cgroup(&c.knob, &c.from, &c.to)?;
                Ok(Step::from(Change { from, ..c.clone() }))
            }
            other => other.with_current(self.backend),
        }
    }

    pub(crate) fn write_target(&mut self, step: &Step) -> Result<(), KnobError> {
        match step {
            Step::ThreadAffinity(c) => self.set_affinity(&c.knob, &c.to),
            Step::TaskCgroup(c) if is_v1(&c.knob) => self.move_thread(&c.knob, &c.to),
            other => other.write_target(self.backend),
        }
    }

    pub(crate) fn holds_prior(&mut self, step: &Step) -> Result<bool, KnobError> {
        match step {
            Step::ThreadAffinity(c) => Ok(self.affinity(&c.knob)? == c.from),
            Step::TaskCgroup(c) if is_v1(&c.knob) => {
                Ok(self.cgroup(&c.knob, &c.from, &c.to)? == c.from)
            }
            other => other.holds_prior(self.backend),
        }
    }

    pub(crate) fn write_prior(&mut self, step: &Step) -> Result<(), KnobError> {
        match step {
            Step::ThreadAffinity(c) => self.set_affinity(&c.knob, &c.from),
            Step::TaskCgroup(c) if is_v1(&c.knob) => self.move_thread(&c.knob, &c.from),
            other => other.write_prior(self.backend),
        }
    }

    /// Fails with `Gone` unless the thread is the one that started at `start_time`; checked
    /// once per thread.
    fn check(
        &mut self,
        knob: &Described,
        pid: u32,
        tid: u32,
        start_time: u64,
    ) -> Result<(), KnobError> {
        if self.same.contains(&(pid, tid)) {
            return Ok(());
        }
        check_same_thread(self.backend, knob, TaskId { pid, tid }, start_time)?;
        self.same.insert((pid, tid));
        Ok(())
    }

    fn affinity(&mut self, knob: &ThreadAffinity) -> Result<nearnative_host::CpuSet, KnobError> {
        let described = knob.describe();
        self.check(&described, knob.pid, knob.tid, knob.start_time)?;
        let task = TaskId {
            pid: knob.pid,
            tid: knob.tid,
        };
        let quick = self.backend.thread_affinity(task).map_err(|source| {
            let err = ReadError::Io {
                path: task.proc_dir(),
                source,
            };
            KnobError::from_read(described.clone(), Object::Task, err)
        })?;
        if let Some(cpus) = quick {
            return Ok(cpus);
        }
        let status = self
            .backend
            .root()
            .read_to_string(task.proc_dir().join("status"))
            .map_err(|e| KnobError::from_read(described.clone(), Object::Task, e))?;
        parse_allowed_list(&status).map_err(|reason| KnobError::Parse {
            knob: described,
            value: "Cpus_allowed_list".to_owned(),
            reason,
        })
    }

    fn set_affinity(
        &mut self,
        knob: &ThreadAffinity,
        cpus: &nearnative_host::CpuSet,
    ) -> Result<(), KnobError> {
        if cpus.is_empty() {
            // The knob refuses it with its own message.
            return knob.write(self.backend, cpus);
        }
        let described = knob.describe();
        self.check(&described, knob.pid, knob.tid, knob.start_time)?;
        let task = TaskId {
            pid: knob.pid,
            tid: knob.tid,
        };
        self.backend
            .set_thread_affinity(task, cpus)
            .map_err(|e| KnobError::from_write(described, Object::Task, e))
    }

    /// The thread's cgroup: `expected` or `other` when a `tasks` list shows it there, else
    /// read through the knob.
    fn cgroup(
        &mut self,
        knob: &TaskCgroup,
        expected: &CgroupPath,
        other: &CgroupPath,
    ) -> Result<CgroupPath, KnobError> {
        self.check(&knob.describe(), knob.pid, knob.tid, knob.start_time)?;
        for path in [expected, other] {
            if self.is_listed(knob, path) {
                return Ok(path.clone());
            }
        }
        knob.read(self.backend)
    }

    fn is_listed(&mut self, knob: &TaskCgroup, path: &CgroupPath) -> bool {
        let file = tasks_file(knob, path);
        let root = self.backend.root();
        let list = self.listed.entry(file).or_insert_with_key(|file| {
            let text = root.read_to_string(file).ok()?;
            Some(
                text.split_whitespace()
                    .filter_map(|t| t.parse().ok())
                    .collect(),
            )
        });
        list.as_ref().is_some_and(|tids| tids.contains(&knob.tid))
    }

    fn move_thread(&mut self, knob: &TaskCgroup, to: &CgroupPath) -> Result<(), KnobError> {
        let target = tasks_file(knob, to);
        let known = matches!(self.listed.get(&target), Some(Some(_)));
        if !known && !self.backend.root().exists(&target) {
            // Through the knob, which names the missing cgroup.
            return knob.write(self.backend, to);
        }
        let described = knob.describe();
        self.check(&described, knob.pid, knob.tid, knob.start_time)?;
        let Hierarchy::V1 { mount, controller } = &knob.hierarchy else {
            return knob.write(self.backend, to);
        };
        let task_move = TaskMove {
            task: TaskId {
                pid: knob.pid,
                tid: knob.tid,
            },
            mount: mount.as_path().to_owned(),
            line: CgroupLine::V1 {
                controller: String::from(controller.clone()),
            },
            to: to.as_str().to_owned(),
            file: "tasks",
            id: knob.tid,
        };
        self.backend.move_task(&task_move).map_err(|e| {
            let knob = Described::new(described.object, target.display().to_string());
            KnobError::from_write(knob, Object::Task, e)
        })
    }
}

fn is_v1(knob: &TaskCgroup) -> bool {
    matches!(knob.hierarchy, Hierarchy::V1 { .. })
}

/// The `tasks` file of cgroup `path` in the knob's hierarchy, as a host path.
fn tasks_file(knob: &TaskCgroup, path: &CgroupPath) -> PathBuf {
    cgroup_dir(knob.hierarchy.mount().as_path(), path.as_str()).join("tasks")
}
