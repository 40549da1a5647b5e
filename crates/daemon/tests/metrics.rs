//! The metrics: the exposition parses as Prometheus text and carries the status's values,
//! the responder answers over a real socket, and the interference sampler counts exactly
//! on furnished `/proc` files (and sanely on the live one).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nearnative_daemon::metrics::{parse_addr, serve, InterferenceSampler, Metrics, CONTENT_TYPE};
use nearnative_daemon::status::{
    Counters, DaemonStatus, Interference, Source, WorkloadState, WorkloadStatus,
};
use nearnative_host::{CpuSet, Root};
use nearnative_testkit::prometheus::{parse_exposition, value, workload_values, Sample};

// ---- the exposition ----

fn workload(
    key: &str,
    source: Source,
    state: WorkloadState,
    cpus: &[u32],
    interference: Option<Interference>,
) -> WorkloadStatus {
    WorkloadStatus {
        workload: key.to_owned(),
        target: key.to_owned(),
        source,
        state,
        exclusive_cpus: CpuSet::from_ids(cpus.iter().copied()),
        io_cpus: CpuSet::new(),
        interference,
    }
}

fn two_workloads() -> DaemonStatus {
    DaemonStatus {
        pid: 4242,
        workloads: vec![
            workload(
                "vm:web1",
                Source::Policy {
                    file: PathBuf::from("/etc/nearnative/workloads.d/web.toml"),
                    line: 3,
                },
                WorkloadState::Applied,
                &[2, 3, 4, 5],
                Some(Interference {
                    irqs: 17,
                    foreign_runtime_ns: 1_500_000_000,
                    preemptions: 9,
                }),
            ),
            workload(
                "cgroup:/pods/\"odd\"",
                Source::Cli,
                WorkloadState::Drifted {
                    knobs: vec!["affinity of thread 4001".to_owned()],
                },
                &[6],
                Some(Interference::default()),
            ),
        ],
        free_cores_by_node: BTreeMap::from([(0, 3), (1, 8)]),
        policy_errors: vec!["web.toml:9: unknown key".to_owned()],
        counters: Counters {
            applies: 5,
            reverts: 3,
            refusals: 2,
            drift_repairs: 4,
            drift_reports: 1,
        },
        ..DaemonStatus::default()
    }
}

#[test]
fn the_exposition_parses_and_carries_the_status_values() {
    let metrics = Metrics::new();
    metrics.update(&two_workloads());
    metrics.observe_apply(0.004);
    metrics.observe_apply(0.3);
    let samples = parse_exposition(&metrics.encode());

    for (state, count) in [
        ("applied", 1.0),
        ("refused", 0.0),
        ("waiting_for_cores", 0.0),
        ("drifted", 1.0),
        ("failed", 0.0),
    ] {
        let got = value(&samples, "nearnative_workloads", &[("state", state)]);
        assert_eq!(got, count, "workloads {state}");
    }
    assert_eq!(
        value(
            &samples,
            "nearnative_free_exclusive_cores",
            &[("node", "0")]
        ),
        3.0
    );
    assert_eq!(
        value(
            &samples,
            "nearnative_free_exclusive_cores",
            &[("node", "1")]
        ),
        8.0
    );
    for (name, expected) in [
        ("nearnative_applies_total", 5.0),
        ("nearnative_reverts_total", 3.0),
        ("nearnative_refusals_total", 2.0),
        ("nearnative_drift_repairs_total", 4.0),
        ("nearnative_drift_reports_total", 1.0),
        ("nearnative_policy_errors", 1.0),
        ("nearnative_apply_duration_seconds_count", 2.0),
    ] {
        assert_eq!(value(&samples, name, &[]), expected, "{name}");
    }
    assert!((value(&samples, "nearnative_apply_duration_seconds_sum", &[]) - 0.304).abs() < 1e-9);
    let bucket = |le| {
        value(
            &samples,
            "nearnative_apply_duration_seconds_bucket",
            &[("le", le)],
        )
    };
    assert_eq!(
        (bucket("0.001"), bucket("0.005"), bucket("0.5")),
        (0.0, 1.0, 2.0)
    );

    let odd = "cgroup:/pods/\"odd\"";
    let info = |key| {
        let found: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.name == "nearnative_workload_info" && s.labels["workload"] == key)
            .collect();
        assert_eq!(found.len(), 1, "{key}");
        assert_eq!(found[0].value, 1.0);
        found[0].labels.clone()
    };
    let web = info("vm:web1");
    assert_eq!(
        (
            web["target"].as_str(),
            web["source"].as_str(),
            web["state"].as_str()
        ),
        ("vm:web1", "policy", "applied")
    );
    let cli = info(odd);
    assert_eq!(
        (
            cli["target"].as_str(),
            cli["source"].as_str(),
            cli["state"].as_str()
        ),
        (odd, "cli", "drifted")
    );
    let per_workload = [
        ("nearnative_workload_exclusive_cpus", 4.0, 1.0),
        ("nearnative_interference_irqs_total", 17.0, 0.0),
        (
            "nearnative_interference_foreign_runtime_seconds_total",
            1.5,
            0.0,
        ),
        ("nearnative_interference_preemptions_total", 9.0, 0.0),
    ];
    for (name, web1, other) in per_workload {
        let expected = BTreeMap::from([("vm:web1".to_owned(), web1), (odd.to_owned(), other)]);
        assert_eq!(workload_values(&samples, name), expected, "{name}");
    }
}

#[test]
fn a_workload_removed_from_the_status_disappears_from_the_output() {
    let metrics = Metrics::new();
    let mut status = two_workloads();
    metrics.update(&status);
    status.workloads.retain(|w| w.workload != "vm:web1");
    status.workloads[0].interference = None;
    metrics.update(&status);
    let text = metrics.encode();
    assert!(!text.contains("vm:web1"), "{text}");
    let samples = parse_exposition(&text);
    assert_eq!(
        value(&samples, "nearnative_workloads", &[("state", "applied")]),
        0.0
    );
    assert_eq!(
        workload_values(&samples, "nearnative_workload_exclusive_cpus").len(),
        1
    );
    assert!(
        !text.contains("nearnative_interference_"),
        "no interference before the first sample: {text}"
    );
}

#[test]
fn an_empty_status_still_parses_with_every_state_at_zero() {
    let metrics = Metrics::new();
    let samples = parse_exposition(&metrics.encode());
    for state in [
        "applied",
        "refused",
        "waiting_for_cores",
        "drifted",
        "failed",
    ] {
        assert_eq!(
            value(&samples, "nearnative_workloads", &[("state", state)]),
            0.0
        );
    }
    assert_eq!(
        value(&samples, "nearnative_apply_duration_seconds_count", &[]),
        0.0
    );
}

// ---- the responder ----

/// Sends `request` raw and returns the status line, the headers (lower-cased names) and
/// the body.
fn exchange(addr: SocketAddr, request: &[u8]) -> (String, BTreeMap<String, String>, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect(&response);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().to_owned();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(": ").expect(l);
            (k.to_ascii_lowercase(), v.to_owned())
        })
        .collect();
    (status, headers, body.to_owned())
}

fn get(addr: SocketAddr, path: &str) -> (String, BTreeMap<String, String>, String) {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
    )
}

#[test]
fn serve_answers_get_metrics_and_refuses_the_rest() {
    let metrics = Arc::new(Metrics::new());
    metrics.update(&two_workloads());
    let server = serve("127.0.0.1:0".parse().unwrap(), Arc::clone(&metrics)).unwrap();
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);

    let (status, headers, body) = get(addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(headers["content-type"], CONTENT_TYPE);
    assert_eq!(headers["content-length"], body.len().to_string());
    let samples = parse_exposition(&body);
    assert_eq!(
        value(&samples, "nearnative_refusals_total", &[]),
        2.0,
        "the served values are the status's"
    );

    assert!(get(addr, "/x").0.starts_with("HTTP/1.1 404"));
    let (status, headers, _) = exchange(addr, b"POST /metrics HTTP/1.1\r\n\r\n");
    assert!(status.starts_with("HTTP/1.1 405"), "{status}");
    assert_eq!(headers["allow"], "GET");
    assert!(exchange(addr, b"nonsense\r\n\r\n")
        .0
        .starts_with("HTTP/1.1 400"));
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    assert!(exchange(addr, huge.as_bytes())
        .0
        .starts_with("HTTP/1.1 431"));
}

#[test]
fn a_silent_client_does_not_hold_the_responder() {
    let server = serve("127.0.0.1:0".parse().unwrap(), Arc::new(Metrics::new())).unwrap();
    let addr = server.local_addr();
    let mut silent = TcpStream::connect(addr).unwrap();
    silent.write_all(b"GET /metr").unwrap();
    let started = Instant::now();
    let (status, _, _) = get(addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after the silent client's deadline: {:?}",
        started.elapsed()
    );
}

#[test]
fn dropping_the_server_stops_it_and_frees_the_port() {
    let server = serve("127.0.0.1:0".parse().unwrap(), Arc::new(Metrics::new())).unwrap();
    let addr = server.local_addr();
    let started = Instant::now();
    drop(server);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "drop waited too long"
    );
    assert!(TcpStream::connect(addr).is_err(), "nobody listens any more");
    serve(addr, Arc::new(Metrics::new())).expect("the port can be bound again");
}

#[test]
fn parse_addr_takes_loopback_or_off_and_refuses_the_rest() {
    assert_eq!(
        parse_addr("127.0.0.1:9464").unwrap(),
        Some("127.0.0.1:9464".parse().unwrap())
    );
    assert_eq!(parse_addr("off").unwrap(), None);
    for text in ["0.0.0.0:9464", "garbage", "10.0.0.1:9464", ""] {
        let err = parse_addr(text).unwrap_err();
        assert!(err.contains(text) && !err.contains('\n'), "{text}: {err}");
    }
    let err = serve("0.0.0.0:0".parse().unwrap(), Arc::new(Metrics::new())).unwrap_err();
    assert!(err.to_string().contains("not a loopback address"), "{err}");
}

// ---- the interference sampler ----

fn write(root: &Path, path: &str, text: &str) {
    let real = Root::new(root).path(path);
    std::fs::create_dir_all(real.parent().unwrap()).unwrap();
    std::fs::write(real, text).unwrap();
}

/// `/proc/interrupts` with device lines 24 and 25 and the timer row, columns CPU0..CPU3.
fn interrupts(line24: [u64; 4], line25: [u64; 4], timer: [u64; 4]) -> String {
    let row = |c: [u64; 4]| c.map(|n| format!("{n:>10}")).join(" ");
    format!(
        "           CPU0       CPU1       CPU2       CPU3\n \
         24: {}  IO-APIC   5-edge      virtio0\n \
         25: {}  PCI-MSI 1-edge      eth0-rx\n\
         LOC: {}  Local timer interrupts\n",
        row(line24),
        row(line25),
        row(timer)
    )
}

fn schedstat(run_ns: [u64; 4]) -> String {
    let mut text = "version 15\ntimestamp 4297299139\n".to_owned();
    for (cpu, ns) in run_ns.iter().enumerate() {
        text.push_str(&format!("cpu{cpu} 0 0 10 5 7 3 {ns} 1000 20\n"));
        text.push_str(
            "domain0 f 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
        );
    }
    text
}

fn thread(root: &Path, pid: u32, tid: u32, run_ns: u64, nonvoluntary: u64) {
    let dir = format!("/proc/{pid}/task/{tid}");
    write(
        root,
        &format!("{dir}/schedstat"),
        &format!("{run_ns} 500 40\n"),
    );
    write(
        root,
        &format!("{dir}/status"),
        &format!(
            "Name:\tCPU 0/KVM\nTgid:\t{pid}\nPid:\t{tid}\nvoluntary_ctxt_switches:\t1000\n\
             nonvoluntary_ctxt_switches:\t{nonvoluntary}\n"
        ),
    );
}

#[test]
fn the_sampler_gives_the_exact_deltas_since_the_first_sample() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let exclusive = CpuSet::from_ids([2, 3]);
    let own = [(4000, 4001), (4000, 4002)];
    write(
        root,
        "/proc/interrupts",
        &interrupts([9, 9, 100, 200], [5, 5, 5, 5], [1, 1, 1, 1]),
    );
    write(
        root,
        "/proc/schedstat",
        &schedstat([7, 7, 1_000_000, 2_000_000]),
    );
    thread(root, 4000, 4001, 500_000, 3);
    thread(root, 4000, 4002, 700_000, 10);
    let mut sampler = InterferenceSampler::new(Root::new(root));
    let first = sampler.sample("vm:web1", &exclusive, &own).unwrap();
    assert_eq!(
        first,
        Interference::default(),
        "the first sample is the baseline"
    );

    // IRQs: line 24 +7 on CPU2 and +1 on CPU3, line 25 +2 on CPU3; CPU0 and the timer row
    // do not count. Run time: +40 ms on CPU2 and +30 ms on CPU3, of which the own threads
    // ran 20 ms and 15 ms. Preemptions: +2 and +5.
    write(
        root,
        "/proc/interrupts",
        &interrupts([90, 9, 107, 201], [5, 5, 5, 7], [99, 99, 99, 99]),
    );
    write(
        root,
        "/proc/schedstat",
        &schedstat([9_000_000, 7, 41_000_000, 32_000_000]),
    );
    thread(root, 4000, 4001, 20_500_000, 5);
    thread(root, 4000, 4002, 15_700_000, 15);
    let second = sampler.sample("vm:web1", &exclusive, &own).unwrap();
    assert_eq!(
        second,
        Interference {
            irqs: 10,
            foreign_runtime_ns: 35_000_000,
            preemptions: 7,
        }
    );

    // Thread 4002 exits and 4003 is born with 4 ms run time and 6 preemptions: its run time
    // is the workload's own, its preemptions predate the watch. CPU run time +10 ms.
    std::fs::remove_dir_all(Root::new(root).path("/proc/4000/task/4002")).unwrap();
    thread(root, 4000, 4003, 4_000_000, 6);
    thread(root, 4000, 4001, 22_500_000, 6);
    write(
        root,
        "/proc/schedstat",
        &schedstat([9_000_000, 7, 46_000_000, 37_000_000]),
    );
    let own = [(4000, 4001), (4000, 4002), (4000, 4003)];
    let third = sampler.sample("vm:web1", &exclusive, &own).unwrap();
    assert_eq!(
        third,
        Interference {
            irqs: 10,
            foreign_runtime_ns: 35_000_000 + 10_000_000 - 2_000_000 - 4_000_000,
            preemptions: 8,
        }
    );

    // Another workload on other CPUs starts from its own baseline; a forgotten one restarts.
    let other = sampler
        .sample("pid:77", &CpuSet::from_ids([1]), &[])
        .unwrap();
    assert_eq!(other, Interference::default());
    sampler.forget("vm:web1");
    let again = sampler.sample("vm:web1", &exclusive, &own).unwrap();
    assert_eq!(again, Interference::default(), "forgotten: a new baseline");
}

#[test]
fn foreign_run_time_never_goes_back() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let exclusive = CpuSet::from_ids([1]);
    let own = [(50, 50)];
    write(
        root,
        "/proc/interrupts",
        &interrupts([0; 4], [0; 4], [0; 4]),
    );
    let step = |cpu_ns: u64, own_ns: u64| {
        write(root, "/proc/schedstat", &schedstat([0, cpu_ns, 0, 0]));
        thread(root, 50, 50, own_ns, 0);
    };
    let mut sampler = InterferenceSampler::new(Root::new(root));
    step(0, 0);
    sampler.sample("w", &exclusive, &own).unwrap();
    // Another thread ran 5 ms; then the own thread kept running and was not yet credited
    // to the CPU (the difference dips); then it left the CPU and was.
    let foreign = |cpu_ns, own_ns, sampler: &mut InterferenceSampler| {
        step(cpu_ns, own_ns);
        sampler
            .sample("w", &exclusive, &own)
            .unwrap()
            .foreign_runtime_ns
    };
    assert_eq!(foreign(5_000_000, 0, &mut sampler), 5_000_000);
    assert_eq!(
        foreign(5_000_000, 30_000_000, &mut sampler),
        5_000_000,
        "held"
    );
    assert_eq!(foreign(36_000_000, 30_000_000, &mut sampler), 6_000_000);
}

#[test]
fn without_proc_schedstat_the_run_time_comes_from_proc_stat() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let tick_ns = nearnative_verify::cpu_busy::tick_ns();
    let stat = |busy_ticks: u64| {
        // user nice system idle iowait irq softirq steal guest guest_nice
        format!(
            "cpu  0 0 0 0 0 0 0 0 0 0\ncpu0 1 0 1 50 0 0 0 0 0 0\n\
             cpu1 {busy_ticks} 0 2 50 9 1 1 4 0 0\nintr 0\n"
        )
    };
    write(
        root,
        "/proc/interrupts",
        &interrupts([0; 4], [0; 4], [0; 4]),
    );
    write(root, "/proc/stat", &stat(10));
    thread(root, 60, 61, 0, 0);
    let exclusive = CpuSet::from_ids([1]);
    let mut sampler = InterferenceSampler::new(Root::new(root));
    sampler.sample("w", &exclusive, &[(60, 61)]).unwrap();
    write(root, "/proc/stat", &stat(17));
    thread(root, 60, 61, 2 * tick_ns, 0);
    let got = sampler.sample("w", &exclusive, &[(60, 61)]).unwrap();
    assert_eq!(
        got.foreign_runtime_ns,
        5 * tick_ns,
        "7 busy ticks, 2 of them own"
    );
}

#[test]
fn unreadable_host_files_fail_the_sample_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut sampler = InterferenceSampler::new(Root::new(root));
    let exclusive = CpuSet::from_ids([1]);
    let err = sampler
        .sample("w", &exclusive, &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("proc/interrupts") && err.contains("not found"),
        "{err}"
    );
    write(
        root,
        "/proc/interrupts",
        &interrupts([0; 4], [0; 4], [0; 4]),
    );
    let err = sampler
        .sample("w", &exclusive, &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("proc/stat"), "neither run time source: {err}");
    write(root, "/proc/schedstat", &schedstat([0; 4]));
    write(root, "/proc/9/task/9/schedstat", "garbage\n");
    write(
        root,
        "/proc/9/task/9/status",
        "nonvoluntary_ctxt_switches:\t1\n",
    );
    let err = sampler
        .sample("w", &exclusive, &[(9, 9)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("thread 9") && err.contains("garbage"), "{err}");
    assert!(!err.contains('\n'), "one line: {err}");
    let exited = sampler.sample("w", &exclusive, &[(10, 10)]);
    assert_eq!(
        exited.unwrap(),
        Interference::default(),
        "an exited thread is skipped"
    );
}

/// On the live `/proc` of this process (no root needed): the test's own thread, pinned to
/// one CPU, spins between two samples. Its run time must be subtracted: the foreign run
/// time plus the thread's own cannot exceed the wall time (with two ticks of slack for the
/// coarser of the run time sources).
#[test]
fn the_sampler_reads_the_live_proc_of_its_own_thread() {
    let root = Root::new("/");
    let online = nearnative_host::cpus::online_cpus(&root).unwrap();
    let cpu = online.iter().last().unwrap();
    let exclusive = CpuSet::from_ids([cpu]);
    nearnative_sys::pin::pin_current_thread_to(&exclusive).unwrap();
    let pid = std::process::id();
    let tid = u32::try_from(nix::unistd::gettid().as_raw()).unwrap();
    let own_run_ns = || {
        let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat")).unwrap();
        text.split_whitespace()
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let nonvoluntary = || {
        let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap();
        nearnative_host::tasks::parse_context_switches(&text)
            .unwrap()
            .nonvoluntary
    };
    let mut sampler = InterferenceSampler::new(root);
    let (started, run_before, switches_before) = (Instant::now(), own_run_ns(), nonvoluntary());
    let first = sampler.sample("self", &exclusive, &[(pid, tid)]).unwrap();
    assert_eq!(first, Interference::default());
    let mut spins = 0u64;
    while started.elapsed() < Duration::from_millis(400) {
        spins = std::hint::black_box(spins.wrapping_add(1));
    }
    let second = sampler.sample("self", &exclusive, &[(pid, tid)]).unwrap();
    let (elapsed, own, switches) = (
        started.elapsed(),
        own_run_ns() - run_before,
        nonvoluntary() - switches_before,
    );
    let slack_ns = 2 * nearnative_verify::cpu_busy::tick_ns() + 10_000_000;
    let elapsed_ns = u64::try_from(elapsed.as_nanos()).unwrap();
    assert!(own > 0, "the thread ran");
    assert!(
        second.foreign_runtime_ns + own <= elapsed_ns + slack_ns,
        "own run time not subtracted? foreign {} ns + own {own} ns > wall {elapsed_ns} ns",
        second.foreign_runtime_ns
    );
    assert!(
        second.preemptions <= switches,
        "preemptions {} > the thread's {switches}",
        second.preemptions
    );
}
