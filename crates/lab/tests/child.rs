//! The child process of the cleanup and preflight tests: the test binary run again on the
//! calling test alone (`--exact` with the name of the test's thread), with `NNLAB_CHILD_MODE`
//! set, so a real process can be interrupted or killed mid-run. The first thing every root
//! test does ([`root_test`](crate::common::root_test)) is turn such a process into the child,
//! so no test exists only to be a child, and none passes without checking anything.
//!
//! - `busy`: builds every path, starts the noisy neighbour and a server on each path, prints `READY <run id>`, then probes
//!   for up to 20 s without ever looking at the signal flag, as a stuck measurement would.
//! - `builder`: prints `READY <run id>` after the first path and goes on building the others
//!   and the noise, checking the flag between steps, and returns (dropping the lab) once it is
//!   raised or the work is done.
//! - `preflight`: tries to create a lab and prints `ERROR <message>` (`none` if it could).

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nearnative_host::{cpus::online_cpus, Root};
use nearnative_lab::{clean_up_on_signals, Lab, Layer, NoiseConfig};
use nearnative_probe::rtt::ServerConfig;

use crate::common::closed_loop;

const MODE_VAR: &str = "NNLAB_CHILD_MODE";
const RUN_DIR_VAR: &str = "NNLAB_RUN_DIR";

/// The command that runs the calling test again, as a child in `mode` with its lab in
/// `run_dir`. Call it from the test's own thread, whose name is the test's.
pub fn child_command(mode: &str, run_dir: &Path) -> Command {
    let current = std::thread::current();
    let test = current.name().expect("called from the test's own thread");
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", test, "--include-ignored", "--nocapture"])
        .env(MODE_VAR, mode)
        .env(RUN_DIR_VAR, run_dir);
    command
}

/// In a process started by [`child_command`], plays the child's part and exits; anywhere
/// else it does nothing.
pub fn run_if_child() {
    if let (Ok(mode), Some(run_dir)) = (std::env::var(MODE_VAR), std::env::var_os(RUN_DIR_VAR)) {
        play(&mode, Path::new(&run_dir));
        std::process::exit(0);
    }
}

fn play(mode: &str, run_dir: &Path) {
    if mode == "preflight" {
        let outcome = Lab::create(run_dir);
        println!(
            "ERROR {}",
            outcome.err().map_or("none".into(), |e| e.to_string())
        );
        return;
    }
    let stop = clean_up_on_signals().unwrap();
    let mut lab = Lab::create(run_dir).unwrap();
    let id = lab.tag().id();
    let ready = || {
        println!("READY {id}");
        std::io::stdout().flush().unwrap();
    };
    if mode == "busy" {
        let paths: Vec<_> = Layer::ALL.iter().map(|&l| lab.build(l).unwrap()).collect();
        let cpus = online_cpus(&Root::default()).unwrap();
        let noise = lab.start_noise(&NoiseConfig::new(cpus, Duration::from_secs(30)));
        let servers: Vec<_> = paths
            .iter()
            .map(|p| {
                p.bind_server(0, ServerConfig::new("0.0.0.0:0"))
                    .unwrap()
                    .spawn()
                    .unwrap()
            })
            .collect();
        noise.as_ref().unwrap();
        ready();
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            for (path, server) in paths.iter().zip(&servers) {
                let _ = path.run_client(closed_loop(server.local_addr().to_string(), 200));
            }
        }
        return;
    }
    lab.build(Layer::Loopback).unwrap();
    ready();
    for layer in [Layer::Veth, Layer::Bridge, Layer::Tap] {
        if stop.load(Ordering::Relaxed) || lab.build(layer).is_err() {
            return;
        }
    }
    let cpus = online_cpus(&Root::default()).unwrap();
    let noise = lab.start_noise(&NoiseConfig::new(cpus, Duration::from_secs(10)));
    while !stop.load(Ordering::Relaxed) && noise.is_ok() {
        std::thread::sleep(Duration::from_millis(10));
    }
}
