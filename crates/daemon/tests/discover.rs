//! Discovery on hand-built hosts: which live instances the policies match, with the engine's
//! own ledger keys and requests the planner accepts.

use std::collections::BTreeMap;
use std::path::Path;

use nearnative_daemon::discover::{desired, desired_with_exe, exe_names, Desired};
use nearnative_daemon::policy::{parse_file, PolicySet};
use nearnative_host::tasks::{Process, ProcessCgroup, SchedPolicy, Task, TaskKind};
use nearnative_host::workloads::{Vcpu, VcpuSource, VmThread, VmmKind, Workload};
use nearnative_host::{CpuSet, Host};
use nearnative_plan::{plan, Ledger, Target, WorkloadId, WorkloadKey};
use nearnative_testkit::hosts::{v1_cpuset, v1_host};
use nearnative_testkit::Shape;

const SCOPE: &str = "/S";

/// One node of 4 cores without SMT, v1 cpusets `/`, `/S`, `/S/vms`, `/S/pods/{a,b,empty}`,
/// `/other`, each with every CPU; nothing running.
fn host() -> Host {
    let topology = Shape::server(1, 1, 4, 1).build();
    let cpuset = |path: &str| v1_cpuset(path, &topology.online, CpuSet::from_ids([0]), path == "/");
    let paths = [
        "/",
        "/S",
        "/S/vms",
        "/S/pods",
        "/S/pods/a",
        "/S/pods/b",
        "/S/pods/empty",
        "/other",
    ];
    let cpusets = paths.into_iter().map(cpuset).collect();
    v1_host(topology, cpusets)
}

fn task(tid: u32, comm: &str, kind: TaskKind, state: char) -> Task {
    Task {
        tid,
        comm: comm.into(),
        state,
        kind,
        affinity: CpuSet::from_ids([0, 1, 2, 3]),
        policy: SchedPolicy::Other,
        rt_priority: 0,
        nice: 0,
        last_cpu: 0,
        start_time: 1000 + u64::from(tid),
        affinity_fixed: kind.is_kernel(),
        ppid: 1,
        cgroup: None,
    }
}

fn add_process(host: &mut Host, pid: u32, cgroup: &str, threads: Vec<Task>) {
    host.tasks.processes.push(Process {
        pid,
        comm: threads[0].comm.clone(),
        cgroup: Some(ProcessCgroup {
            cpuset_v1: Some(cgroup.into()),
            unified: Some("/init.scope".into()),
        }),
        threads,
    });
    host.tasks.processes.sort_by_key(|p| p.pid);
}

/// A user process of one thread named `comm`.
fn add_user(host: &mut Host, pid: u32, comm: &str, cgroup: &str) {
    add_process(
        host,
        pid,
        cgroup,
        vec![task(pid, comm, TaskKind::User, 'S')],
    );
}

/// A QEMU VM `name` with one vCPU thread (`pid + 1`).
fn add_vm(host: &mut Host, pid: u32, name: &str, cgroup: &str) {
    let threads = vec![
        task(pid, "qemu-system-x86", TaskKind::User, 'S'),
        task(pid + 1, "CPU 0/KVM", TaskKind::User, 'S'),
    ];
    let vcpu = VmThread::from(&threads[1]);
    let emulator = VmThread::from(&threads[0]);
    add_process(host, pid, cgroup, threads);
    host.workloads.push(Workload {
        kind: VmmKind::Qemu,
        name: name.into(),
        pid,
        vcpus: vec![Vcpu {
            index: 0,
            thread: vcpu,
        }],
        vcpu_source: Some(VcpuSource::ThreadNames),
        emulator: Some(emulator),
        io_threads: Vec::new(),
        vhost_threads: Vec::new(),
        other_threads: Vec::new(),
        qmp_socket: None,
    });
}

/// The policies of `files` (name, text), in that order.
fn policies(files: &[(&str, &str)]) -> PolicySet {
    let mut set = PolicySet::default();
    for (name, text) in files {
        let parsed = parse_file(Path::new(name), text).unwrap_or_else(|e| panic!("{e}"));
        set.policies.extend(parsed);
    }
    set
}

fn one(text: &str) -> PolicySet {
    policies(&[("/p/a.toml", text)])
}

/// `(key, policy index)` of each desired instance.
fn keys(desired: &[Desired]) -> Vec<(String, usize)> {
    desired
        .iter()
        .map(|d| (d.key.0.clone(), d.policy))
        .collect()
}

/// Each desired instance's key is the one the engine derives for its target, and the
/// planner accepts its request on `host`.
fn assert_engine_agrees(host: &Host, desired: &[Desired]) {
    for wanted in desired {
        let request = &wanted.request;
        let resolved = nearnative_plan::target::resolve(
            host,
            &request.target,
            request.vcpus.as_ref(),
            request.threads.as_deref(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", wanted.key));
        assert_eq!(resolved.key, wanted.key, "the ledger key");
        let planned = plan(host, request, &Ledger::new());
        let planned = planned.unwrap_or_else(|e| panic!("{}: {e}", wanted.key));
        assert_eq!(planned.workload, wanted.key);
    }
}

#[test]
fn vm_globs_match_names_in_the_daemons_scope() {
    let mut host = host();
    add_vm(&mut host, 100, "trade-1", "/S/vms");
    add_vm(&mut host, 200, "trade-2", "/other");
    add_vm(&mut host, 300, "web", "/S/vms");
    let set = one("[[workload]]\ntarget = \"vm:trade-*\"\nio = \"housekeeping\"\n");
    let found = desired(&host, &set, Some(SCOPE));
    assert_eq!(keys(&found), [("vm:trade-1".to_owned(), 0)]);
    assert_eq!(found[0].request.target, Target::Vm("trade-1".into()));
    assert_eq!(
        found[0].request.scope.as_deref(),
        Some(SCOPE),
        "the daemon's scope when the policy has none"
    );
    assert_engine_agrees(&host, &found);
    let whole_host = desired(&host, &set, None);
    let names: Vec<String> = whole_host.iter().map(|d| d.key.0.clone()).collect();
    assert_eq!(
        names,
        ["vm:trade-1", "vm:trade-2"],
        "no scope: the whole host"
    );
    assert_eq!(whole_host[0].request.scope, None);
}

#[test]
fn two_vms_sharing_a_name_are_one_instance() {
    let mut host = host();
    add_vm(&mut host, 100, "twin", "/S/vms");
    add_vm(&mut host, 200, "twin", "/S/vms");
    let found = desired(
        &host,
        &one("[[workload]]\ntarget = \"vm:tw*\"\n"),
        Some(SCOPE),
    );
    assert_eq!(keys(&found), [("vm:twin".to_owned(), 0)]);
}

#[test]
fn process_globs_match_comm_or_the_executables_name_and_never_kernel_threads() {
    let mut host = host();
    add_user(&mut host, 100, "redis-server", "/S");
    add_user(&mut host, 110, "renamed", "/S");
    add_user(&mut host, 120, "nginx", "/S");
    add_process(
        &mut host,
        130,
        "/S",
        vec![task(130, "redis-zombie", TaskKind::User, 'Z')],
    );
    add_process(
        &mut host,
        140,
        "/S",
        vec![task(140, "redis-kthread", TaskKind::KernelUnbound, 'S')],
    );
    add_user(&mut host, 150, "redis-outside", "/other");
    let set = one("[[workload]]\ntarget = \"process:redis*\"\n");
    let by_comm = desired(&host, &set, Some(SCOPE));
    assert_eq!(keys(&by_comm), [("pid:100".to_owned(), 0)]);
    assert_eq!(by_comm[0].request.target, Target::Pid(100));
    assert_engine_agrees(&host, &by_comm);

    let exe = BTreeMap::from([
        (110, "redis-sentinel".to_owned()),
        (120, "nginx".to_owned()),
    ]);
    let with_exe = desired_with_exe(&host, &set, Some(SCOPE), &exe);
    let found: Vec<String> = with_exe.iter().map(|d| d.key.0.clone()).collect();
    assert_eq!(found, ["pid:100", "pid:110"]);
}

#[test]
fn cgroup_globs_match_one_component_per_star_and_only_cgroups_with_tasks() {
    let mut host = host();
    add_user(&mut host, 100, "app", "/S/pods/a");
    add_user(&mut host, 101, "app", "/S/pods/a");
    add_user(&mut host, 110, "app", "/S/pods/b");
    add_user(&mut host, 120, "deep", "/S/pods/b/c");
    add_user(&mut host, 130, "beside", "/S/vms");
    let set = one("[[workload]]\ntarget = \"cgroup:/S/pods/*\"\n");
    let found = desired(&host, &set, Some(SCOPE));
    assert_eq!(
        keys(&found),
        [
            ("cgroup:/S/pods/a".to_owned(), 0),
            ("cgroup:/S/pods/b".to_owned(), 0),
        ],
        "/S/pods/empty holds no task, /S/pods/b/c is two components down"
    );
    assert_eq!(found[0].request.target, Target::Cgroup("/S/pods/a".into()));
    assert_engine_agrees(&host, &found[..1]);
}

#[test]
fn an_applied_cgroup_stays_desired_and_the_plans_cgroups_never_match() {
    let mut host = host();
    let key = WorkloadKey("cgroup:/S/pods/a".into());
    let made = format!("/S/nearnative-{}-t0", WorkloadId::of(&key));
    add_user(&mut host, 100, "app", &made);
    add_user(&mut host, 110, "hk", "/S/nearnative-vm-x-hk");
    let set = one(
        "[[workload]]\ntarget = \"cgroup:/S/*\"\n[[workload]]\ntarget = \"cgroup:/S/pods/a\"\n",
    );
    let found = desired(&host, &set, Some(SCOPE));
    assert_eq!(
        keys(&found),
        [("cgroup:/S/pods/a".to_owned(), 1)],
        "its threads sit in {made}; neither that cgroup nor another plan's matches"
    );

    // Under cgroup v2 the plan's cgroups are threaded children of the target's own.
    let mut below = self::host();
    let key = WorkloadKey("cgroup:/S/pods/b".into());
    let made = format!("/S/pods/b/nearnative-{}-t0", WorkloadId::of(&key));
    add_user(&mut below, 100, "app", &made);
    let found = desired(
        &below,
        &one("[[workload]]\ntarget = \"cgroup:/S/pods/*\"\n"),
        None,
    );
    assert_eq!(keys(&found), [("cgroup:/S/pods/b".to_owned(), 0)]);
}

#[test]
fn the_first_policy_wins_an_instance_and_a_process_is_desired_once() {
    let mut host = host();
    add_vm(&mut host, 100, "db", "/S/vms");
    add_vm(&mut host, 200, "web", "/S/vms");
    let set = policies(&[
        (
            "/p/10-vms.toml",
            "[[workload]]\ntarget = \"vm:db\"\nlevel = \"high-ht\"\n[[workload]]\ntarget = \"vm:*\"\n",
        ),
        (
            "/p/20-all.toml",
            "[[workload]]\ntarget = \"process:qemu*\"\n[[workload]]\ntarget = \"cgroup:/S/vms\"\n",
        ),
    ]);
    let found = desired(&host, &set, Some(SCOPE));
    assert_eq!(
        keys(&found),
        [("vm:db".to_owned(), 0), ("vm:web".to_owned(), 1)],
        "the QEMU processes and their cgroup are taken by the VMs already"
    );
    assert_eq!(found[0].request.level, nearnative_plan::Level::HighHt);
    assert_eq!(found[1].request.level, nearnative_plan::Level::High);
}

#[test]
fn a_policy_scope_confines_its_matches_and_may_not_leave_the_daemons() {
    let mut host = host();
    add_vm(&mut host, 100, "a-in-vms", "/S/vms");
    add_vm(&mut host, 200, "a-in-pods", "/S/pods/a");
    let set = one(
        "[[workload]]\ntarget = \"vm:a-*\"\nscope = \"cgroup:/S/vms\"\nrt = 10\n\
         [[workload]]\ntarget = \"vm:*\"\n\
         [[workload]]\ntarget = \"vm:*\"\nscope = \"cgroup:/other\"\n",
    );
    let found = desired(&host, &set, Some(SCOPE));
    assert_eq!(
        keys(&found),
        [
            ("vm:a-in-vms".to_owned(), 0),
            ("vm:a-in-pods".to_owned(), 1)
        ]
    );
    assert_eq!(found[0].request.scope.as_deref(), Some("/S/vms"));
    assert_eq!(found[0].request.rt, Some(10));
    assert_eq!(found[1].request.scope.as_deref(), Some(SCOPE));

    let mut only_outside = host.clone();
    only_outside.workloads.retain(|w| w.name == "a-in-pods");
    let set = one("[[workload]]\ntarget = \"vm:*\"\nscope = \"cgroup:/\"\n");
    assert!(
        desired(&only_outside, &set, Some(SCOPE)).is_empty(),
        "a policy scope wider than the daemon's is skipped"
    );
    assert_eq!(desired(&only_outside, &set, None).len(), 1);
}

#[test]
fn nothing_matches_without_policies() {
    let mut host = host();
    add_vm(&mut host, 100, "db", "/S/vms");
    assert!(desired(&host, &PolicySet::default(), None).is_empty());
}

#[test]
fn executable_names_are_read_for_process_policies_only() {
    let mut host = host();
    add_user(&mut host, 100, "renamed", "/S");
    add_user(&mut host, 110, "upgraded", "/S");
    add_user(&mut host, 120, "exited", "/S");
    let tree = tempfile::tempdir().unwrap();
    let link = |pid: u32, target: &str| {
        let dir = tree.path().join(format!("proc/{pid}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(target, dir.join("exe")).unwrap();
    };
    link(100, "/usr/bin/redis-server");
    link(110, "/usr/sbin/nginx (deleted)");
    let root = nearnative_host::Root::new(tree.path());
    let set = one("[[workload]]\ntarget = \"process:redis-server\"\n");
    let names = exe_names(&root, &host, &set);
    let expected = BTreeMap::from([(100, "redis-server".to_owned()), (110, "nginx".to_owned())]);
    assert_eq!(names, expected);
    let found = desired_with_exe(&host, &set, Some(SCOPE), &names);
    assert_eq!(keys(&found), [("pid:100".to_owned(), 0)]);
    let vms_only = one("[[workload]]\ntarget = \"vm:*\"\n");
    assert!(exe_names(&root, &host, &vms_only).is_empty());
}
