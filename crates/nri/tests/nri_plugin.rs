//! nearnative's plugin end to end against the fake runtime, with a fake ledger of four
//! single-CPU cores (CPU 0 never given out): Synchronize adopts, releases and admits late;
//! CreateContainer admits, fences, refuses; StopContainer gives back in its answer;
//! RemoveContainer gives back by UpdateContainers after its answer, and a fence sent while
//! the exclusive CPUs changed is sent again from the newer view.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::net::UnixListener;
use std::sync::{Arc, Mutex};
use std::thread;

use nearnative_host::CpuSet;
use nearnative_nri::annotations::{CORES, POD};
use nearnative_nri::api::plugin::{
    CONFIGURE, CREATE_CONTAINER, SHUTDOWN, STATE_CHANGE, STOP_CONTAINER, SYNCHRONIZE,
    UPDATE_CONTAINER,
};
use nearnative_nri::api::{
    ConfigureRequest, ConfigureResponse, Container, ContainerAdjustment, ContainerState,
    ContainerUpdate, CreateContainerRequest, CreateContainerResponse, Empty, Event, PodSandbox,
    StateChangeEvent, StopContainerRequest, StopContainerResponse, SynchronizeRequest,
    SynchronizeResponse, UpdateContainerRequest, UpdateContainerResponse, UpdateContainersRequest,
    UpdateContainersResponse,
};
use nearnative_nri::ttrpc::Status;
use nearnative_nri::{
    AdmissionBackend, Connection, ContainerKey, Grant, NriPlugin, Plugin, Refusal,
};
use nearnative_plan::Level;
use prost::Message;

use crate::fake_runtime::FakeRuntime;

/// Hands out CPUs 1-3 as cores of one CPU each, lowest first, on node 0.
#[derive(Default)]
pub struct FakeLedger {
    state: Mutex<LedgerState>,
}

#[derive(Default)]
struct LedgerState {
    held: BTreeMap<String, Grant>,
    released: Vec<String>,
    started: Vec<String>,
    reported: Vec<String>,
    /// Why release and held fail, when they do.
    broken: Option<String>,
}

fn grant(cpus: &str) -> Grant {
    Grant {
        cpus: CpuSet::parse_list(cpus).unwrap(),
        mems: CpuSet::from_ids([0]),
    }
}

impl FakeLedger {
    pub fn holding(held: &[(&str, &str)]) -> FakeLedger {
        let ledger = FakeLedger::default();
        for (id, cpus) in held {
            ledger
                .state
                .lock()
                .unwrap()
                .held
                .insert((*id).to_owned(), grant(cpus));
        }
        ledger
    }

    fn held_cpus(&self) -> BTreeMap<String, String> {
        self.state
            .lock()
            .unwrap()
            .held
            .iter()
            .map(|(id, g)| (id.clone(), g.cpus.to_list()))
            .collect()
    }

    fn released(&self) -> Vec<String> {
        self.state.lock().unwrap().released.clone()
    }
}

impl AdmissionBackend for FakeLedger {
    fn admit(&self, container: &ContainerKey, _: Level, cores: u32) -> Result<Grant, String> {
        let mut state = self.state.lock().unwrap();
        if let Some(grant) = state.held.get(&container.id) {
            return Ok(grant.clone());
        }
        let taken = state
            .held
            .values()
            .fold(CpuSet::new(), |all, g| all.union(&g.cpus));
        let free: Vec<u32> = (1..=3).filter(|cpu| !taken.contains(*cpu)).collect();
        if free.len() < cores as usize {
            return Err(format!("{cores} cores asked, {} free", free.len()));
        }
        let grant = Grant {
            cpus: free[..cores as usize].iter().copied().collect(),
            mems: CpuSet::from_ids([0]),
        };
        state.held.insert(container.id.clone(), grant.clone());
        Ok(grant)
    }

    fn started(&self, container: &ContainerKey) -> Result<(), String> {
        let mut state = self.state.lock().unwrap();
        state.started.push(container.id.clone());
        Ok(())
    }

    fn reported(&self, container: &ContainerKey) {
        let mut state = self.state.lock().unwrap();
        state.reported.push(container.id.clone());
    }

    fn release(&self, id: &str) -> Result<(), String> {
        let mut state = self.state.lock().unwrap();
        if let Some(reason) = &state.broken {
            return Err(reason.clone());
        }
        state.held.remove(id);
        state.released.push(id.to_owned());
        Ok(())
    }

    fn held(&self) -> Result<BTreeMap<String, Grant>, String> {
        let state = self.state.lock().unwrap();
        match &state.broken {
            Some(reason) => Err(reason.clone()),
            None => Ok(state.held.clone()),
        }
    }
}

fn pod(id: &str, annotations: &[(&str, &str)]) -> PodSandbox {
    PodSandbox {
        id: id.into(),
        name: id.into(),
        namespace: "default".into(),
        annotations: annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<HashMap<_, _>>(),
        ..PodSandbox::default()
    }
}

fn container(id: &str, pod: &str, state: ContainerState) -> Container {
    Container {
        id: id.into(),
        pod_sandbox_id: pod.into(),
        name: "app".into(),
        state: state as i32,
        ..Container::default()
    }
}

/// Each update as (container, cpus, mems).
fn cpusets(updates: &[ContainerUpdate]) -> Vec<(String, String, String)> {
    updates
        .iter()
        .map(|u| {
            let cpu = u
                .linux
                .as_ref()
                .and_then(|l| l.resources.as_ref())
                .and_then(|r| r.cpu.clone())
                .unwrap_or_default();
            (u.container_id.clone(), cpu.cpus, cpu.mems)
        })
        .collect()
}

fn adjusted(adjust: Option<ContainerAdjustment>) -> Option<(String, String)> {
    let cpu = adjust?.linux?.resources?.cpu?;
    Some((cpu.cpus, cpu.mems))
}

fn set(id: &str, cpus: &str, mems: &str) -> (String, String, String) {
    (id.into(), cpus.into(), mems.into())
}

fn create(
    runtime: &mut FakeRuntime,
    pod: PodSandbox,
    id: &str,
) -> Result<CreateContainerResponse, Status> {
    let request = CreateContainerRequest {
        container: Some(container(id, &pod.id, ContainerState::Created)),
        pod: Some(pod),
    };
    runtime.call(CREATE_CONTAINER, &request)
}

/// The plugin's next UpdateContainers, answered with nothing failed only when `answer`
/// says; returns its stream id and cpusets.
fn expect_update_containers(runtime: &mut FakeRuntime) -> (u32, Vec<(String, String, String)>) {
    let (stream_id, request) = runtime.expect_call();
    assert_eq!(request.method, "UpdateContainers");
    let update = UpdateContainersRequest::decode(request.payload.as_slice()).unwrap();
    (stream_id, cpusets(&update.update))
}

fn answer_update_containers(runtime: &mut FakeRuntime, stream_id: u32) {
    let none_failed = UpdateContainersResponse::default().encode_to_vec();
    runtime.answer(stream_id, Status::default(), none_failed);
}

fn register_and_configure(runtime: &mut FakeRuntime) {
    let (stream_id, request) = runtime.expect_call();
    assert_eq!(request.method, "RegisterPlugin");
    runtime.answer(stream_id, Status::default(), Empty {}.encode_to_vec());
    let configured: ConfigureResponse = runtime
        .call(CONFIGURE, &ConfigureRequest::default())
        .unwrap();
    let create = 1 << 3;
    let post_start = 1 << 6;
    let update = 1 << 7;
    let stop = 1 << 9;
    let remove = 1 << 10;
    assert_eq!(
        configured.events,
        create | post_start | update | stop | remove
    );
}

/// Synchronize with: a plain pod's running container `plain-1`; `held-1`, running and
/// holding CPU 3; `late-1`, annotated and started while the plugin was away; the ledger also
/// holds CPU 2 for `gone`, which the runtime no longer has, and for `dead`, which stopped.
fn synchronize(runtime: &mut FakeRuntime) {
    let request = SynchronizeRequest {
        pods: vec![
            pod("plain", &[]),
            pod("held", &[(POD, "high")]),
            pod("late", &[(POD, "high")]),
        ],
        containers: vec![
            container("plain-1", "plain", ContainerState::Running),
            container("held-1", "held", ContainerState::Running),
            container("late-1", "late", ContainerState::Running),
            container("dead", "held", ContainerState::Stopped),
        ],
    };
    let synced: SynchronizeResponse = runtime.call(SYNCHRONIZE, &request).unwrap();
    assert_eq!(
        cpusets(&synced.update),
        [
            set("held-1", "3", "0"),
            set("late-1", "1", "0"),
            set("plain-1", "0,2", ""),
        ],
        "the held and the late container pinned, the plain one fenced off both"
    );
    assert!(
        synced.update.iter().all(|u| u.ignore_failure),
        "one odd container must not fail the registration"
    );
}

fn runtime_side(mut runtime: FakeRuntime) {
    register_and_configure(&mut runtime);
    synchronize(&mut runtime);

    let plain = create(&mut runtime, pod("plain", &[]), "plain-2").unwrap();
    assert_eq!(adjusted(plain.adjust), Some(("0,2".into(), "".into())));
    assert!(plain.update.is_empty());

    let trade = pod("trade", &[(POD, "high"), (CORES, "1")]);
    let admitted = create(&mut runtime, trade, "trade-1").unwrap();
    assert_eq!(adjusted(admitted.adjust), Some(("2".into(), "0".into())));
    assert_eq!(
        cpusets(&admitted.update),
        [set("plain-1", "0", ""), set("plain-2", "0", "")]
    );
    assert!(admitted.update.iter().all(|u| u.ignore_failure));

    let refused = create(&mut runtime, pod("big", &[(POD, "high")]), "big-1").unwrap_err();
    assert_eq!(
        refused.message,
        "container default/big/app: not admitted (1 core at high): 1 cores asked, 0 free"
    );
    let malformed = create(&mut runtime, pod("typo", &[(POD, "hihg")]), "typo-1").unwrap_err();
    assert_eq!(
        malformed.message,
        "container default/typo/app: annotation latency-sensitivity.nearnative.io/pod: \
         \"hihg\" is not one of: high, high-ht"
    );

    let kubelet_update = UpdateContainerRequest {
        container: Some(container("held-1", "held", ContainerState::Running)),
        ..UpdateContainerRequest::default()
    };
    let kept: UpdateContainerResponse = runtime.call(UPDATE_CONTAINER, &kubelet_update).unwrap();
    assert_eq!(cpusets(&kept.update), [set("held-1", "3", "0")]);

    let stop = StopContainerRequest {
        pod: Some(pod("trade", &[])),
        container: Some(container("trade-1", "trade", ContainerState::Running)),
    };
    let stopped: StopContainerResponse = runtime.call(STOP_CONTAINER, &stop).unwrap();
    assert_eq!(
        cpusets(&stopped.update),
        [set("plain-1", "0,2", ""), set("plain-2", "0,2", "")],
        "the stopped container's core given back in the answer"
    );

    // Removed without a stop: the give-back can only go by UpdateContainers, after the answer.
    let removed = StateChangeEvent {
        event: Event::RemoveContainer as i32,
        pod: Some(pod("late", &[])),
        container: Some(container("late-1", "late", ContainerState::Running)),
    };
    let _: Empty = runtime.call(STATE_CHANGE, &removed).unwrap();
    let (first, given_back) = expect_update_containers(&mut runtime);
    assert_eq!(
        given_back,
        [set("plain-1", "0-2", ""), set("plain-2", "0-2", "")]
    );

    // Before the runtime applies that, a new container takes CPU 1: its answer fences the
    // others, and the runtime may apply the older give-back last, so it comes again.
    let again = create(&mut runtime, pod("again", &[(POD, "high")]), "again-1").unwrap();
    assert_eq!(adjusted(again.adjust), Some(("1".into(), "0".into())));
    assert_eq!(
        cpusets(&again.update),
        [set("plain-1", "0,2", ""), set("plain-2", "0,2", "")]
    );
    answer_update_containers(&mut runtime, first);
    let (second, refenced) = expect_update_containers(&mut runtime);
    assert_eq!(
        refenced,
        [set("plain-1", "0,2", ""), set("plain-2", "0,2", "")]
    );
    answer_update_containers(&mut runtime, second);

    let _: Empty = runtime.call(SHUTDOWN, &Empty {}).unwrap();
}

#[test]
fn the_plugin_admits_fences_refuses_and_gives_back() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nri.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let runtime =
        thread::spawn(move || runtime_side(FakeRuntime::new(listener.accept().unwrap().0)));

    let ledger = Arc::new(FakeLedger::holding(&[
        ("held-1", "3"),
        ("gone", "2"),
        ("dead", "1"),
    ]));
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = {
        let lines = Arc::clone(&lines);
        Arc::new(move |line: &str| lines.lock().unwrap().push(line.to_owned()))
    };
    let (plugin, refencer) =
        NriPlugin::new(ledger.clone(), CpuSet::parse_list("0-3").unwrap(), log);
    let plugin = Arc::new(plugin);
    let connection = Connection::open(&socket, plugin.clone()).unwrap();
    let client = connection.client();
    let refencing = {
        let client = client.clone();
        thread::spawn(move || refencer.run(&client))
    };
    client.register_plugin("nearnative", 10).unwrap();

    runtime.join().expect("the fake runtime's checks");
    connection.wait().unwrap();
    assert_eq!(
        plugin
            .latency_sensitive()
            .iter()
            .map(|(id, (_, g))| (id.as_str(), g.cpus.to_list()))
            .collect::<Vec<_>>(),
        [("again-1", "1".to_owned()), ("held-1", "3".to_owned())]
    );
    drop(plugin);
    refencing.join().expect("the refencer ends with its plugin");

    assert_eq!(
        ledger.held_cpus(),
        BTreeMap::from([
            ("again-1".into(), "1".into()),
            ("held-1".into(), "3".into())
        ])
    );
    assert_eq!(ledger.released(), ["dead", "gone", "trade-1", "late-1"]);
    let lines = lines.lock().unwrap();
    for expected in [
        "container default/held/app: adopted on CPUs 3",
        "container default/late/app: started while the plugin was away; admitted on CPUs 1",
        "container gone: released its cores",
        "container default/trade/app: admitted on CPUs 2 (1 core at high)",
    ] {
        assert!(
            lines.iter().any(|l| l == expected),
            "{expected:?} in {lines:#?}"
        );
    }
}

/// A plugin called directly, without a connection, logging into the returned lines.
fn direct(ledger: &Arc<FakeLedger>, online: &str) -> (NriPlugin, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = {
        let lines = Arc::clone(&lines);
        Arc::new(move |line: &str| lines.lock().unwrap().push(line.to_owned()))
    };
    let online = CpuSet::parse_list(online).unwrap();
    let (plugin, _refencer) = NriPlugin::new(ledger.clone(), online, log);
    (plugin, lines)
}

fn create_directly(
    plugin: &NriPlugin,
    pod: PodSandbox,
    id: &str,
) -> Result<CreateContainerResponse, Refusal> {
    plugin.create_container(CreateContainerRequest {
        container: Some(container(id, &pod.id, ContainerState::Created)),
        pod: Some(pod),
    })
}

#[test]
fn an_admission_that_would_leave_the_others_no_cpu_is_refused_and_released() {
    let ledger = Arc::new(FakeLedger::default());
    let (plugin, _) = direct(&ledger, "1-3");
    plugin.synchronize(SynchronizeRequest::default()).unwrap();
    let all = pod("all", &[(POD, "high"), (CORES, "3")]);
    let refused = create_directly(&plugin, all, "all-1").unwrap_err();
    assert_eq!(
        refused.0,
        "container default/all/app: not admitted (3 cores at high): the exclusive CPUs 1-3 \
         would leave none of the online CPUs 1-3 to the other containers"
    );
    assert!(
        ledger.held_cpus().is_empty(),
        "nothing held after a refusal"
    );
    assert!(plugin.latency_sensitive().is_empty());
}

#[test]
fn a_release_that_fails_keeps_the_others_fenced() {
    let ledger = Arc::new(FakeLedger::default());
    let (plugin, lines) = direct(&ledger, "0-3");
    plugin.synchronize(SynchronizeRequest::default()).unwrap();
    create_directly(&plugin, pod("plain", &[]), "plain-1").unwrap();
    create_directly(&plugin, pod("ls", &[(POD, "high")]), "ls-1").unwrap();
    ledger.state.lock().unwrap().broken = Some("the ledger is locked".into());
    let stopped = plugin
        .stop_container(StopContainerRequest {
            pod: None,
            container: Some(container("ls-1", "ls", ContainerState::Running)),
        })
        .unwrap();
    assert!(
        stopped.update.is_empty(),
        "no give-back of cores still held"
    );
    assert_eq!(plugin.latency_sensitive().len(), 1);
    assert!(lines.lock().unwrap().contains(
        &"container default/ls/app: cannot release its cores: the ledger is locked".to_owned()
    ));
    let plain_now = plugin
        .update_container(UpdateContainerRequest {
            container: Some(container("plain-1", "plain", ContainerState::Running)),
            ..UpdateContainerRequest::default()
        })
        .unwrap();
    assert_eq!(cpusets(&plain_now.update), [set("plain-1", "0,2-3", "")]);
}

#[test]
fn a_synchronize_without_the_ledger_is_refused() {
    let ledger = Arc::new(FakeLedger::default());
    ledger.state.lock().unwrap().broken = Some("cannot read ledger.json".into());
    let (plugin, _) = direct(&ledger, "0-3");
    let refused = plugin
        .synchronize(SynchronizeRequest::default())
        .unwrap_err();
    assert_eq!(
        refused.0,
        "cannot read the cores held: cannot read ledger.json"
    );
}

#[test]
fn a_late_container_with_a_bad_annotation_stays_unpinned_and_is_said_so() {
    let ledger = Arc::new(FakeLedger::default());
    let (plugin, lines) = direct(&ledger, "0-3");
    let synced = plugin
        .synchronize(SynchronizeRequest {
            pods: vec![pod("bad", &[(POD, "on")])],
            containers: vec![container("bad-1", "bad", ContainerState::Running)],
        })
        .unwrap();
    assert_eq!(cpusets(&synced.update), [set("bad-1", "0-3", "")]);
    assert!(ledger.held_cpus().is_empty());
    assert_eq!(
        *lines.lock().unwrap(),
        [
            "container default/bad/app: annotation latency-sensitivity.nearnative.io/pod: \"on\" \
          is not one of: high, high-ht; it started while the plugin was away and stays unpinned"
        ]
    );
}

#[test]
fn a_plain_container_is_left_alone_while_no_core_is_exclusive() {
    let ledger = Arc::new(FakeLedger::default());
    let (plugin, _) = direct(&ledger, "0-3");
    plugin.synchronize(SynchronizeRequest::default()).unwrap();
    let plain = create_directly(&plugin, pod("plain", &[]), "plain-1").unwrap();
    assert_eq!(plain, CreateContainerResponse::default());
}

#[test]
fn a_latency_sensitive_container_that_started_is_handed_to_the_backend() {
    let ledger = Arc::new(FakeLedger::default());
    let (plugin, _) = direct(&ledger, "0-3");
    plugin.synchronize(SynchronizeRequest::default()).unwrap();
    create_directly(&plugin, pod("ls", &[(POD, "high")]), "ls-1").unwrap();
    create_directly(&plugin, pod("plain", &[]), "plain-1").unwrap();
    for id in ["ls-1", "plain-1", "unknown"] {
        plugin
            .state_change(StateChangeEvent {
                event: Event::PostStartContainer as i32,
                pod: None,
                container: Some(container(id, "", ContainerState::Running)),
            })
            .unwrap();
    }
    assert_eq!(ledger.state.lock().unwrap().started, ["ls-1"]);
}

#[test]
fn running_containers_adopted_or_admitted_at_synchronize_are_handed_over_after_the_answer() {
    let ledger = Arc::new(FakeLedger::holding(&[("held-1", "3"), ("created-1", "2")]));
    let (plugin, _) = direct(&ledger, "0-3");
    plugin
        .synchronize(SynchronizeRequest {
            pods: vec![pod("held", &[(POD, "high")]), pod("late", &[(POD, "high")])],
            containers: vec![
                container("held-1", "held", ContainerState::Running),
                container("created-1", "held", ContainerState::Created),
                container("late-1", "late", ContainerState::Running),
            ],
        })
        .unwrap();
    assert!(
        ledger.state.lock().unwrap().started.is_empty(),
        "the runtime has not pinned them yet"
    );
    plugin.answered();
    assert_eq!(
        ledger.state.lock().unwrap().started,
        ["held-1", "late-1"],
        "the created one is handed over at its PostStartContainer"
    );
    plugin.answered();
    assert_eq!(ledger.state.lock().unwrap().started.len(), 2, "once");
    assert_eq!(
        ledger.state.lock().unwrap().reported,
        ["created-1"],
        "its admission stands while the runtime has it"
    );
}
