//! Against a real containerd 1.7 with NRI on: it sees our plugin register, configures it
//! and synchronizes it. The containerd is private to the test (its own root, state, sockets
//! and config under a temporary directory), starts no container, and is stopped by its pid.
//!
//! The binary is `$NEARNATIVE_CONTAINERD`, or `containerd` on PATH; Debian 12's 1.6 has no
//! NRI, so CI unpacks Debian 13's 1.7 (see the recipe in shared/recipes/containerd-nri.md).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nearnative_host::CpuSet;
use nearnative_nri::api::{
    ConfigureRequest, ConfigureResponse, CreateContainerRequest, CreateContainerResponse, Event,
    EventMask, StateChangeEvent, StopContainerRequest, StopContainerResponse, SynchronizeRequest,
    SynchronizeResponse, UpdateContainerRequest, UpdateContainerResponse,
};
use nearnative_nri::{Connection, Plugin, Refusal, Runner, Settings};
use std::os::unix::process::CommandExt;

/// Reports Configure and Synchronize to the test.
struct Reporter(Mutex<Sender<String>>);

impl Reporter {
    fn report(&self, what: String) {
        // The test may have stopped listening after a failure of its own.
        let _ = self.0.lock().unwrap().send(what);
    }
}

impl Plugin for Reporter {
    fn configure(&self, request: ConfigureRequest) -> Result<ConfigureResponse, Refusal> {
        self.report(format!(
            "configure {} {}",
            request.runtime_name, request.runtime_version
        ));
        Ok(ConfigureResponse {
            events: EventMask::of(&[Event::CreateContainer]).bits(),
        })
    }

    fn synchronize(&self, request: SynchronizeRequest) -> Result<SynchronizeResponse, Refusal> {
        self.report(format!(
            "synchronize {} {}",
            request.pods.len(),
            request.containers.len()
        ));
        Ok(SynchronizeResponse::default())
    }

    fn create_container(
        &self,
        _: CreateContainerRequest,
    ) -> Result<CreateContainerResponse, Refusal> {
        Ok(CreateContainerResponse::default())
    }

    fn update_container(
        &self,
        _: UpdateContainerRequest,
    ) -> Result<UpdateContainerResponse, Refusal> {
        Ok(UpdateContainerResponse::default())
    }

    fn stop_container(&self, _: StopContainerRequest) -> Result<StopContainerResponse, Refusal> {
        Ok(StopContainerResponse::default())
    }

    fn state_change(&self, _: StateChangeEvent) -> Result<(), Refusal> {
        Ok(())
    }

    fn shutdown(&self) {}
}

/// A containerd of the test's own, stopped by its pid when dropped.
pub struct PrivateContainerd {
    child: Child,
    log: PathBuf,
}

impl PrivateContainerd {
    pub fn start(dir: &Path) -> PrivateContainerd {
        let binary =
            std::env::var_os("NEARNATIVE_CONTAINERD").unwrap_or_else(|| "containerd".into());
        let config = dir.join("config.toml");
        fs::write(&config, config_toml(dir)).unwrap();
        let log = dir.join("containerd.log");
        let child = Command::new(&binary)
            .arg("--config")
            .arg(&config)
            .stdout(File::create(&log).unwrap())
            .stderr(File::create(&log).unwrap())
            // Its own process group, so a terminal's signals do not reach it.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", Path::new(&binary).display()));
        PrivateContainerd { child, log }
    }

    pub fn wait_for(&mut self, socket: &Path) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("containerd exited ({status}):\n{}", self.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "no {} after 30 s:\n{}",
                socket.display(),
                self.log_tail()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for PrivateContainerd {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config_toml(dir: &Path) -> String {
    let r = dir.display();
    format!(
        r#"version = 2
root = "{r}/root"
state = "{r}/state"
[grpc]
  address = "{r}/sock/containerd.sock"
[ttrpc]
  address = "{r}/sock/containerd.sock.ttrpc"
[debug]
  address = "{r}/sock/debug.sock"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{r}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{r}/cni/bin"
    conf_dir = "{r}/cni/net.d"
[plugins."io.containerd.nri.v1.nri"]
  disable = false
  disable_connections = false
  socket_path = "{r}/sock/nri.sock"
  plugin_path = "{r}/nri/plugins"
  plugin_config_path = "{r}/nri/conf.d"
  plugin_registration_timeout = "5s"
  plugin_request_timeout = "2s"
"#
    )
}

#[test]
#[ignore = "needs root: containerd 1.7 with NRI ($NEARNATIVE_CONTAINERD or containerd on PATH)"]
fn containerd_registers_configures_and_synchronizes_the_plugin() {
    let dir = tempfile::Builder::new()
        .prefix("nn-nri-live")
        .tempdir()
        .unwrap();
    let mut containerd = PrivateContainerd::start(dir.path());
    let socket = dir.path().join("sock/nri.sock");
    containerd.wait_for(&socket);

    let (reports, heard) = mpsc::channel();
    let connection = Connection::open(&socket, Arc::new(Reporter(Mutex::new(reports)))).unwrap();
    connection
        .client()
        .register_plugin("nearnative", 10)
        .unwrap();
    let next = || {
        heard
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|err| {
                panic!(
                    "no call from containerd ({err}):\n{}",
                    containerd.log_tail()
                )
            })
    };
    let configured = next();
    assert!(
        configured.starts_with("configure containerd 1.7."),
        "{configured}"
    );
    assert_eq!(
        next(),
        "synchronize 0 0",
        "a fresh containerd has no pod or container"
    );

    connection.close();
    connection.wait().unwrap();
    drop(containerd);
}

/// Polls what the plugin said until `wanted` holds of it, at most 30 s; on failure the
/// lines and `context` (containerd's log) are shown.
fn wait_until(
    lines: &Mutex<Vec<String>>,
    what: &str,
    context: &dyn Fn() -> String,
    wanted: impl Fn(&[String]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !wanted(&lines.lock().unwrap()) {
        assert!(
            Instant::now() < deadline,
            "no {what} after 30 s; the plugin said {:#?}; containerd said:\n{}",
            lines.lock().unwrap(),
            context()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

fn count(lines: &[String], wanted: impl Fn(&str) -> bool) -> usize {
    lines.iter().filter(|l| wanted(l)).count()
}

#[test]
#[ignore = "needs root: containerd 1.7 with NRI ($NEARNATIVE_CONTAINERD or containerd on PATH)"]
fn the_plugin_is_configured_by_containerd_and_comes_back_after_its_restart() {
    let dir = tempfile::Builder::new()
        .prefix("nn-nri-live")
        .tempdir()
        .unwrap();
    let mut containerd = PrivateContainerd::start(dir.path());
    let socket = dir.path().join("sock/nri.sock");
    containerd.wait_for(&socket);

    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = {
        let lines = Arc::clone(&lines);
        Arc::new(move |line: &str| lines.lock().unwrap().push(line.to_owned()))
    };
    let settings = Settings {
        socket: socket.clone(),
        ..Settings::default()
    };
    let ledger = Arc::new(crate::nri_plugin::FakeLedger::default());
    let runner = Arc::new(Runner::new(settings, ledger, log));
    let running = {
        let runner = Arc::clone(&runner);
        thread::spawn(move || runner.run(&|| Ok(CpuSet::parse_list("0-1").unwrap())))
    };
    let configured = |l: &str| l.starts_with("NRI: configured by containerd 1.7.");
    let registered = |l: &str| l.starts_with("NRI: registered as nearnative (index 10)");
    // containerd checks the event mask in Configure's answer and drops a plugin it refuses;
    // a second registration would say so.
    wait_until(&lines, "Configure", &|| containerd.log_tail(), |l| {
        count(l, configured) == 1
    });
    thread::sleep(Duration::from_secs(1));
    assert_eq!(
        count(&lines.lock().unwrap(), registered),
        1,
        "kept after Configure"
    );

    drop(containerd);
    let went_away = |l: &str| l.ends_with("went away; dialing again");
    wait_until(&lines, "notice of the restart", &String::new, |l| {
        count(l, went_away) == 1
    });
    let mut containerd = PrivateContainerd::start(dir.path());
    containerd.wait_for(&socket);
    wait_until(&lines, "second Configure", &|| containerd.log_tail(), |l| {
        count(l, configured) == 2
    });

    runner.stop();
    running.join().unwrap();
    drop(containerd);
}
