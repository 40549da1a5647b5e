//! The followed threads: listing `/proc` for candidates (a rescan) and crediting their CPU
//! time growth to the CPU they were last on (a poll). See the parent module for the limits.

use std::collections::{BTreeMap, HashMap, HashSet};

use nearnative_host::tasks::{
    has_vanished, numeric_entries, parse_cgroup, parse_stat, parse_status, ProcessCgroup, TaskKind,
};
use nearnative_host::{CpuSet, ReadError, Root};
use serde::{Deserialize, Serialize};

use super::cpu_time::CpuTimeFile;
use super::{Attribution, CpuTime, ForeignThread, ThreadClass};
use crate::counters::advance;
use crate::unknowns::UnknownLog;
use crate::{SampleSpec, Scope};

/// What following threads cost, for the sample's self-report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackerCost {
    pub rescans: u64,
    pub polls: u64,
    /// Threads seen by the last listing of `/proc`.
    pub threads_listed: u64,
    /// The most candidates followed at once.
    pub candidates_max: u64,
    /// Candidates left unfollowed because `max_threads` were followed already.
    pub threads_not_followed: u64,
    /// Foreign threads that ran on the exclusive CPUs and exited, but were not kept because
    /// `max_threads` such threads were kept already.
    pub exited_dropped: u64,
    pub files_read: u64,
}

/// One followed thread.
#[derive(Debug)]
struct Followed {
    pid: u32,
    comm: String,
    kind: TaskKind,
    class: ThreadClass,
    affinity: CpuSet,
    cpu_time_file: CpuTimeFile,
    /// The last CPU time read; `None` until a first read succeeds.
    runtime_ns: Option<u64>,
    cpu_time: BTreeMap<u32, u64>,
    /// The rescan that last listed the thread.
    listed_in: u64,
    /// Polls in a row that found no growth.
    idle_polls: u32,
}

/// Polls without growth after which a thread counts as idle.
pub const IDLE_AFTER: u32 = 10;
/// An idle thread is read on one poll in this many.
pub const IDLE_STRIDE: u64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    Baseline,
    Poll,
    Final,
}

/// Threads that may run on the exclusive CPUs, with the CPU time they had there.
#[derive(Debug)]
pub struct Tracker<'a> {
    root: &'a Root,
    spec: &'a SampleSpec,
    followed: HashMap<u32, Followed>,
    /// Foreign threads that ran there and then exited or stopped being candidates.
    retired: Vec<(u32, Followed)>,
    /// Every thread id of the previous listing (`None` before the first): a thread missing
    /// from it was born since, so all its CPU time falls within the sample.
    previous_listing: Option<HashSet<u32>>,
    current_listing: HashSet<u32>,
    /// The sampling thread itself: when it could not be pinned off the exclusive CPUs its
    /// own time there shows in the sample's cost, not as a foreign thread.
    own_tid: u32,
    /// The process of each target thread, as listed.
    pub target_pids: BTreeMap<u32, u32>,
    pub cost: TrackerCost,
}

fn thread_dir(pid: u32, tid: u32) -> String {
    format!("/proc/{pid}/task/{tid}")
}

impl<'a> Tracker<'a> {
    pub fn new(root: &'a Root, spec: &'a SampleSpec) -> Self {
        Tracker {
            root,
            spec,
            followed: HashMap::new(),
            retired: Vec::new(),
            previous_listing: None,
            current_listing: HashSet::new(),
            own_tid: nix::unistd::gettid().as_raw() as u32,
            target_pids: BTreeMap::new(),
            cost: TrackerCost::default(),
        }
    }

    /// Lists every thread, starts following new candidates and stops following threads that
    /// exited or whose affinity no longer allows an exclusive CPU.
    pub fn rescan(&mut self, unknowns: &mut UnknownLog) {
        self.cost.rescans += 1;
        let generation = self.cost.rescans;
        let pids = match numeric_entries(self.root, "/proc") {
            Ok(pids) => pids,
            Err(err) => return unknowns.error("threads", &err),
        };
        let mut listed = 0u64;
        for pid in pids {
            let tids = match numeric_entries(self.root, format!("/proc/{pid}/task")) {
                Ok(tids) => tids,
                Err(err) => {
                    if !has_vanished(self.root, &err, &format!("/proc/{pid}")) {
                        unknowns.error(format!("threads of process {pid}"), &err);
                    }
                    continue;
                }
            };
            listed += tids.len() as u64;
            for tid in tids {
                self.visit(pid, tid, generation, unknowns);
            }
        }
        self.cost.threads_listed = listed;
        self.previous_listing = Some(std::mem::take(&mut self.current_listing));
        let gone: Vec<u32> = self
            .followed
            .iter()
            .filter(|(_, f)| f.listed_in != generation)
            .map(|(&tid, _)| tid)
            .collect();
        for tid in gone {
            self.retire(tid);
        }
        self.cost.candidates_max = self.cost.candidates_max.max(self.followed.len() as u64);
    }

    fn visit(&mut self, pid: u32, tid: u32, generation: u64, unknowns: &mut UnknownLog) {
        self.current_listing.insert(tid);
        if self.spec.targets.contains(&tid) {
            self.target_pids.insert(tid, pid);
            return;
        }
        if tid == self.own_tid {
            return;
        }
        let dir = thread_dir(pid, tid);
        let affinity = match self.affinity(tid, &dir) {
            Ok(affinity) => affinity,
            Err(err) => {
                self.failed::<()>(&err, pid, tid, unknowns);
                return;
            }
        };
        let candidate = !affinity.is_disjoint(&self.spec.cpus);
        match self.followed.get_mut(&tid) {
            Some(followed) if followed.pid == pid => {
                followed.listed_in = generation;
                followed.affinity = affinity;
                if !candidate {
                    self.retire(tid);
                }
                return;
            }
            Some(_) => self.retire(tid), // the id was reused by a new thread
            None => {}
        }
        if !candidate {
            return;
        }
        if self.followed.len() >= self.spec.max_threads {
            self.cost.threads_not_followed += 1;
            return;
        }
        if let Some(followed) = self.start_following(pid, tid, affinity, generation, unknowns) {
            self.followed.insert(tid, followed);
        }
    }

    /// The CPUs `tid` may run on. On the live host one `sched_getaffinity` call answers
    /// (ten times cheaper than formatting and parsing `status`, which a rescan would do for
    /// every thread); elsewhere, or if the call fails, `status` does.
    fn affinity(&mut self, tid: u32, dir: &str) -> Result<CpuSet, ReadError> {
        if self.root.is_live() {
            if let Ok(cpus) = nearnative_sys::pin::thread_affinity(tid) {
                return Ok(cpus);
            }
        }
        self.cost.files_read += 1;
        self.root
            .read_parsed(format!("{dir}/status"), parse_status)
            .map(|status| status.cpus_allowed)
    }

    fn start_following(
        &mut self,
        pid: u32,
        tid: u32,
        affinity: CpuSet,
        generation: u64,
        unknowns: &mut UnknownLog,
    ) -> Option<Followed> {
        let dir = thread_dir(pid, tid);
        self.cost.files_read += 2;
        let stat = match self.root.read_parsed(format!("{dir}/stat"), parse_stat) {
            Ok(stat) => stat,
            Err(err) => return self.failed(&err, pid, tid, unknowns),
        };
        let kind = TaskKind::classify(&stat, &affinity);
        let cgroup = self.thread_cgroup(pid, tid, kind, unknowns);
        let cpu_time_file = CpuTimeFile::new(self.root, &dir);
        let runtime_ns = match cpu_time_file.read(self.root) {
            Ok(_) if self.born_since_last_listing(tid) => Some(0),
            Ok(runtime_ns) => Some(runtime_ns),
            Err(err) => return self.failed(&err, pid, tid, unknowns),
        };
        Some(Followed {
            pid,
            comm: stat.comm,
            kind,
            class: classify(kind, self.spec.scope.as_ref(), cgroup.as_ref()),
            affinity,
            cpu_time_file,
            runtime_ns,
            cpu_time: BTreeMap::new(),
            listed_in: generation,
            idle_polls: 0,
        })
    }

    /// True for a thread the previous listing did not have: its whole CPU time is new, and
    /// the next poll credits it to the CPU the thread is on then.
    fn born_since_last_listing(&self, tid: u32) -> bool {
        self.previous_listing
            .as_ref()
            .is_some_and(|previous| !previous.contains(&tid))
    }

    /// The cgroup of a user thread, read per thread since cgroup v1 lets the threads of one
    /// process sit in different cpusets. Only needed, so only read, when a scope is given.
    fn thread_cgroup(
        &mut self,
        pid: u32,
        tid: u32,
        kind: TaskKind,
        unknowns: &mut UnknownLog,
    ) -> Option<ProcessCgroup> {
        if self.spec.scope.is_none() || kind.is_kernel() {
            return None;
        }
        self.cost.files_read += 1;
        let path = format!("{}/cgroup", thread_dir(pid, tid));
        match self.root.read_parsed(path, parse_cgroup) {
            Ok(cgroup) => Some(cgroup),
            Err(err) => {
                let object = format!("cgroup of thread {tid} (counted as in scope)");
                unknowns.error(object, &err);
                None
            }
        }
    }

    /// Reads the followed threads' CPU time and credits any growth. Threads idle for
    /// [`IDLE_AFTER`] polls are read every [`IDLE_STRIDE`]th poll only (each on its own
    /// round, so the load stays even): most threads of a host sleep, and skipping them cuts
    /// the cost of a poll several times. One that wakes is found at most `IDLE_STRIDE` polls
    /// late, its time credited to the CPU it is on then.
    pub fn poll(&mut self, unknowns: &mut UnknownLog) {
        self.cost.polls += 1;
        self.read_cpu_times(unknowns, Round::Poll);
    }

    /// Reads every followed thread, idle or not: the last poll of a sample.
    pub fn final_poll(&mut self, unknowns: &mut UnknownLog) {
        self.cost.polls += 1;
        self.read_cpu_times(unknowns, Round::Final);
    }

    /// Reads every followed thread's CPU time as the new baseline, crediting nothing: what
    /// ran while a long listing was under way is not part of the sample.
    pub fn rebaseline(&mut self, unknowns: &mut UnknownLog) {
        self.read_cpu_times(unknowns, Round::Baseline);
    }

    fn read_cpu_times(&mut self, unknowns: &mut UnknownLog, round: Round) {
        let (root, cpus) = (self.root, &self.spec.cpus);
        let polls = self.cost.polls;
        let mut gone = Vec::new();
        for (&tid, followed) in &mut self.followed {
            let resting =
                followed.idle_polls >= IDLE_AFTER && (polls + u64::from(tid)) % IDLE_STRIDE != 0;
            if round == Round::Poll && resting {
                continue;
            }
            let dir = thread_dir(followed.pid, tid);
            self.cost.files_read += 1;
            let runtime_ns = match followed.cpu_time_file.read(root) {
                Ok(runtime_ns) => runtime_ns,
                Err(err) => {
                    if !has_vanished(root, &err, &dir) {
                        unknowns.error(format!("CPU time of thread {tid}"), &err);
                    }
                    gone.push(tid);
                    continue;
                }
            };
            let grown = followed
                .runtime_ns
                .map_or(0, |last| advance(last, runtime_ns));
            followed.runtime_ns = Some(runtime_ns);
            followed.idle_polls = match grown {
                0 => followed.idle_polls.saturating_add(1),
                _ => 0,
            };
            if grown == 0 || round == Round::Baseline {
                continue;
            }
            let cpu = match single_cpu(&followed.affinity) {
                Some(cpu) => Some(cpu),
                None => {
                    self.cost.files_read += 1;
                    root.read_parsed(format!("{dir}/stat"), parse_stat)
                        .ok()
                        .map(|s| s.processor)
                }
            };
            if let Some(cpu) = cpu.filter(|&cpu| cpus.contains(cpu)) {
                let credited = followed.cpu_time.entry(cpu).or_default();
                *credited = credited.saturating_add(grown);
            }
        }
        for tid in gone {
            self.retire(tid);
        }
    }

    /// Stops following `tid`, keeping what it ran on the exclusive CPUs.
    fn retire(&mut self, tid: u32) {
        let Some(mut followed) = self.followed.remove(&tid) else {
            return;
        };
        followed.cpu_time_file.close();
        if followed.cpu_time.is_empty() {
            return;
        }
        if self.retired.len() >= self.spec.max_threads {
            self.cost.exited_dropped += 1;
            return;
        }
        self.retired.push((tid, followed));
    }

    fn failed<T>(
        &mut self,
        err: &ReadError,
        pid: u32,
        tid: u32,
        unknowns: &mut UnknownLog,
    ) -> Option<T> {
        if !has_vanished(self.root, err, &thread_dir(pid, tid)) {
            unknowns.error(format!("thread {tid} of process {pid}"), err);
        }
        None
    }

    /// The foreign threads that ran on the exclusive CPUs, most CPU time first.
    pub fn finish(self) -> Vec<ForeignThread> {
        let cpus = &self.spec.cpus;
        let mut threads: Vec<ForeignThread> = self
            .followed
            .into_iter()
            .chain(self.retired)
            .filter(|(_, f)| !f.cpu_time.is_empty())
            .map(|(tid, f)| foreign_thread(tid, f, cpus))
            .collect();
        threads.sort_by(|a, b| b.total_ns.cmp(&a.total_ns).then(a.tid.cmp(&b.tid)));
        threads
    }
}

fn single_cpu(affinity: &CpuSet) -> Option<u32> {
    (affinity.len() == 1).then(|| affinity.first()).flatten()
}

fn foreign_thread(tid: u32, followed: Followed, cpus: &CpuSet) -> ForeignThread {
    let attribution = if single_cpu(&followed.affinity).is_some() {
        Attribution::Exact
    } else if followed.affinity.is_subset(cpus) {
        Attribution::Confined
    } else {
        Attribution::LastCpu
    };
    let cpu_time: Vec<CpuTime> = followed
        .cpu_time
        .into_iter()
        .map(|(cpu, ns)| CpuTime { cpu, ns })
        .collect();
    ForeignThread {
        pid: followed.pid,
        tid,
        comm: followed.comm,
        kind: followed.kind,
        class: followed.class,
        total_ns: cpu_time.iter().fold(0u64, |s, t| s.saturating_add(t.ns)),
        cpu_time,
        attribution,
    }
}

/// A user thread whose cgroup is unknown counts as in scope: the verdict must not pass on a
/// thread it could not place.
fn classify(kind: TaskKind, scope: Option<&Scope>, cgroup: Option<&ProcessCgroup>) -> ThreadClass {
    match (kind, scope, cgroup) {
        (TaskKind::KernelPerCpu, _, _) => ThreadClass::KernelPerCpu,
        (TaskKind::KernelUnbound, _, _) => ThreadClass::KernelUnbound,
        (TaskKind::User, Some(scope), Some(cgroup)) if !scope.contains(cgroup) => {
            ThreadClass::OutsideScope
        }
        (TaskKind::User, _, _) => ThreadClass::InScope,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add_thread(dir: &std::path::Path, tid: u32, runtime_ns: u64, cpu: u32) {
        let task = dir.join(format!("proc/{tid}/task/{tid}"));
        std::fs::create_dir_all(&task).unwrap();
        std::fs::write(task.join("status"), "Cpus_allowed_list:\t0-1\n").unwrap();
        let stat = format!(
            "{tid} (t{tid}) R 1 0 0 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 25 0 0 0 0 0 0 0 0 \
             0 0 0 0 0 0 0 17 {cpu} 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
        );
        std::fs::write(task.join("stat"), stat).unwrap();
        std::fs::write(task.join("schedstat"), format!("{runtime_ns} 0 1\n")).unwrap();
    }

    #[test]
    fn only_time_within_the_sample_is_credited_to_the_cpu_last_seen() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let spec = SampleSpec::new(CpuSet::from_ids([1]));
        let mut unknowns = UnknownLog::default();
        add_thread(dir.path(), 10, 7_000, 1);
        let mut tracker = Tracker::new(&root, &spec);
        tracker.rescan(&mut unknowns);
        add_thread(dir.path(), 10, 9_000, 1);
        add_thread(dir.path(), 20, 5_000, 0);
        tracker.rescan(&mut unknowns);
        add_thread(dir.path(), 20, 6_000, 1);
        tracker.poll(&mut unknowns);
        let threads = tracker.finish();
        let credited: Vec<(u32, u64)> = threads.iter().map(|t| (t.tid, t.total_ns)).collect();
        // Thread 10 existed before the sample: only its growth counts. Thread 20 was born
        // during it: all its time counts, credited to where it is seen at the poll.
        assert_eq!(credited, [(20, 6_000), (10, 2_000)]);
        assert!(unknowns.into_vec().is_empty());
    }

    #[test]
    fn idle_threads_are_read_less_often_but_lose_no_time() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let spec = SampleSpec::new(CpuSet::from_ids([1]));
        let mut unknowns = UnknownLog::default();
        add_thread(dir.path(), 10, 1_000, 1);
        let mut tracker = Tracker::new(&root, &spec);
        tracker.rescan(&mut unknowns);
        let before = tracker.cost.files_read;
        let polls = 10 * IDLE_STRIDE;
        for _ in 0..polls {
            tracker.poll(&mut unknowns);
        }
        let reads = tracker.cost.files_read - before;
        assert!(reads < polls / 2, "{reads} reads in {polls} idle polls");
        add_thread(dir.path(), 10, 4_000, 1);
        tracker.poll(&mut unknowns);
        tracker.final_poll(&mut unknowns);
        let threads = tracker.finish();
        assert_eq!(threads[0].total_ns, 3_000);
    }

    #[test]
    fn classes_follow_kind_and_scope() {
        let scope = Scope::Cgroup("/vms/a".into());
        let inside = ProcessCgroup {
            cpuset_v1: Some("/vms/a".into()),
            unified: None,
        };
        let outside = ProcessCgroup {
            cpuset_v1: Some("/other".into()),
            unified: Some("/".into()),
        };
        let cases = [
            ("no scope", TaskKind::User, None, None, ThreadClass::InScope),
            (
                "inside",
                TaskKind::User,
                Some(&scope),
                Some(&inside),
                ThreadClass::InScope,
            ),
            (
                "outside",
                TaskKind::User,
                Some(&scope),
                Some(&outside),
                ThreadClass::OutsideScope,
            ),
            (
                "cgroup unknown",
                TaskKind::User,
                Some(&scope),
                None,
                ThreadClass::InScope,
            ),
            (
                "per-CPU kthread",
                TaskKind::KernelPerCpu,
                Some(&scope),
                Some(&outside),
                ThreadClass::KernelPerCpu,
            ),
            (
                "unbound kthread",
                TaskKind::KernelUnbound,
                None,
                None,
                ThreadClass::KernelUnbound,
            ),
        ];
        for (what, kind, scope, cgroup, expected) in cases {
            assert_eq!(classify(kind, scope, cgroup), expected, "{what}");
        }
    }
}
