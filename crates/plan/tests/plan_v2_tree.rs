//! The cgroup v2 plan end to end on a real snapshot made to have a v2 hierarchy with the
//! cpuset controller: inspect the tree, plan, apply through the journal with the tree
//! backend, find each fake thread where the plan put it (cgroup and affinity), revert, and
//! compare the whole tree byte for byte. 1:1, a pool, partitions under the root, and threads
//! born in the plan's cgroups after the apply.

use std::fs;
use std::path::Path;

use nearnative_apply::{apply, revert, JournalId, RevertTarget, StateDir};
use nearnative_host::{CpuSet, Host, InspectOptions, Root};
use nearnative_knob::{Step, TreeBackend};
use nearnative_plan::{plan, Fencing, Ledger, Note, Plan, PlanRequest, Target};
use nearnative_testkit::tree::{self, list_ids, stat_line, Cpus, TreeImage, PID, TIDS, V2_MOUNT};
use nearnative_testkit::Snapshot;
use tempfile::TempDir;

const SNAPSHOT: &str = "16em64t-4s2c2t";
/// A process in a sibling cgroup of the VM's, and one directly in the root.
const SIBLING: u32 = 4100;
const IN_ROOT: u32 = 4200;

/// A furnished snapshot whose only cgroup mount is v2 at [`V2_MOUNT`], the root handing
/// cpuset down; the fake process [`PID`] (threads [`TIDS`]) in `vm_cgroup`, [`SIBLING`] in
/// `/other.scope` and [`IN_ROOT`] in the root.
struct V2Tree {
    snapshot: Snapshot,
    cpus: Cpus,
    backend: TreeBackend,
    _state_dir: TempDir,
    state: StateDir,
}

impl V2Tree {
    fn new(vm_cgroup: &str) -> V2Tree {
        let snapshot = nearnative_testkit::extract(SNAPSHOT);
        let cpus = tree::furnish(&snapshot.root);
        let root = snapshot.root.as_path();
        write(
            root,
            "/proc/self/mountinfo",
            &format!("30 25 0:26 / {V2_MOUNT} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"),
        );
        let all = format!("{}\n", cpus.online.to_list());
        write(root, &cg("/", "cgroup.controllers"), "cpuset cpu\n");
        write(root, &cg("/", "cgroup.subtree_control"), "cpuset cpu\n");
        write(root, &cg("/", "cpuset.cpus.effective"), &all);
        let mut cgroups = vec!["/other.scope"];
        if vm_cgroup != "/" {
            cgroups.push(vm_cgroup);
        }
        for path in cgroups {
            for (file, content) in [
                ("cgroup.controllers", "cpuset cpu\n"),
                ("cgroup.subtree_control", "\n"),
                ("cgroup.type", "domain\n"),
                ("cpuset.cpus", "\n"),
                ("cpuset.cpus.effective", &all),
                ("cpuset.mems", "\n"),
                ("cpuset.cpus.partition", "member\n"),
            ] {
                write(root, &cg(path, file), content);
            }
        }
        let mask = cpus.online.to_mask(cpus.mask_words);
        let processes: [(u32, &[u32], &str); 3] = [
            (PID, &TIDS, vm_cgroup),
            (SIBLING, &[SIBLING], "/other.scope"),
            (IN_ROOT, &[IN_ROOT], "/"),
        ];
        for (pid, tids, path) in processes {
            place(root, pid, tids, path, &mask, &all);
        }
        let state_dir = tempfile::tempdir().unwrap();
        V2Tree {
            backend: TreeBackend::new(root),
            state: StateDir::new(state_dir.path().join("state")),
            _state_dir: state_dir,
            cpus,
            snapshot,
        }
    }

    fn root(&self) -> &Path {
        &self.snapshot.root
    }

    fn host(&self) -> Host {
        Host::read(&Root::new(self.root()), &InspectOptions::default())
    }

    fn read(&self, path: &str) -> String {
        fs::read_to_string(Root::new(self.root()).path(path)).unwrap()
    }

    /// Thread `tid`'s v2 cgroup and allowed CPUs, as the tree shows them.
    fn thread(&self, pid: u32, tid: u32) -> (String, CpuSet) {
        let dir = format!("/proc/{pid}/task/{tid}");
        let cgroup = self.read(&format!("{dir}/cgroup"));
        let path = cgroup.trim().strip_prefix("0::").unwrap().to_owned();
        let status = self.read(&format!("{dir}/status"));
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:\t"))
            .unwrap();
        (path, CpuSet::parse_list(list).unwrap())
    }

    /// Plans, applies and checks the plan took: returns it and the tree before.
    fn apply(&self, request: &PlanRequest) -> (Plan, TreeImage) {
        let host = self.host();
        assert_eq!(host.isolation.cgroups.cpuset_version, Some(2));
        let plan = plan(&host, request, &Ledger::new()).unwrap_or_else(|e| panic!("{e}"));
        let before = TreeImage::take(self.root());
        let report = apply(&plan.steps(), &self.backend, &self.state, &id())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(report.vanished.is_empty(), "{:?}", report.vanished);
        for step in plan.steps() {
            let holds = step.holds_target(&self.backend).unwrap();
            assert!(holds, "{} after apply", step.describe());
        }
        (plan, before)
    }

    fn revert(&self) {
        revert(&self.state, &RevertTarget::One(id()), &self.backend)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn assert_unchanged(&self, before: &TreeImage) {
        let after = TreeImage::take(self.root());
        assert!(
            &after == before,
            "changed by apply + revert: {:?}",
            before.diff(&after)
        );
    }
}

fn id() -> JournalId {
    JournalId::try_from("v2-tree").unwrap()
}

fn cg(path: &str, file: &str) -> String {
    match path {
        "/" => format!("{V2_MOUNT}/{file}"),
        _ => format!("{V2_MOUNT}{path}/{file}"),
    }
}

fn write(root: &Path, path: &str, content: &str) {
    let real = Root::new(root).path(path);
    fs::create_dir_all(real.parent().unwrap()).unwrap();
    fs::write(real, content).unwrap();
}

/// Process `pid` with `tids` in cgroup `path`, each thread allowed on every CPU, listed in the
/// cgroup's `cgroup.procs` and `cgroup.threads`.
fn place(root: &Path, pid: u32, tids: &[u32], path: &str, mask: &str, all: &str) {
    let line = format!("0::{path}\n");
    write(root, &format!("/proc/{pid}/cgroup"), &line);
    for &tid in tids {
        let dir = format!("/proc/{pid}/task/{tid}");
        write(root, &format!("{dir}/stat"), &stat_line(tid));
        write(
            root,
            &format!("{dir}/status"),
            &format!(
                "Name:\tfake worker\nPid:\t{tid}\nCpus_allowed:\t{mask}\nCpus_allowed_list:\t{all}"
            ),
        );
        write(root, &format!("{dir}/cgroup"), &line);
    }
    list_ids(root, &cg(path, "cgroup.procs"), &[pid]);
    list_ids(root, &cg(path, "cgroup.threads"), tids);
}

/// `pid:PID` with its second thread exclusive (the "vCPU"), the first on housekeeping.
fn one_worker() -> PlanRequest {
    let mut request = PlanRequest::new(Target::Pid(PID));
    request.threads = Some(vec![TIDS[1]]);
    request
}

fn child(root: &str, suffix: &str) -> String {
    match root {
        "/" => format!("/nearnative-pid-{PID}-{suffix}"),
        _ => format!("{root}/nearnative-pid-{PID}-{suffix}"),
    }
}

#[test]
fn one_to_one_applies_inside_the_vms_cgroup_and_reverts_byte_identically() {
    let bench = V2Tree::new("/vm.scope");
    let (plan, before) = bench.apply(&one_worker());
    assert!(
        matches!(&plan.scope.fencing, Fencing::CpusetV2 { thread_root, .. } if thread_root == "/vm.scope"),
        "{:?}",
        plan.scope.fencing
    );
    let cpu = plan.allocation.slots[0].cpu;
    let exclusive = plan.allocation.exclusive_cpus.clone();
    let housekeeping = plan.allocation.housekeeping.clone();
    assert_eq!(
        bench.thread(PID, TIDS[1]),
        (child("/vm.scope", "t0"), CpuSet::from_ids([cpu])),
        "the worker alone on its CPU, in its threaded cgroup"
    );
    assert_eq!(
        bench.thread(PID, TIDS[0]),
        (child("/vm.scope", "hk"), housekeeping.clone()),
        "the main thread on housekeeping"
    );
    assert_eq!(
        bench.thread(IN_ROOT, IN_ROOT),
        (child("/", "hk"), housekeeping.clone()),
        "the root's process moved whole, into a domain cgroup"
    );
    let sibling = bench.thread(SIBLING, SIBLING);
    assert_eq!(sibling.0, "/other.scope", "the sibling stays in its cgroup");
    let other_cpus = bench.read(&cg("/other.scope", "cpuset.cpus"));
    let other_cpus = CpuSet::parse_list(other_cpus.trim()).unwrap();
    assert_eq!(
        other_cpus,
        bench.cpus.online.difference(&exclusive),
        "but loses X"
    );
    assert_eq!(
        bench.read(&cg("/vm.scope", "cgroup.subtree_control")),
        "cpuset\n"
    );
    let t0 = child("/vm.scope", "t0");
    assert_eq!(bench.read(&cg(&t0, "cgroup.type")), "threaded\n");
    assert_eq!(
        bench.read(&cg(&t0, "cgroup.threads")),
        format!("{}\n", TIDS[1])
    );
    assert_eq!(bench.read(&cg(&t0, "cpuset.cpus.partition")), "member\n");
    assert_eq!(
        bench.read(&format!("/proc/{PID}/cgroup")),
        format!("0::{}\n", child("/vm.scope", "hk")),
        "the leader's cgroup is the process's"
    );
    bench.revert();
    bench.assert_unchanged(&before);
}

#[test]
fn a_pool_applies_and_reverts_byte_identically() {
    let bench = V2Tree::new("/vm.scope");
    let mut request = PlanRequest::new(Target::Pid(PID));
    request.threads = Some(TIDS.to_vec());
    request.cores = Some(1);
    let (plan, before) = bench.apply(&request);
    let pool = plan.pool.clone().unwrap();
    assert_eq!(pool.cgroup, Some(child("/vm.scope", "pool")));
    for tid in TIDS {
        assert_eq!(
            bench.thread(PID, tid),
            (child("/vm.scope", "pool"), pool.cpus.clone()),
            "thread {tid} shares the pool"
        );
    }
    bench.revert();
    bench.assert_unchanged(&before);
}

#[test]
fn under_the_root_each_exclusive_cgroup_is_an_isolated_partition_until_revert() {
    let bench = V2Tree::new("/");
    let (plan, before) = bench.apply(&one_worker());
    let t0 = child("/", "t0");
    assert_eq!(bench.read(&cg(&t0, "cpuset.cpus.partition")), "isolated\n");
    assert_eq!(bench.thread(PID, TIDS[1]).0, t0);
    assert_eq!(
        bench.thread(IN_ROOT, IN_ROOT).0,
        child("/", "hk"),
        "a resident of the root's threaded subtree now"
    );
    assert!(plan
        .notes
        .iter()
        .all(|n| !matches!(n, Note::NotPartitions { .. })));
    bench.revert();
    bench.assert_unchanged(&before);
}

/// The kernel shows `isolated invalid (reason)` for a partition it had to give up. The planner
/// (through inspect) and the knob read that file through one definition, so a replan's prior
/// value is what apply reads: no false "drifted", and the partition is requested again
/// instead of being skipped as "already set".
#[test]
fn an_invalid_partition_reads_the_same_to_the_planner_and_the_knob() {
    let bench = V2Tree::new("/");
    bench.apply(&one_worker());
    let t0 = child("/", "t0");
    let invalid = "isolated invalid (Cpu list in cpuset.cpus not exclusive)\n";
    write(bench.root(), &cg(&t0, "cpuset.cpus.partition"), invalid);
    let replan =
        plan(&bench.host(), &one_worker(), &Ledger::new()).unwrap_or_else(|e| panic!("{e}"));
    let step = replan
        .steps()
        .into_iter()
        .find(|s| matches!(s, Step::CpusetPartition(c) if c.knob.cgroup.path.as_str() == t0))
        .expect("the invalid partition is planned again");
    let current = step.with_current(&bench.backend).unwrap();
    assert!(
        current.same_prior(&step),
        "no drift: {:?}",
        current.values()
    );
    assert!(!current.is_noop(), "not skipped as already set");
    assert_eq!(
        current.values(),
        (invalid.trim().to_owned(), "isolated".to_owned())
    );
    current.write_target(&bench.backend).unwrap();
    assert_eq!(bench.read(&cg(&t0, "cpuset.cpus.partition")), "isolated\n");
}

#[test]
fn threads_born_in_the_plans_cgroups_return_to_the_vms_cgroup_on_revert() {
    let bench = V2Tree::new("/vm.scope");
    bench.apply(&one_worker());
    let hk = child("/vm.scope", "hk");
    let born = TIDS[1] + 1;
    let root = bench.root();
    let dir = format!("/proc/{PID}/task/{born}");
    write(root, &format!("{dir}/stat"), &stat_line(born));
    write(root, &format!("{dir}/cgroup"), &format!("0::{hk}\n"));
    let threads = bench.read(&cg(&hk, "cgroup.threads"));
    write(
        root,
        &cg(&hk, "cgroup.threads"),
        &format!("{threads}{born}\n"),
    );
    bench.revert();
    assert_eq!(
        bench.read(&format!("{dir}/cgroup")),
        "0::/vm.scope\n",
        "moved to the parent before its cgroup went"
    );
    let listed = bench.read(&cg("/vm.scope", "cgroup.threads"));
    assert!(listed.lines().any(|l| l == born.to_string()), "{listed}");
    assert!(
        !Root::new(root).path(cg(&hk, "")).exists(),
        "cgroup removed"
    );
}
