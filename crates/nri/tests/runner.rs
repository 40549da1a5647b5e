//! The runner across connections: it registers, serves, dials again when the runtime goes
//! away, says a lasting failure once, and stops promptly whether connected or waiting.

use std::os::unix::net::UnixListener;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nearnative_host::CpuSet;
use nearnative_nri::api::plugin::{CONFIGURE, SYNCHRONIZE};
use nearnative_nri::api::{
    ConfigureRequest, ConfigureResponse, Empty, SynchronizeRequest, SynchronizeResponse,
};
use nearnative_nri::ttrpc::Status;
use nearnative_nri::{Runner, Settings};
use prost::Message;

use crate::fake_runtime::FakeRuntime;
use crate::nri_plugin::FakeLedger;

fn runner(socket: std::path::PathBuf) -> (Arc<Runner>, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = {
        let lines = Arc::clone(&lines);
        Arc::new(move |line: &str| lines.lock().unwrap().push(line.to_owned()))
    };
    let settings = Settings {
        socket,
        ..Settings::default()
    };
    let runner = Runner::new(settings, Arc::new(FakeLedger::default()), log);
    (Arc::new(runner), lines)
}

fn run(runner: &Arc<Runner>) -> thread::JoinHandle<()> {
    let runner = Arc::clone(runner);
    thread::spawn(move || runner.run(&|| Ok(CpuSet::parse_list("0-3").unwrap())))
}

/// Registration, Configure and Synchronize, as a runtime starts every plugin.
fn start_plugin(runtime: &mut FakeRuntime) {
    let (stream_id, request) = runtime.expect_call();
    assert_eq!(request.method, "RegisterPlugin");
    runtime.answer(stream_id, Status::default(), Empty {}.encode_to_vec());
    let _: ConfigureResponse = runtime
        .call(CONFIGURE, &ConfigureRequest::default())
        .unwrap();
    let _: SynchronizeResponse = runtime
        .call(SYNCHRONIZE, &SynchronizeRequest::default())
        .unwrap();
}

#[test]
fn the_runner_dials_again_when_the_runtime_goes_and_stops_when_told() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nri.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let (runner, lines) = runner(socket.clone());
    let running = run(&runner);

    let mut first = FakeRuntime::new(listener.accept().unwrap().0);
    start_plugin(&mut first);
    drop(first);
    let mut second = FakeRuntime::new(listener.accept().unwrap().0);
    start_plugin(&mut second);

    runner.stop();
    running.join().unwrap();
    let sock = socket.display();
    let registered = format!("NRI: registered as nearnative (index 10) on {sock}");
    let configured = "NRI: configured by  ".to_owned();
    let lines = lines.lock().unwrap().clone();
    // The runtime may call Configure before the runner logs the registration's answer.
    let mut first_session = lines[..2].to_vec();
    first_session.sort();
    let mut second_session = lines[3..].to_vec();
    second_session.sort();
    assert_eq!(first_session, [configured.clone(), registered.clone()]);
    assert_eq!(
        lines[2],
        format!("NRI: the runtime on {sock} went away; dialing again")
    );
    assert_eq!(second_session, [configured, registered]);
}

#[test]
fn a_runtime_that_is_not_there_is_said_once_and_the_wait_ends_on_stop() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("absent.sock");
    let (runner, lines) = runner(socket.clone());
    let running = run(&runner);
    // Long enough for several attempts (100 ms, 200 ms, 400 ms, ...).
    thread::sleep(Duration::from_millis(800));
    let (done, finished) = mpsc::channel();
    let stopped_at = Instant::now();
    runner.stop();
    thread::spawn(move || {
        running.join().unwrap();
        done.send(()).unwrap();
    });
    finished
        .recv_timeout(Duration::from_secs(2))
        .expect("run returns promptly once stopped");
    assert!(stopped_at.elapsed() < Duration::from_secs(2));
    let lines = lines.lock().unwrap();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].starts_with(&format!(
            "NRI socket {}: cannot connect: ",
            socket.display()
        )) && lines[0].ends_with("; dialing again until it answers"),
        "{}",
        lines[0]
    );
}
