use super::*;
use nearnative_plan::{allocate, AllocationRequest, Ledger};
use nearnative_testkit::Shape;

fn container(id: &str, cgroups_path: &str) -> ContainerKey {
    ContainerKey {
        id: id.to_owned(),
        namespace: "trading".to_owned(),
        pod: "mm-0".to_owned(),
        name: "engine".to_owned(),
        cgroups_path: cgroups_path.to_owned(),
    }
}

fn admitted(id: &str, cgroup: &str, cpus: &str, since: Instant) -> Admitted {
    let topology = Shape::server(1, 1, 4, 2).build();
    let mut request = AllocationRequest::new(format!("cgroup:{cgroup}").as_str(), 1, Level::High);
    request.cores = Some(1);
    request.exact = Some(CpuSet::parse_list(cpus).unwrap());
    Admitted {
        container: container(id, cgroup),
        cgroup: cgroup.to_owned(),
        level: Level::High,
        cores: 1,
        allocation: allocate(&topology, &Ledger::new(), &request).unwrap(),
        since,
        started: false,
        reported: false,
    }
}

use nearnative_host::CpuSet;

#[test]
fn the_origin_names_the_container_for_people_and_its_id_for_held() {
    let key = container("0123abcd", "/kubepods/pod1/0123abcd");
    let origin = origin_of(&key);
    assert_eq!(origin, "kubernetes:trading/mm-0/engine@0123abcd");
    assert_eq!(id_of_origin(&origin), Some("0123abcd"));
    assert_eq!(id_of_origin("libvirt:vm1"), None);
    assert_eq!(id_of_origin("kubernetes:no-id"), None);
}

#[test]
fn cgroups_paths_of_both_drivers_are_cgroup_paths() {
    assert_eq!(
        cgroup_of("/kubepods/besteffort/pod1/abc").unwrap(),
        "/kubepods/besteffort/pod1/abc"
    );
    assert_eq!(
        cgroup_of("kubepods-besteffort-pod1.slice:cri-containerd:abc").unwrap(),
        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-abc.scope"
    );
    assert_eq!(
        cgroup_of("-.slice:docker:abc").unwrap(),
        "/docker-abc.scope",
        "the root slice"
    );
    let err = cgroup_of("kubepods:abc").unwrap_err();
    assert_eq!(
        err,
        "cgroups path \"kubepods:abc\" is neither a cgroup path nor systemd's SLICE:PREFIX:NAME"
    );
    assert!(cgroup_of("").is_err());
    for odd in [
        "/kubepods/../system.slice/x",
        "/kubepods/./pod1",
        "/kubepods//pod1",
        "/",
        "kubepods.slice:cri-containerd:../x",
        "kubepods.slice:a/b:abc",
    ] {
        let err = cgroup_of(odd).unwrap_err();
        assert!(err.contains(&format!("{odd:?}")), "{odd}: {err}");
    }
}

#[test]
fn a_started_container_is_wanted_on_exactly_its_cores_in_its_pods_scope() {
    let now = Instant::now();
    let mut containers = Containers::default();
    let mut a = admitted("a", "/kubepods/pod1/a", "1,5", now);
    containers.admitted.insert("a".to_owned(), a.clone());
    assert!(containers.wanted().is_empty(), "not started yet");
    a.started = true;
    containers.admitted.insert("a".to_owned(), a);
    let wanted = containers.wanted();
    assert_eq!(wanted.len(), 1);
    let w = &wanted[0];
    assert_eq!(w.key, WorkloadKey("cgroup:/kubepods/pod1/a".to_owned()));
    assert_eq!(w.origin, "kubernetes:trading/mm-0/engine@a");
    assert_eq!(w.policy, None);
    assert_eq!(
        w.request.target,
        Target::Cgroup("/kubepods/pod1/a".to_owned())
    );
    assert_eq!(w.request.scope.as_deref(), Some("/kubepods/pod1"));
    assert_eq!(w.request.exact, Some(CpuSet::parse_list("1,5").unwrap()));
    assert_eq!(w.request.cores, Some(1));
    assert!(w.request.fence_host_threads);
    containers.applied(&w.key);
    assert!(
        containers.wanted().is_empty(),
        "the plan record holds it now"
    );
}

#[test]
fn pending_admissions_hold_their_cores_until_applied_or_expired_unstarted() {
    let t0 = Instant::now();
    let mut containers = Containers::default();
    containers
        .admitted
        .insert("a".to_owned(), admitted("a", "/p/a", "1,5", t0));
    let mut b = admitted("b", "/p/b", "2,6", t0);
    b.started = true;
    containers.admitted.insert("b".to_owned(), b);
    let asking = WorkloadKey("cgroup:/p/c".to_owned());
    assert_eq!(containers.pending_except(&asking, t0).len(), 2);
    assert_eq!(
        containers
            .pending_except(&WorkloadKey("cgroup:/p/a".to_owned()), t0)
            .len(),
        1,
        "its own admission does not count against it"
    );
    let later = containers.pending_except(&asking, t0 + PENDING_FOR);
    assert_eq!(
        later.len(),
        1,
        "the unstarted one expired, the started one waits"
    );
    assert_eq!(later[0].exclusive_cpus, CpuSet::parse_list("2,6").unwrap());
    containers.forget("b");
    assert!(containers.pending_except(&asking, t0).is_empty());
}

#[test]
fn an_admission_the_runtime_reported_at_synchronize_does_not_expire() {
    let t0 = Instant::now();
    let mut containers = Containers::default();
    let mut a = admitted("a", "/p/a", "1,5", t0);
    a.reported = true;
    containers.admitted.insert("a".to_owned(), a);
    let asking = WorkloadKey("cgroup:/p/c".to_owned());
    assert_eq!(
        containers.pending_except(&asking, t0 + PENDING_FOR).len(),
        1
    );
}

/// A backend on an empty state directory, its turn held by another thread for `held_for`.
fn backend_while_busy(held_for: Duration) -> (EngineBackend, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let state = nearnative_apply::StateDir::new(dir.path().join("state"));
    let engine = move || {
        Engine::new(
            Root::default(),
            Box::new(nearnative_knob::TreeBackend::new("/nonexistent")),
            state.clone(),
        )
    };
    let turn = Arc::new(Mutex::new(()));
    let (wake, _) = std::sync::mpsc::channel();
    let backend = EngineBackend::new(
        Box::new(engine),
        Root::default(),
        None,
        Arc::new(Mutex::new(Containers::default())),
        Arc::new(Mutex::new(Domains::default())),
        Arc::clone(&turn),
        wake,
    );
    let (taken, is_taken) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _turn = turn.lock().unwrap();
        taken.send(()).unwrap();
        std::thread::sleep(held_for);
    });
    is_taken.recv().unwrap();
    (backend, dir)
}

/// containerd drops a plugin that takes 2 s to answer, and creates the container unpinned.
const RUNTIME_WAIT: Duration = Duration::from_secs(2);

#[test]
fn an_admission_refuses_as_busy_within_the_runtimes_wait_while_the_loop_holds_the_turn() {
    let (backend, _dir) = backend_while_busy(Duration::from_secs(4));
    let asked = Instant::now();
    let refused = backend
        .admit(&container("a", "/kubepods/pod1/a"), Level::High, 1)
        .unwrap_err();
    assert!(asked.elapsed() < RUNTIME_WAIT, "took {:?}", asked.elapsed());
    assert_eq!(refused, BUSY);
}
