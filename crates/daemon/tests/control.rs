//! The control socket with a handler over a furnished tree: every request goes and its answer
//! comes back whole (the JSON the CLI prints is the JSON the engine's result gives), the
//! socket is 0600 in a 0700 directory, a stale socket is replaced, a live one is not, and a
//! line beyond the bound is refused before the handler sees anything.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nearnative_apply::{StateDir, DEFAULT_STATE_DIR};
use nearnative_daemon::control::{
    self, Client, ControlError, ControlServer, Handler, LibvirtAnswer, LibvirtEvent, LibvirtOp,
    Request, Response, RevertRequest, VerifyRequest, MAX_REQUEST_BYTES,
};
use nearnative_daemon::libvirt::hook;
use nearnative_daemon::status::{DaemonStatus, Source, WorkloadState, WorkloadStatus};
use nearnative_engine::{Engine, RevertWhich, VerifyOptions};
use nearnative_host::{CpuSet, Root};
use nearnative_knob::TreeBackend;
use nearnative_plan::PlanRequest;
use nearnative_testkit::tree::{furnish, TIDS};
use nearnative_testkit::{Snapshot, SNAPSHOTS};
use tempfile::TempDir;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs each request on an engine over a furnished tree and keeps what it got and the JSON
/// of what it answered.
struct TreeHandler {
    snapshot: Snapshot,
    state_dir: PathBuf,
    requests: Mutex<Vec<Request>>,
    answers: Mutex<Vec<serde_json::Value>>,
}

impl TreeHandler {
    fn new(state_dir: &Path) -> Arc<TreeHandler> {
        let snapshot = nearnative_testkit::extract(SNAPSHOTS[0]);
        furnish(&snapshot.root);
        Arc::new(TreeHandler {
            snapshot,
            state_dir: state_dir.to_owned(),
            requests: Mutex::new(Vec::new()),
            answers: Mutex::new(Vec::new()),
        })
    }

    fn engine(&self) -> Engine {
        let root = &self.snapshot.root;
        Engine::new(
            Root::new(root),
            Box::new(TreeBackend::new(root)),
            StateDir::new(&self.state_dir),
        )
    }

    fn answer(&self, request: Request) -> Response {
        let engine = self.engine();
        let answer = match request {
            Request::Apply { request } => {
                engine.apply(&request).map(Box::new).map(Response::Applied)
            }
            Request::Revert { which } => engine
                .revert(&which.into())
                .map(Box::new)
                .map(Response::Reverted),
            Request::Status => Ok(Response::Status(self.status())),
            Request::Verify { target, options } => engine
                .verify(&target, &options.options(), &AtomicBool::new(false))
                .map(Box::new)
                .map(Response::Verified),
            Request::Libvirt { event } => Ok(Response::Libvirt(admission(&engine, event))),
        };
        answer.unwrap_or_else(|e| Response::error(&e))
    }

    fn status(&self) -> DaemonStatus {
        DaemonStatus {
            pid: std::process::id(),
            state_dir: self.state_dir.clone(),
            policy_dir: "/etc/nearnative/workloads.d".into(),
            workloads: vec![WorkloadStatus {
                workload: "vm:web1".to_owned(),
                target: "vm:web1".to_owned(),
                source: Source::Policy {
                    file: "/etc/nearnative/workloads.d/web.toml".into(),
                    line: 3,
                },
                state: WorkloadState::Drifted {
                    knobs: vec!["thread 4001 affinity".to_owned()],
                },
                exclusive_cpus: CpuSet::parse_list("2-3").unwrap(),
                io_cpus: CpuSet::parse_list("4").unwrap(),
                interference: None,
            }],
            free_cores_by_node: [(0, 2), (1, 3)].into_iter().collect(),
            ..DaemonStatus::default()
        }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    fn last_answer(&self) -> serde_json::Value {
        self.answers.lock().unwrap().last().unwrap().clone()
    }
}

impl Handler for TreeHandler {
    fn handle(&self, request: Request) -> Response {
        self.requests.lock().unwrap().push(request.clone());
        let answer = self.answer(request);
        let json = serde_json::to_value(&answer).unwrap();
        self.answers.lock().unwrap().push(json);
        answer
    }
}

/// A handler that must never be called.
struct Untouchable;

impl Handler for Untouchable {
    fn handle(&self, request: Request) -> Response {
        panic!("the handler was called with {request:?}");
    }
}

struct Bench {
    dir: TempDir,
    handler: Arc<TreeHandler>,
    server: ControlServer,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let handler = TreeHandler::new(&dir.path().join("state"));
        let socket = dir.path().join("run/control.sock");
        let server = ControlServer::bind(&socket, handler.clone()).unwrap();
        Bench {
            dir,
            handler,
            server,
        }
    }

    fn socket(&self) -> &Path {
        self.server.path()
    }

    fn ask(&self, request: &Request) -> Response {
        control::request(self.socket(), request, TIMEOUT)
            .unwrap()
            .expect("the server listens")
    }

    fn client(&self) -> Client {
        Client::new(self.socket(), Path::new("/"), &self.handler.state_dir)
    }
}

/// The daemon's admission at libvirt's `prepare`, without pending admissions.
fn admission(engine: &Engine, event: LibvirtEvent) -> LibvirtAnswer {
    match (event.op, event.request) {
        (LibvirtOp::Prepare, Some(request)) => match engine.admit(&request, event.vcpus, &[]) {
            Ok(allocation) => LibvirtAnswer::Admitted {
                exclusive_cpus: allocation.exclusive_cpus,
            },
            Err(err) => LibvirtAnswer::Refused {
                reason: control::error_line(&err),
            },
        },
        _ => LibvirtAnswer::Noted,
    }
}

fn worker_request() -> PlanRequest {
    let mut request = PlanRequest::new(format!("pid:{}", TIDS[0]).parse().unwrap());
    request.threads = Some(vec![TIDS[1]]);
    request
}

#[test]
fn each_request_goes_and_its_answer_comes_back_whole() {
    let bench = Bench::new();
    let asked = [
        Request::Apply {
            request: worker_request(),
        },
        Request::Verify {
            target: "pid:4000".to_owned(),
            options: VerifyRequest { sample_ms: 0 },
        },
        Request::Status,
        Request::Revert {
            which: RevertRequest::Target("pid:4000".to_owned()),
        },
    ];
    for request in &asked {
        let answer = bench.ask(request);
        assert!(
            !matches!(answer, Response::Error { .. }),
            "{request:?}: {answer:?}"
        );
        let received = serde_json::to_value(&answer).unwrap();
        assert_eq!(received, bench.handler.last_answer(), "{request:?}");
    }
    assert_eq!(bench.handler.requests(), asked);
}

#[test]
fn the_client_returns_the_engines_results() {
    let bench = Bench::new();
    let client = bench.client();
    let applied = client.apply(&worker_request()).unwrap().unwrap();
    assert_eq!(applied.plan.workload.0, "pid:4000");
    assert!(!applied.report.changed.is_empty());
    let options = VerifyOptions {
        sample: Duration::ZERO,
    };
    let report = client.verify("pid:4000", &options).unwrap().unwrap();
    assert_eq!(report.workload, "pid:4000");
    let status = client.status().unwrap().unwrap();
    assert_eq!(
        status.workloads[0].source.clone(),
        bench.handler.status().workloads[0].source
    );
    let which = RevertWhich::Target("pid:4000".to_owned());
    let reverted = client.revert(&which).unwrap().unwrap();
    assert_eq!(reverted.workloads.len(), 1);
    assert!(!reverted.report.journals[0].restored.is_empty());
}

#[test]
fn the_daemons_error_comes_back_as_its_message() {
    let bench = Bench::new();
    let options = VerifyOptions {
        sample: Duration::ZERO,
    };
    let err = bench.client().verify("pid:9999", &options).unwrap_err();
    assert!(matches!(err, ControlError::Daemon { .. }), "{err:?}");
    assert!(!err.to_string().contains('\n'));
    assert!(err.to_string().contains("pid:9999"), "{err}");
}

/// A domain as libvirt hands it to the hook: `vcpus` vCPUs, asking for level high.
fn domain_xml(name: &str, vcpus: u32) -> String {
    format!(
        "<domain type='kvm'><name>{name}</name><vcpu placement='static'>{vcpus}</vcpu>\
         <metadata><nn:latency xmlns:nn='urn:nearnative:latency:1' level='high'/></metadata>\
         </domain>"
    )
}

#[test]
fn the_hooks_prepare_is_admitted_or_refused_with_the_planners_line() {
    let bench = Bench::new();
    let prepare = |name: &str, vcpus| {
        let args = [name, "prepare", "begin", "-"].map(String::from);
        hook::run(
            bench.socket(),
            &args,
            &mut domain_xml(name, vcpus).as_bytes(),
        )
    };
    let admitted = prepare("nn1", 1);
    assert_eq!((admitted.refused, admitted.line), (false, None));
    let refused = prepare("nn2", 4096);
    assert!(refused.refused);
    let line = refused.line.unwrap();
    assert!(line.starts_with("vm:nn2 asks for 4096 exclusive"), "{line}");
    assert_eq!(line.lines().count(), 1);
    let Request::Libvirt { event } = bench.handler.requests().pop().unwrap() else {
        panic!("not a libvirt event");
    };
    assert_eq!(
        (event.op, event.domain.as_str(), event.vcpus),
        (LibvirtOp::Prepare, "nn2", 4096)
    );
}

#[test]
fn another_tree_or_another_state_dir_works_directly() {
    let bench = Bench::new();
    let state_dir = &bench.handler.state_dir;
    let tree = Client::new(bench.socket(), Path::new("/tmp/tree"), state_dir);
    assert!(tree.apply(&worker_request()).unwrap().is_none());
    assert!(tree.status().unwrap().is_none());
    let elsewhere = bench.dir.path().join("other-state");
    let other = Client::new(bench.socket(), Path::new("/"), &elsewhere);
    assert!(other.apply(&worker_request()).unwrap().is_none());
    // Only the status that found the state directory differs reached the daemon.
    assert_eq!(bench.handler.requests(), [Request::Status]);
    // The default state directory is whichever the daemon keeps.
    let default = Client::new(bench.socket(), Path::new("/"), Path::new(DEFAULT_STATE_DIR));
    assert!(default.status().unwrap().is_some());
    assert_eq!(bench.handler.requests(), [Request::Status, Request::Status]);
}

#[test]
fn no_socket_file_or_nobody_listening_means_no_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("control.sock");
    assert!(control::request(&missing, &Request::Status, TIMEOUT)
        .unwrap()
        .is_none());
    drop(UnixListener::bind(&missing).unwrap());
    assert!(control::request(&missing, &Request::Status, TIMEOUT)
        .unwrap()
        .is_none());
}

#[test]
fn the_socket_is_0600_in_a_0700_directory_and_gone_after_drop() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("run/nearnative/control.sock");
    let server = ControlServer::bind(&socket, Arc::new(Untouchable)).unwrap();
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&socket), 0o600);
    assert_eq!(mode(socket.parent().unwrap()), 0o700);
    drop(server);
    assert!(!socket.exists(), "the socket file outlived the server");
}

#[test]
fn a_stale_socket_is_replaced() {
    let bench = Bench::new();
    let socket = bench.dir.path().join("stale/control.sock");
    std::fs::create_dir(socket.parent().unwrap()).unwrap();
    drop(UnixListener::bind(&socket).unwrap());
    let server = ControlServer::bind(&socket, bench.handler.clone()).unwrap();
    let answer = control::request(server.path(), &Request::Status, TIMEOUT).unwrap();
    assert!(matches!(answer, Some(Response::Status(_))), "{answer:?}");
}

#[test]
fn a_live_socket_is_not_taken_over() {
    let bench = Bench::new();
    let second = ControlServer::bind(bench.socket(), Arc::new(Untouchable));
    let err = second.err().expect("a second server bound a live socket");
    assert!(matches!(err, ControlError::InUse { .. }), "{err:?}");
    assert!(err
        .to_string()
        .contains(&bench.socket().display().to_string()));
    // The first one still answers.
    assert!(matches!(bench.ask(&Request::Status), Response::Status(_)));
}

#[test]
fn a_file_in_the_sockets_place_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    std::fs::write(&path, "mine").unwrap();
    let err = ControlServer::bind(&path, Arc::new(Untouchable))
        .err()
        .unwrap();
    assert!(matches!(err, ControlError::NotASocket { .. }), "{err:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "mine");
}

/// Sends `bytes` raw and returns the answer line. Only the line: a server that closes with
/// part of the request unread resets the connection after it.
fn raw_exchange(socket: &Path, bytes: &[u8]) -> String {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.write_all(bytes).unwrap();
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).unwrap();
    answer
}

#[test]
fn an_oversized_line_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let _server = ControlServer::bind(&socket, Arc::new(Untouchable)).unwrap();
    let line = vec![b' '; MAX_REQUEST_BYTES + 10];
    let answer = raw_exchange(&socket, &line);
    let expected = format!("request longer than {MAX_REQUEST_BYTES} bytes");
    assert!(answer.contains(&expected), "{answer}");
    let parsed: Response = serde_json::from_str(&answer).unwrap();
    assert!(matches!(parsed, Response::Error { .. }));
}

#[test]
fn a_malformed_request_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let _server = ControlServer::bind(&socket, Arc::new(Untouchable)).unwrap();
    let answer = raw_exchange(&socket, b"{\"launch\":{}}\n");
    assert!(answer.contains("bad request"), "{answer}");
    assert!(answer.ends_with('\n'));
}
