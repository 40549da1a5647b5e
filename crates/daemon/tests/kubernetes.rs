//! The NRI plugin on the engine, on a furnished tree: a pod annotated latency-sensitive is
//! admitted at CreateContainer, its container handed to the loop at PostStartContainer and
//! applied on exactly its admitted cores (as the loop does, through `Containers::wanted`),
//! found again by `held` as a restarted plugin would, and reverted exactly at its stop.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nearnative_apply::StateDir;
use nearnative_daemon::kubernetes::{Containers, EngineBackend};
use nearnative_daemon::libvirt::Domains;
use nearnative_daemon::reconcile::Wanted;
use nearnative_engine::{load_ledger, Engine};
use nearnative_host::{CpuSet, Root};
use nearnative_knob::TreeBackend;
use nearnative_nri::annotations::POD;
use nearnative_nri::api::{
    Container, ContainerState, CreateContainerRequest, Event, LinuxContainer, PodSandbox,
    StateChangeEvent, StopContainerRequest,
};
use nearnative_nri::{AdmissionBackend, ContainerKey, NriPlugin, Plugin};
use nearnative_testkit::tree::{add_process_in, cpus, furnish, TreeImage};

const CGROUP: &str = "/kubepods/podls/ctr-ls";
const ID: &str = "ctr-ls";

fn ls_container() -> (Container, PodSandbox) {
    let pod = PodSandbox {
        id: "pod-ls".to_owned(),
        name: "mm-0".to_owned(),
        namespace: "trading".to_owned(),
        annotations: HashMap::from([(POD.to_owned(), "high".to_owned())]),
        ..PodSandbox::default()
    };
    let container = Container {
        id: ID.to_owned(),
        pod_sandbox_id: pod.id.clone(),
        name: "engine".to_owned(),
        state: ContainerState::Created as i32,
        linux: Some(LinuxContainer {
            cgroups_path: CGROUP.to_owned(),
            ..LinuxContainer::default()
        }),
        ..Container::default()
    };
    (container, pod)
}

/// A furnished tree with the container's process, the plugin on an engine over it.
struct Node {
    _snapshot: nearnative_testkit::Snapshot,
    root: std::path::PathBuf,
    state: StateDir,
    _state_dir: tempfile::TempDir,
    engine: Box<dyn Fn() -> Engine>,
    containers: Arc<Mutex<Containers>>,
    turn: Arc<Mutex<()>>,
    woken: mpsc::Receiver<nearnative_daemon::events::Wake>,
    backend: Arc<EngineBackend>,
    plugin: NriPlugin,
}

fn node() -> Node {
    let snapshot = nearnative_testkit::extract("offline-cpu0-node0");
    let root = snapshot.root.clone();
    furnish(&root);
    add_process_in(&root, 4100, CGROUP);
    let state_dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(state_dir.path().join("state"));
    let engine = {
        let (root, state) = (root.clone(), state.clone());
        move || {
            Engine::new(
                Root::new(&root),
                Box::new(TreeBackend::new(&root)),
                state.clone(),
            )
        }
    };
    let containers = Arc::new(Mutex::new(Containers::default()));
    let turn = Arc::new(Mutex::new(()));
    let (wake, woken) = mpsc::channel();
    let backend = Arc::new(EngineBackend::new(
        Box::new(engine.clone()),
        Root::new(&root),
        None,
        Arc::clone(&containers),
        Arc::new(Mutex::new(Domains::default())),
        Arc::clone(&turn),
        wake,
    ));
    let online = cpus(&root).online;
    let (plugin, _refencer) = NriPlugin::new(backend.clone(), online, Arc::new(|_: &str| {}));
    plugin.synchronize(Default::default()).unwrap();
    Node {
        _snapshot: snapshot,
        root,
        state,
        _state_dir: state_dir,
        engine: Box::new(engine),
        containers,
        turn,
        woken,
        backend,
        plugin,
    }
}

/// The container created on the CPUs of its admission and started: the loop's `wanted`.
fn created_and_started(node: &Node) -> (CpuSet, Wanted) {
    let (container, pod) = ls_container();
    let created = node
        .plugin
        .create_container(CreateContainerRequest {
            pod: Some(pod.clone()),
            container: Some(container.clone()),
        })
        .unwrap();
    let adjusted = created.adjust.unwrap().linux.unwrap().resources.unwrap();
    let given = CpuSet::parse_list(&adjusted.cpu.unwrap().cpus).unwrap();
    let cpuset = node
        .root
        .join(format!("sys/fs/cgroup/cpuset{CGROUP}/cpuset.cpus"));
    std::fs::write(cpuset, format!("{}\n", given.to_list())).unwrap();
    node.plugin
        .state_change(StateChangeEvent {
            event: Event::PostStartContainer as i32,
            pod: Some(pod),
            container: Some(container),
        })
        .unwrap();
    let wanted = node.containers.lock().unwrap().wanted();
    (given, wanted.into_iter().next().unwrap())
}

fn stop(plugin: &NriPlugin) {
    let (container, _) = ls_container();
    plugin
        .stop_container(StopContainerRequest {
            pod: None,
            container: Some(container),
        })
        .unwrap();
}

#[test]
fn a_stop_during_the_loops_apply_reverts_what_the_apply_made() {
    let node = node();
    let (_, wanted) = created_and_started(&node);
    let before = TreeImage::take(&node.root);
    let (stopped_tx, stopped) = mpsc::channel();
    let plugin = &node.plugin;
    std::thread::scope(|s| {
        // The loop has the turn and applies; the container stops meanwhile.
        let turn = node.turn.lock().unwrap();
        s.spawn(|| {
            stop(plugin);
            stopped_tx.send(()).unwrap();
        });
        std::thread::sleep(Duration::from_millis(100));
        (node.engine)()
            .apply_from(&wanted.request, &wanted.origin)
            .unwrap();
        drop(turn);
        stopped.recv().unwrap();
    });
    assert!(
        load_ledger(&node.state).unwrap().is_empty(),
        "the stop found the apply's record once it had the turn"
    );
    let diff = TreeImage::take(&node.root).diff(&before);
    assert!(diff.is_empty(), "reverted exactly; differs at {diff:?}");
}

#[test]
fn a_stop_while_the_loop_is_busy_answers_at_once_and_leaves_the_revert_to_the_loop() {
    let node = node();
    let (_, wanted) = created_and_started(&node);
    (node.engine)()
        .apply_from(&wanted.request, &wanted.origin)
        .unwrap();
    while node.woken.try_recv().is_ok() {}
    // The loop holds the turn through a long apply (virsh calls, a big VM).
    let (taken, is_taken) = mpsc::channel();
    let turn = Arc::clone(&node.turn);
    let busy = std::thread::spawn(move || {
        let _turn = turn.lock().unwrap();
        taken.send(()).unwrap();
        std::thread::sleep(Duration::from_secs(4));
    });
    is_taken.recv().unwrap();
    let asked = Instant::now();
    stop(&node.plugin);
    let stopped = asked.elapsed();
    busy.join().unwrap();
    assert!(stopped < Duration::from_secs(2), "took {stopped:?}");
    assert!(
        node.woken.try_recv().is_ok(),
        "the loop is woken to revert it"
    );
    assert!(!node.containers.lock().unwrap().wants(&wanted.key));
}

#[test]
fn a_latency_sensitive_container_is_admitted_applied_adopted_and_reverted_exactly() {
    let Node {
        _snapshot,
        root,
        state,
        _state_dir,
        engine,
        containers,
        turn: _,
        woken,
        backend,
        plugin,
    } = node();

    let (container, pod) = ls_container();
    let created = plugin
        .create_container(CreateContainerRequest {
            pod: Some(pod.clone()),
            container: Some(container.clone()),
        })
        .unwrap();
    let adjusted = created.adjust.unwrap().linux.unwrap().resources.unwrap();
    let given = CpuSet::parse_list(&adjusted.cpu.unwrap().cpus).unwrap();
    assert!(!given.is_empty());
    // The runtime creates the container on the cpuset of the adjustment.
    let cpuset = root.join(format!("sys/fs/cgroup/cpuset{CGROUP}/cpuset.cpus"));
    std::fs::write(cpuset, format!("{}\n", given.to_list())).unwrap();
    let before = TreeImage::take(&root);
    assert!(
        containers.lock().unwrap().wanted().is_empty(),
        "admitted, not started"
    );
    assert!(
        load_ledger(&state).unwrap().is_empty(),
        "admission records nothing"
    );

    plugin
        .state_change(StateChangeEvent {
            event: Event::PostStartContainer as i32,
            pod: Some(pod),
            container: Some(container.clone()),
        })
        .unwrap();
    assert!(woken.try_recv().is_ok(), "the loop is woken");
    let wanted = containers.lock().unwrap().wanted();
    assert_eq!(wanted.len(), 1);
    assert_eq!(wanted[0].origin, "kubernetes:trading/mm-0/engine@ctr-ls");
    let applied = engine()
        .apply_from(&wanted[0].request, &wanted[0].origin)
        .unwrap();
    containers.lock().unwrap().applied(&wanted[0].key);
    assert_eq!(
        applied.plan.allocation.exclusive_cpus, given,
        "exactly its cores"
    );
    assert_eq!(
        applied.plan.scope.path, "/kubepods/podls",
        "its pod's scope"
    );
    let steps: Vec<String> = applied
        .plan
        .changes
        .iter()
        .map(|c| c.step.describe().object)
        .collect();
    let pm_qos = format!(
        "PM QoS resume latency of CPU {}",
        given.iter().last().unwrap()
    );
    for host_wide in [
        "default IRQ affinity",
        "unbound workqueue CPU mask",
        &pm_qos,
    ] {
        assert!(
            steps.iter().any(|s| s == host_wide),
            "{host_wide} is planned: {steps:#?}"
        );
    }
    assert!(
        steps.iter().all(|s| !s.contains("/kubepods/podls/ctr-ls ")),
        "the container's own cgroup keeps the cpuset the runtime gave it: {steps:#?}"
    );
    assert!(
        steps.iter().all(|s| !s.contains("-pool")),
        "its threads stay in the cgroup the runtime confined to its cores: {steps:#?}"
    );

    let held = backend.held().unwrap();
    assert_eq!(held.keys().collect::<Vec<_>>(), [ID]);
    assert_eq!(
        held[ID].cpus, given,
        "a restarted plugin adopts it on its cores"
    );
    let (ls, ls_pod) = ls_container();
    backend
        .started(&ContainerKey::of(&ls, Some(&ls_pod)))
        .expect("handed over again at an adoption, applied already: no error");

    plugin
        .stop_container(StopContainerRequest {
            pod: None,
            container: Some(container),
        })
        .unwrap();
    assert!(backend.held().unwrap().is_empty());
    assert!(load_ledger(&state).unwrap().is_empty());
    let diff = TreeImage::take(&root).diff(&before);
    assert!(diff.is_empty(), "reverted exactly; differs at {diff:?}");
    backend.release(ID).unwrap();
}
