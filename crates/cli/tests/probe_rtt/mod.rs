//! `nearnative probe rtt` through the built binary: bad input fails in one line with exit 2,
//! serve and client agree over loopback, and a flood of garbage neither crashes the server nor
//! grows its memory.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use nearnative_host::cpus::online_cpus;
use nearnative_host::Root;
use nearnative_probe::rtt::wire::{init_request, reply_sequence, stamp, MAX_MESSAGE_LEN};

const BIN: &str = env!("CARGO_BIN_EXE_nearnative");

fn nearnative(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// A `probe rtt serve` child, killed if a test fails before stopping it.
struct ServeChild {
    child: Option<Child>,
    addr: String,
}

impl ServeChild {
    fn start(extra: &[&str]) -> ServeChild {
        ServeChild::start_from(Command::new(BIN), extra)
    }

    /// A server allowed only `descriptors` open files (`ulimit -n`).
    fn start_with_fd_limit(descriptors: u32, extra: &[&str]) -> ServeChild {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {descriptors} && exec \"$0\" \"$@\""))
            .arg(BIN);
        ServeChild::start_from(command, extra)
    }

    fn start_from(mut command: Command, extra: &[&str]) -> ServeChild {
        let mut child = command
            .args(["probe", "rtt", "serve", "--bind", "127.0.0.1:0", "--json"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "nearnative: serving udp on 127.0.0.1:PORT (wait ..."
        let addr = line
            .split_whitespace()
            .nth(4)
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        ServeChild {
            child: Some(child),
            addr,
        }
    }

    fn rss_kib(&self) -> u64 {
        let pid = self.child.as_ref().unwrap().id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// SIGTERM, then the server's final counts from its `--json` output.
    fn stop(mut self) -> serde_json::Value {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        assert!(child.wait().unwrap().success(), "serve exits 0 on SIGTERM");
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out:?}"))
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn bad_input_fails_in_one_line_naming_the_problem() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let online = online_cpus(&Root::default()).unwrap();
    let offline = (online.iter().last().unwrap() + 1).to_string();
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "port in use",
            vec!["serve", "--bind", &taken],
            "Address already in use",
        ),
        (
            "unknown host",
            vec!["nosuchhost.invalid:7600"],
            "cannot resolve nosuchhost.invalid:7600",
        ),
        ("no port", vec!["127.0.0.1"], "expected HOST:PORT"),
        (
            "bad CPU list",
            vec!["127.0.0.1:7600", "--cpu", "0-x"],
            "CPU list \"0-x\"",
        ),
        (
            "offline CPU on the client",
            vec!["127.0.0.1:7600", "--cpu", &offline],
            "is not online",
        ),
        (
            "offline CPU on the server",
            vec!["serve", "--bind", "127.0.0.1:0", "--cpu", &offline],
            "is not online",
        ),
        (
            "rate of zero",
            vec!["127.0.0.1:7600", "--rate", "0"],
            "rate 0/s",
        ),
        (
            "payload too small",
            vec!["127.0.0.1:7600", "--payload", "8"],
            "payload 8 bytes is too small",
        ),
        (
            "payload too large",
            vec!["127.0.0.1:7600", "--payload", "70000"],
            "payload 70000 bytes is too large",
        ),
        (
            "demo payload too small",
            vec!["demo", "--payload", "4"],
            "payload 4 bytes is too small",
        ),
    ];
    for (what, args, expected) in cases {
        let out = nearnative(&[&["probe", "rtt"], args.as_slice()].concat());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{what}: {stderr}");
        assert!(stderr.contains(expected), "{what}: {stderr}");
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    }
}

#[test]
fn every_rtt_command_has_help() {
    for args in [
        vec!["probe", "rtt", "--help"],
        vec!["probe", "rtt", "serve", "--help"],
        vec!["probe", "rtt", "demo", "--help"],
    ] {
        let out = nearnative(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}");
        assert!(stdout.contains("--json"), "{args:?}: {stdout}");
    }
}

#[test]
fn client_and_server_processes_agree_over_udp_and_tcp() {
    let dir = tempfile::tempdir().unwrap();
    for (what, transport, rate) in [
        ("udp closed loop", "--udp", None),
        ("tcp closed loop", "--tcp", None),
        ("udp fixed rate", "--udp", Some("2000/s")),
    ] {
        let server = ServeChild::start(&[transport]);
        let csv = dir.path().join("spectrum.csv");
        let mut args = vec![
            "probe",
            "rtt",
            &server.addr,
            transport,
            "--count",
            "300",
            "--warmup",
            "10ms",
            "--json",
            "--histogram-out",
            csv.to_str().unwrap(),
        ];
        if let Some(rate) = rate {
            args.extend(["--rate", rate]);
        }
        let out = nearnative(&args);
        assert!(out.status.success(), "{what}: {out:?}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let (sent, count, lost) = (&report["sent"], &report["count"], &report["lost"]);
        assert_eq!(sent, 300, "{what}");
        assert_eq!(
            count.as_u64().unwrap() + lost.as_u64().unwrap(),
            300,
            "{what}"
        );
        assert!(report["rtt_ns"]["p99_999"].as_u64().unwrap() > 0, "{what}");
        assert_eq!(report["service_ns"].is_object(), rate.is_some(), "{what}");
        let spectrum = std::fs::read_to_string(&csv).unwrap();
        assert!(spectrum.starts_with("series,value_ns,percentile"), "{what}");

        let stats = server.stop();
        let answered = stats["answered"].as_u64().unwrap();
        assert!(answered > count.as_u64().unwrap(), "{what}: {stats}");
        assert_eq!(
            stats["received"], answered,
            "{what}: unanswered requests: {stats}"
        );
        assert_eq!(stats["malformed"]["foreign"], 0, "{what}");
    }
}

#[test]
fn the_readme_demo_prints_the_latency_table() {
    let out = nearnative(&["probe", "rtt", "demo", "--duration", "200ms"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("p99.999"), "{stdout}");
    for scenario in [
        "udp ping-pong, blocking",
        "tcp ping-pong, blocking",
        "fixed rate",
    ] {
        assert!(stdout.contains(scenario), "{scenario} in {stdout}");
    }
}

/// A small deterministic generator, so a failure can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Datagram `i` of the flood: random, truncated, oversized or invalid, never well-formed.
fn garbage(rng: &mut XorShift, i: usize, good: &[u8]) -> Vec<u8> {
    if i % 10_000 == 0 {
        return rng.bytes(MAX_MESSAGE_LEN);
    }
    let mut message = good.to_vec();
    match i % 4 {
        0 => {
            let len = rng.below(1500);
            rng.bytes(len)
        }
        1 => message[..rng.below(good.len() as u64)].to_vec(),
        2 => {
            let extra = 1 + rng.below(3000);
            message.extend(rng.bytes(extra));
            message
        }
        _ => {
            // Version, kind or flags: any other value is invalid.
            let at = [4, 5, 7][rng.below(3)];
            message[at] = message[at].wrapping_add(1 + rng.below(200) as u8);
            message
        }
    }
}

#[test]
fn a_flood_of_garbage_neither_crashes_the_server_nor_grows_it() {
    const FLOOD: usize = 100_000;
    /// Datagrams between two checked exchanges: few enough never to overflow the server's
    /// receive buffer, so every one is counted.
    const BATCH: usize = 50;
    let server = ServeChild::start(&[]);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.connect(&server.addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut good = vec![0u8; 64];
    init_request(&mut good, 7);
    let mut reply = vec![0u8; 128];
    let mut sequence = 0;
    let mut exchange = |good: &mut Vec<u8>| {
        sequence += 1;
        stamp(good, sequence, 0);
        client.send(good).unwrap();
        let len = client.recv(&mut reply).expect("a valid probe is answered");
        assert_eq!(reply_sequence(&reply[..len], 7, 64), Some(sequence));
    };
    exchange(&mut good);
    let rss_before = server.rss_kib();

    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for i in 0..FLOOD {
        let datagram = garbage(&mut rng, i, &good);
        client.send(&datagram).unwrap();
        if i % BATCH == BATCH - 1 {
            exchange(&mut good);
        }
    }
    exchange(&mut good);
    let rss_after = server.rss_kib();
    let exchanges = sequence;

    let stats = server.stop();
    let malformed = &stats["malformed"];
    let total: u64 = ["foreign", "truncated", "oversized", "invalid"]
        .iter()
        .map(|k| malformed[k].as_u64().unwrap())
        .sum();
    assert_eq!(total, FLOOD as u64, "{stats}");
    assert!(malformed["oversized"].as_u64().unwrap() > 0, "{stats}");
    assert_eq!(stats["answered"], exchanges, "{stats}");
    assert!(
        rss_after <= rss_before + 2048,
        "server RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
}

/// Out of file descriptors, the server refuses the newcomers and keeps serving the clients it
/// has, instead of exiting on EMFILE.
#[test]
fn a_tcp_server_out_of_descriptors_refuses_newcomers_and_keeps_serving() {
    let server = ServeChild::start_with_fd_limit(12, &["--tcp"]);
    let mut first = TcpStream::connect(&server.addr).unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut message = vec![0u8; 64];
    init_request(&mut message, 7);
    let mut ask = |stream: &mut TcpStream, sequence| {
        stamp(&mut message, sequence, 0);
        stream.write_all(&message).unwrap();
        let mut reply = vec![0u8; 64];
        stream.read_exact(&mut reply).unwrap();
        reply_sequence(&reply, 7, 64)
    };
    assert_eq!(ask(&mut first, 1), Some(1));
    let crowd: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(&server.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        ask(&mut first, 2),
        Some(2),
        "the first client is still served"
    );
    drop(crowd);
    let stats = server.stop();
    let refused = stats["refused"].as_u64().unwrap();
    assert!(refused > 0, "the crowd outgrew 12 descriptors: {stats}");
}
