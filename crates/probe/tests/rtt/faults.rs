//! Lost and duplicated replies are counted, never dropped from the accounting: a fake server
//! that drops every request whose sequence ends in 3 and answers those ending in 7 twice.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nearnative_probe::rtt::wire::{check_request, mark_reply};
use nearnative_probe::rtt::{run_client, ClientConfig, RttError, RunLength, Transport};

use super::assert_consistent;

struct FakeServer {
    addr: String,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

fn sequence_of(message: &[u8]) -> u64 {
    u64::from_be_bytes(message[16..24].try_into().unwrap())
}

/// Sequence 0 is the client's handshake; 1..=100 are the measured requests.
fn start_fake_server() -> FakeServer {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let addr = socket.local_addr().unwrap().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("fake-rtt-server".into())
        .spawn(move || {
            let mut buf = [0u8; 2048];
            while !thread_stop.load(Ordering::Relaxed) {
                let Ok((len, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let message = &mut buf[..len];
                check_request(message).unwrap();
                let copies = match sequence_of(message) % 10 {
                    3 => 0,
                    7 => 2,
                    _ => 1,
                };
                mark_reply(message);
                for _ in 0..copies {
                    socket.send_to(message, peer).unwrap();
                }
            }
        })
        .unwrap();
    FakeServer { addr, stop, thread }
}

#[test]
fn drops_count_lost_and_duplicates_count_late_in_both_modes() {
    for (what, rate) in [("closed loop", None), ("fixed rate", Some(1000))] {
        let server = start_fake_server();
        let config = ClientConfig {
            warmup: Duration::ZERO,
            length: RunLength::Count(100),
            rate,
            timeout: Duration::from_millis(30),
            ..ClientConfig::new(server.addr.clone())
        };
        let report = run_client(&config).unwrap();
        server.stop.store(true, Ordering::Relaxed);
        server.thread.join().unwrap();
        assert_consistent(what, &report);
        assert_eq!(
            (report.sent, report.count, report.lost, report.late),
            (100, 90, 10, 10),
            "{what}: 3, 13, ..., 93 dropped; 7, 17, ..., 97 answered twice"
        );
        assert_eq!(report.stale, 0, "{what}");
    }
}

#[test]
fn a_missing_server_is_an_error_naming_it() {
    let free_port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    for transport in [Transport::Udp, Transport::Tcp] {
        let config = ClientConfig {
            transport,
            timeout: Duration::from_millis(200),
            ..ClientConfig::new(free_port.to_string())
        };
        let err = run_client(&config).unwrap_err();
        assert!(
            matches!(err, RttError::NoReply { .. } | RttError::Connect { .. }),
            "{transport:?}: {err}"
        );
        assert!(err.to_string().contains(&free_port.to_string()), "{err}");
    }
}
