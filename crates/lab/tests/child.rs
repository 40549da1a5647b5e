//! The child process of the cleanup tests: this test binary run again with
//! `NNLAB_CHILD_MODE` set, so a real process can be interrupted or killed mid-run.
//!
//! - `busy`: builds every path, starts the noisy neighbour and a server on each path, prints `READY <run id>`, then probes
//!   for up to 20 s without ever looking at the signal flag, as a stuck measurement would.
//! - `builder`: prints `READY <run id>` after the first path and goes on building the others
//!   and the noise, checking the flag between steps, and returns (dropping the lab) once it is
//!   raised or the work is done.
//! - `preflight`: tries to create a lab and prints `ERROR <message>` (`none` if it could).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nearnative_host::{cpus::online_cpus, Root};
use nearnative_lab::{clean_up_on_signals, Lab, Layer, NoiseConfig};
use nearnative_probe::rtt::ServerConfig;

use crate::common::closed_loop;

pub const MODE_VAR: &str = "NNLAB_CHILD_MODE";
pub const RUN_DIR_VAR: &str = "NNLAB_RUN_DIR";
/// The name the parent gives `--exact`.
pub const CHILD_TEST: &str = "child::lab_child_process";

#[test]
#[ignore = "run as a child process by the cleanup tests"]
fn lab_child_process() {
    let (Ok(mode), Some(run_dir)) = (std::env::var(MODE_VAR), std::env::var_os(RUN_DIR_VAR)) else {
        return;
    };
    if mode == "preflight" {
        let outcome = Lab::create(&PathBuf::from(run_dir));
        println!(
            "ERROR {}",
            outcome.err().map_or("none".into(), |e| e.to_string())
        );
        return;
    }
    let stop = clean_up_on_signals().unwrap();
    let mut lab = Lab::create(&PathBuf::from(run_dir)).unwrap();
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
