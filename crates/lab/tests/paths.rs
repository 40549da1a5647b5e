//! Each path carries a closed-loop probe, its server is reachable only inside the path, and
//! dropping the lab restores the host's namespaces and interfaces.

use std::net::Ipv4Addr;
use std::time::Duration;

use nearnative_host::{cpus::online_cpus, CpuSet, Root};
use nearnative_lab::ip::ip;
use nearnative_lab::netns::run_in;
use nearnative_lab::{Lab, Layer, NetPath};
use nearnative_probe::rtt::{
    run_client, ClientConfig, RunLength, ServerConfig, Transport, SERVER_THREAD_NAME,
};

use crate::common::{closed_loop, net_state, root_test, Restored};

const ROUND_TRIPS: u64 = 2000;

#[test]
#[ignore = "needs root: network namespaces"]
fn every_path_carries_a_probe_and_leaves_nothing_behind_needs_root() {
    let _serial = root_test();
    let before = net_state();
    let run_dir = tempfile::tempdir().unwrap();
    let mut lab = Lab::create(run_dir.path()).unwrap();
    let id = lab.tag().id();
    let paths: Vec<NetPath> = Layer::ALL.iter().map(|&l| lab.build(l).unwrap()).collect();
    assert!(!net_state().of_run(&id).is_empty(), "namespaces were built");
    let mut p50s = Vec::new();
    for path in &paths {
        p50s.push((path.layer.name(), probe_across(path)));
        probe_over_tcp(path);
        for other in paths.iter().filter(|o| o.layer != path.layer) {
            if let Some(netns) = &other.client_netns {
                assert_unreachable(path, netns);
            }
        }
    }
    assert_host_has_no_lab_address();
    let loopback = p50s[0].1 as f64;
    for (layer, p50) in &p50s {
        eprintln!(
            "{layer}: p50 {p50} ns, {:.2} x loopback",
            *p50 as f64 / loopback
        );
    }
    drop(lab);
    net_state().assert_restored(&before);
    assert!(net_state().of_run(&id).is_empty());
    let left: Vec<_> = std::fs::read_dir(run_dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["lab.lock"], "registry removed, the lab lock kept");
}

/// Runs the probe with the server pinned to the last online CPU; returns the p50 RTT.
fn probe_across(path: &NetPath) -> u64 {
    let cpu = online_cpus(&Root::default())
        .unwrap()
        .iter()
        .last()
        .unwrap();
    let mut server_config = ServerConfig::new("0.0.0.0:0");
    server_config.cpus = Some(CpuSet::from_ids([cpu]));
    let server = path.bind_server(0, server_config).unwrap().spawn().unwrap();
    assert_eq!(server.local_addr().ip(), path.server_ip);
    let report = path
        .run_client(closed_loop(server.local_addr().to_string(), ROUND_TRIPS))
        .unwrap();
    let layer = path.layer.name();
    assert_eq!(
        server_thread_cpus(),
        vec![cpu.to_string()],
        "{layer}: server pinned"
    );
    let stats = server.stop().unwrap();
    assert_eq!(report.count + report.lost, ROUND_TRIPS, "{layer}");
    assert!(
        report.lost <= ROUND_TRIPS / 100,
        "{layer}: lost {}",
        report.lost
    );
    assert!(stats.answered >= report.count, "{layer}: {stats:?}");
    assert!(report.rtt_ns.p50 > 0, "{layer}");
    report.rtt_ns.p50
}

/// A short TCP ping-pong through [`NetPath::probe`] crosses the path too.
fn probe_over_tcp(path: &NetPath) {
    let mut server = ServerConfig::new("");
    server.transport = Transport::Tcp;
    let mut client = closed_loop(String::new(), 200);
    client.transport = Transport::Tcp;
    let (report, stats) = path.probe(server, client).unwrap();
    let layer = path.layer.name();
    assert_eq!((report.count, report.lost), (200, 0), "{layer} over TCP");
    assert_eq!(stats.accepted, 1, "{layer} over TCP");
}

/// `Cpus_allowed_list` of every running probe server thread of this process.
fn server_thread_cpus() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .map(|task| task.unwrap().path())
        .filter(|task| {
            std::fs::read_to_string(task.join("comm")).is_ok_and(|c| c.trim() == SERVER_THREAD_NAME)
        })
        .filter_map(|task| {
            let status = std::fs::read_to_string(task.join("status")).ok()?;
            let line = status
                .lines()
                .find(|l| l.starts_with("Cpus_allowed_list:"))?;
            Some(line.split_whitespace().nth(1)?.to_owned())
        })
        .collect()
}

/// A server of `path`, bound again, gets nothing from the lab namespace `netns`, which has no
/// route but its own path's (so a datagram sent there never leaves the lab).
fn assert_unreachable(path: &NetPath, netns: &str) {
    let server = path
        .bind_server(0, ServerConfig::new("0.0.0.0:0"))
        .unwrap()
        .spawn()
        .unwrap();
    let target = server.local_addr().to_string();
    let mut config = ClientConfig::new(target.clone());
    config.length = RunLength::Count(3);
    config.warmup = Duration::ZERO;
    config.timeout = Duration::from_millis(50);
    let outcome = run_in(Some(netns), "nn-lab-reach", move || run_client(&config)).unwrap();
    let answered = outcome.as_ref().map(|r| r.count).unwrap_or(0);
    let stats = server.stop().unwrap();
    assert_eq!(answered, 0, "{target} answered from {netns}");
    assert_eq!(stats.received, 0, "{target} heard from {netns}");
}

/// The host namespace holds no lab address, so no lab server can be reached from it. (It is
/// not probed: the host's default route would carry such a datagram off the machine.)
fn assert_host_has_no_lab_address() {
    let addrs = ip(&["-o", "-4", "addr", "show"]).unwrap();
    for line in addrs.lines() {
        let addr = line.split_whitespace().nth(3).unwrap_or("");
        assert!(
            !in_benchmark_range(addr),
            "host holds a lab address: {line}"
        );
    }
    assert!(in_benchmark_range("198.19.255.1/30"));
    assert!(!in_benchmark_range("198.20.0.1/24"));
}

/// True for an address in 198.18.0.0/15.
fn in_benchmark_range(cidr: &str) -> bool {
    let ip: Option<Ipv4Addr> = cidr.split('/').next().and_then(|a| a.parse().ok());
    ip.is_some_and(|ip| u32::from(ip) >> 17 == u32::from(Ipv4Addr::new(198, 18, 0, 0)) >> 17)
}
