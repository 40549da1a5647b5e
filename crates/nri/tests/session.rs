//! A whole plugin session against the fake runtime: registration, Configure, Synchronize,
//! CreateContainer admitted and refused, events, an UpdateContainers sent while the runtime
//! is calling us, Shutdown; and the ways a call to the runtime fails.

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use nearnative_nri::api::plugin::{
    CONFIGURE, CREATE_CONTAINER, SHUTDOWN, STATE_CHANGE, SYNCHRONIZE,
};
use nearnative_nri::api::{
    ConfigureRequest, ConfigureResponse, Container, ContainerAdjustment, ContainerUpdate,
    CreateContainerRequest, CreateContainerResponse, Empty, Event, EventMask, LinuxResources,
    PodSandbox, RegisterPluginRequest, StateChangeEvent, StopContainerRequest,
    StopContainerResponse, SynchronizeRequest, SynchronizeResponse, UpdateContainerRequest,
    UpdateContainerResponse, UpdateContainersRequest, UpdateContainersResponse,
};
use nearnative_nri::ttrpc::{Response, Status};
use nearnative_nri::{Connection, Error, Plugin, Refusal};
use prost::Message;

use crate::fake_runtime::FakeRuntime;

const POD_SWITCH: &str = "latency-sensitivity.nearnative.io/pod";

/// Pins containers of pods annotated `high` to CPU 1 and everything it synchronizes to CPU 0,
/// refuses any other value of the annotation, and notes what it was called with.
#[derive(Default)]
struct Pinning {
    seen: Mutex<Vec<String>>,
}

impl Pinning {
    fn note(&self, what: String) {
        self.seen.lock().unwrap().push(what);
    }
}

impl Plugin for Pinning {
    fn configure(&self, request: ConfigureRequest) -> Result<ConfigureResponse, Refusal> {
        self.note(format!(
            "configure {} {}",
            request.runtime_name, request.runtime_version
        ));
        let mask = EventMask::of(&[
            Event::CreateContainer,
            Event::StopContainer,
            Event::RemoveContainer,
        ]);
        Ok(ConfigureResponse {
            events: mask.bits(),
        })
    }

    fn synchronize(&self, request: SynchronizeRequest) -> Result<SynchronizeResponse, Refusal> {
        self.note(format!(
            "synchronize {} pods {} containers",
            request.pods.len(),
            request.containers.len()
        ));
        let update = request
            .containers
            .iter()
            .map(|c| ContainerUpdate::resources(&c.id, LinuxResources::cpuset("0", None)))
            .collect();
        Ok(SynchronizeResponse { update })
    }

    fn create_container(
        &self,
        request: CreateContainerRequest,
    ) -> Result<CreateContainerResponse, Refusal> {
        let pod = request.pod.unwrap_or_default();
        match pod.annotations.get(POD_SWITCH).map(String::as_str) {
            None => Ok(CreateContainerResponse::default()),
            Some("high") => Ok(CreateContainerResponse {
                adjust: Some(ContainerAdjustment::resources(LinuxResources::cpuset(
                    "1",
                    Some("0"),
                ))),
                ..CreateContainerResponse::default()
            }),
            Some(other) => Err(Refusal::new(format!(
                "annotation {POD_SWITCH}: {other:?} is not high or high-ht"
            ))),
        }
    }

    fn update_container(
        &self,
        _: UpdateContainerRequest,
    ) -> Result<UpdateContainerResponse, Refusal> {
        Ok(UpdateContainerResponse::default())
    }

    fn stop_container(
        &self,
        request: StopContainerRequest,
    ) -> Result<StopContainerResponse, Refusal> {
        self.note(format!("stop {}", request.container.unwrap_or_default().id));
        Ok(StopContainerResponse::default())
    }

    fn state_change(&self, event: StateChangeEvent) -> Result<(), Refusal> {
        self.note(format!(
            "{:?} {}",
            event.event(),
            event.container.unwrap_or_default().id
        ));
        Ok(())
    }

    fn shutdown(&self) {
        self.note("shutdown".into());
    }
}

fn pod(id: &str, switch: Option<&str>) -> PodSandbox {
    let mut pod = PodSandbox {
        id: id.into(),
        name: id.into(),
        ..PodSandbox::default()
    };
    if let Some(value) = switch {
        pod.annotations.insert(POD_SWITCH.into(), value.into());
    }
    pod
}

fn container(id: &str, pod: &str) -> Container {
    Container {
        id: id.into(),
        pod_sandbox_id: pod.into(),
        name: id.into(),
        ..Container::default()
    }
}

fn create(
    runtime: &mut FakeRuntime,
    switch: Option<&str>,
) -> Result<CreateContainerResponse, Status> {
    let request = CreateContainerRequest {
        pod: Some(pod("p", switch)),
        container: Some(container("new", "p")),
    };
    runtime.call(CREATE_CONTAINER, &request)
}

fn ok() -> Status {
    Status::default()
}

/// The runtime's half of the session; returns the largest frame the plugin sent.
fn runtime_side(mut runtime: FakeRuntime) -> usize {
    let (stream_id, request) = runtime.expect_call();
    assert_eq!(request.method, "RegisterPlugin");
    let register = RegisterPluginRequest::decode(request.payload.as_slice()).unwrap();
    assert_eq!(
        (register.plugin_name.as_str(), register.plugin_idx.as_str()),
        ("nearnative", "10")
    );
    runtime.answer(stream_id, ok(), Empty {}.encode_to_vec());

    let configure = ConfigureRequest {
        runtime_name: "fake".into(),
        runtime_version: "1.7.24".into(),
        ..Default::default()
    };
    let configured: ConfigureResponse = runtime.call(CONFIGURE, &configure).unwrap();
    assert_eq!(configured.events, (1 << 3) | (1 << 9) | (1 << 10));

    // Big enough to need several of the plugin's 4 KiB frames both ways.
    let containers: Vec<Container> = (0..400)
        .map(|n| container(&format!("c-{n:03}"), "p"))
        .collect();
    let sync = SynchronizeRequest {
        pods: vec![pod("p", None)],
        containers,
    };
    let synced: SynchronizeResponse = runtime.call(SYNCHRONIZE, &sync).unwrap();
    assert_eq!(synced.update.len(), 400);
    assert_eq!(synced.update[399].container_id, "c-399");
    let cpus = synced.update[0]
        .linux
        .as_ref()
        .and_then(|l| l.resources.as_ref())
        .and_then(|r| r.cpu.as_ref());
    assert_eq!(cpus.map(|c| c.cpus.as_str()), Some("0"));

    let admitted = create(&mut runtime, Some("high")).unwrap();
    let resources = admitted
        .adjust
        .and_then(|a| a.linux)
        .and_then(|l| l.resources)
        .and_then(|r| r.cpu)
        .unwrap();
    assert_eq!(
        (resources.cpus.as_str(), resources.mems.as_str()),
        ("1", "0")
    );
    assert_eq!(
        create(&mut runtime, None).unwrap(),
        CreateContainerResponse::default()
    );
    let refused = create(&mut runtime, Some("bogus")).unwrap_err();
    assert_eq!(
        refused.code, 2,
        "a refusal is a plain error, as a Go plugin's"
    );
    assert_eq!(
        refused.message,
        format!("annotation {POD_SWITCH}: \"bogus\" is not high or high-ht")
    );

    let unknown = Response::decode(
        runtime
            .call_raw("nri.pkg.api.v1alpha1.Plugin", "Frobnicate", vec![])
            .as_slice(),
    );
    assert_eq!(unknown.unwrap().status.unwrap().code, 12, "unimplemented");
    let other_service = Response::decode(
        runtime
            .call_raw("other.Service", "Configure", vec![])
            .as_slice(),
    );
    assert_eq!(
        other_service.unwrap().status.unwrap().code,
        12,
        "unimplemented"
    );

    let removed = StateChangeEvent {
        event: Event::RemoveContainer as i32,
        pod: Some(pod("p", None)),
        container: Some(container("c-007", "p")),
    };
    let _: Empty = runtime.call(STATE_CHANGE, &removed).unwrap();

    // Sent by the plugin right after registering; it waited while we called it.
    let (stream_id, request) = runtime.expect_call();
    assert_eq!(request.method, "UpdateContainers");
    let update = UpdateContainersRequest::decode(request.payload.as_slice()).unwrap();
    let failed = UpdateContainersResponse {
        failed: vec![update.update[1].clone()],
    };
    runtime.answer(stream_id, ok(), failed.encode_to_vec());

    let _: Empty = runtime.call(SHUTDOWN, &Empty {}).unwrap();
    runtime.largest_frame
}

#[test]
fn a_plugin_session_from_registration_to_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nri.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let runtime =
        thread::spawn(move || runtime_side(FakeRuntime::new(listener.accept().unwrap().0)));

    let plugin = Arc::new(Pinning::default());
    let connection = Connection::open(&socket, plugin.clone()).unwrap();
    let client = connection.client();
    client.register_plugin("nearnative", 10).unwrap();
    let request = UpdateContainersRequest {
        update: vec![
            ContainerUpdate::resources("c-001", LinuxResources::cpuset("0", None)),
            ContainerUpdate::resources("gone", LinuxResources::cpuset("0", None)),
        ],
        evict: vec![],
    };
    let failed = client.update_containers(request).unwrap();
    assert_eq!(
        failed
            .iter()
            .map(|u| u.container_id.as_str())
            .collect::<Vec<_>>(),
        ["gone"]
    );

    let largest_frame = runtime.join().expect("the fake runtime's checks");
    assert_eq!(
        largest_frame, 4096,
        "the Synchronize answer needed full 4 KiB frames"
    );
    connection
        .wait()
        .expect("the runtime closing the socket ends the session cleanly");
    assert_eq!(
        *plugin.seen.lock().unwrap(),
        [
            "configure fake 1.7.24",
            "synchronize 1 pods 400 containers",
            "RemoveContainer c-007",
            "shutdown"
        ]
    );
}

/// A connection over one end of a socket pair, the fake runtime on the other.
fn paired() -> (Connection, FakeRuntime) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let connection =
        Connection::start(Path::new("pair.sock"), ours, Arc::new(Pinning::default())).unwrap();
    (connection, FakeRuntime::new(theirs))
}

#[test]
fn a_refused_registration_names_the_socket_the_call_and_the_reason() {
    let (connection, mut runtime) = paired();
    let runtime = thread::spawn(move || {
        let (stream_id, _) = runtime.expect_call();
        runtime.answer(
            stream_id,
            Status {
                code: 2,
                message: "invalid plugin index".into(),
            },
            vec![],
        );
        runtime
    });
    let err = connection
        .client()
        .register_plugin("nearnative", 7)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "NRI socket pair.sock: the runtime refused RegisterPlugin (code 2): invalid plugin index"
    );
    drop(runtime.join().unwrap());
    connection.wait().unwrap();
}

#[test]
fn a_pending_call_fails_when_the_runtime_goes_away() {
    let (connection, mut runtime) = paired();
    let runtime = thread::spawn(move || {
        runtime.expect_call();
    });
    let err = connection
        .client()
        .register_plugin("nearnative", 10)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Closed {
                method: "RegisterPlugin",
                ..
            }
        ),
        "{err}"
    );
    runtime.join().unwrap();
    connection.wait().unwrap();
}

#[test]
fn an_unanswered_call_times_out_and_a_late_answer_is_dropped() {
    let (connection, mut runtime) = paired();
    let client = connection.client().with_timeout(Duration::from_millis(200));
    let (go_on, wait) = std::sync::mpsc::channel::<()>();
    let runtime = thread::spawn(move || {
        let (late, _) = runtime.expect_call();
        wait.recv().unwrap();
        runtime.answer(late, ok(), vec![]);
        let (stream_id, request) = runtime.expect_call();
        assert_eq!(
            stream_id,
            late + 2,
            "stream ids rise by 2 and are never reused"
        );
        assert_eq!(request.method, "UpdateContainers");
        runtime.answer(
            stream_id,
            ok(),
            UpdateContainersResponse::default().encode_to_vec(),
        );
    });
    let err = client.register_plugin("nearnative", 10).unwrap_err();
    assert_eq!(
        err.to_string(),
        "NRI socket pair.sock: RegisterPlugin: no answer within 200ms"
    );
    go_on.send(()).unwrap();
    let failed = client
        .update_containers(UpdateContainersRequest::default())
        .unwrap();
    assert!(failed.is_empty());
    runtime.join().unwrap();
    connection.close();
    connection.wait().unwrap();
}

#[test]
fn a_registration_the_runtime_would_refuse_is_not_sent() {
    let (connection, _runtime) = paired();
    let client = connection.client();
    assert!(matches!(
        client.register_plugin("nearnative", 100),
        Err(Error::InvalidIndex(100))
    ));
    assert!(matches!(
        client.register_plugin("", 10),
        Err(Error::EmptyName)
    ));
    connection.close();
    connection.wait().unwrap();
}

#[test]
fn a_connect_error_names_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("absent.sock");
    let err = Connection::open(&socket, Arc::new(Pinning::default()))
        .err()
        .unwrap();
    assert!(
        err.to_string().starts_with(&format!(
            "NRI socket {}: cannot connect: ",
            socket.display()
        )),
        "{err}"
    );
}
