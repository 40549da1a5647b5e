//! The server answers only well-formed requests, counts the rest by reason, and keeps its TCP
//! connections and buffers bounded.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use nearnative_probe::rtt::wire::{init_request, reply_sequence, stamp, HEADER_LEN};
use nearnative_probe::rtt::{
    MalformedCounts, Server, ServerConfig, ServerHandle, Transport, EVICTABLE_AFTER,
    MAX_CONNECTIONS, PARTIAL_TIMEOUT,
};

const SESSION: u32 = 42;

fn request(len: usize, sequence: u64) -> Vec<u8> {
    let mut message = vec![0; len];
    init_request(&mut message, SESSION);
    stamp(&mut message, sequence, 0);
    message
}

fn spawn(transport: Transport) -> ServerHandle {
    Server::bind(ServerConfig {
        transport,
        ..ServerConfig::new("127.0.0.1:0")
    })
    .unwrap()
    .spawn()
    .unwrap()
}

/// Waits until the server has received `n` messages, so counts can be compared exactly.
fn wait_received(server: &ServerHandle, n: u64) {
    let start = Instant::now();
    while server.stats().received < n {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            server.stats()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn udp_malformed_datagrams_are_counted_by_reason_and_never_answered() {
    let server = spawn(Transport::Udp);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.connect(server.local_addr()).unwrap();
    let good = request(64, 1);
    let mut reply_as_request = good.clone();
    reply_as_request[5] = 2;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("http", b"GET / HTTP/1.0\r\n\r\n".to_vec()),
        ("header cut", good[..HEADER_LEN - 1].to_vec()),
        ("body cut", good[..40].to_vec()),
        ("trailing bytes", [good.as_slice(), &[0; 9]].concat()),
        ("a reply", reply_as_request),
        (
            "biggest datagram",
            [good.as_slice(), &vec![0; 65_507 - 64]].concat(),
        ),
    ];
    for (_, datagram) in &cases {
        client.send(datagram).unwrap();
    }
    wait_received(&server, cases.len() as u64);
    let expected = MalformedCounts {
        foreign: 1,
        truncated: 3,
        oversized: 2,
        invalid: 1,
    };
    assert_eq!(server.stats().malformed, expected);
    assert_eq!(server.stats().answered, 0);

    client.send(&good).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 128];
    let len = client.recv(&mut buf).unwrap();
    assert_eq!(reply_sequence(&buf[..len], SESSION, 64), Some(1));
    let stats = server.stop().unwrap();
    assert_eq!((stats.received, stats.answered), (8, 1));
}

#[test]
fn tcp_malformed_message_closes_only_its_connection() {
    let server = spawn(Transport::Tcp);
    let mut bad = TcpStream::connect(server.local_addr()).unwrap();
    let mut good = TcpStream::connect(server.local_addr()).unwrap();
    bad.write_all(b"SSH-2.0-OpenSSH_9.2\r\n and then some more bytes")
        .unwrap();
    bad.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 256];
    // Closed without an answer: end of stream or a reset. A timeout means it was left open.
    match bad.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the malformed connection was not closed: {other:?}"),
    }

    // Two requests in one write, the second split across writes: framing holds.
    let first = request(100, 1);
    let second = request(100, 2);
    good.write_all(&[first.as_slice(), &second[..50]].concat())
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    good.write_all(&second[50..]).unwrap();
    let mut replies = vec![0u8; 200];
    good.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    good.read_exact(&mut replies).unwrap();
    assert_eq!(reply_sequence(&replies[..100], SESSION, 100), Some(1));
    assert_eq!(reply_sequence(&replies[100..], SESSION, 100), Some(2));
    let stats = server.stop().unwrap();
    assert_eq!(stats.malformed.foreign, 1);
    assert_eq!(stats.answered, 2);
}

#[test]
fn tcp_connections_beyond_the_limit_are_refused() {
    let server = spawn(Transport::Tcp);
    let extra = 5;
    let streams: Vec<TcpStream> = (0..MAX_CONNECTIONS + extra)
        .map(|_| TcpStream::connect(server.local_addr()).unwrap())
        .collect();
    let start = Instant::now();
    while server.stats().accepted + server.stats().refused < streams.len() as u64 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            server.stats()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = server.stop().unwrap();
    assert_eq!(stats.accepted, MAX_CONNECTIONS as u64);
    assert_eq!(stats.refused, extra as u64);
}

/// Waits until the server has accepted `n` connections.
fn wait_accepted(server: &ServerHandle, n: u64) {
    let start = Instant::now();
    while server.stats().accepted < n {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            server.stats()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One request on a fresh connection; the sequence number of its reply.
fn ask(server: &ServerHandle, sequence: u64) -> std::io::Result<Option<u64>> {
    let mut stream = TcpStream::connect(server.local_addr())?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    stream.write_all(&request(64, sequence))?;
    let mut reply = vec![0u8; 64];
    stream.read_exact(&mut reply)?;
    Ok(reply_sequence(&reply, SESSION, 64))
}

#[test]
fn tcp_partial_headers_on_every_slot_cannot_lock_a_client_out() {
    let server = spawn(Transport::Tcp);
    let squatters: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|_| {
            let mut stream = TcpStream::connect(server.local_addr()).unwrap();
            stream.write_all(&request(64, 0)[..8]).unwrap();
            stream
        })
        .collect();
    wait_accepted(&server, MAX_CONNECTIONS as u64);
    std::thread::sleep(EVICTABLE_AFTER + Duration::from_millis(200));
    let answer = ask(&server, 9);
    assert_eq!(answer.ok().flatten(), Some(9), "{:?}", server.stats());
    drop(squatters);
    server.stop().unwrap();
}

#[test]
fn tcp_a_message_stuck_half_way_is_dropped_after_the_timeout() {
    let server = spawn(Transport::Tcp);
    let mut stuck = TcpStream::connect(server.local_addr()).unwrap();
    stuck.write_all(&request(64, 0)[..8]).unwrap();
    let started = Instant::now();
    stuck
        .set_read_timeout(Some(PARTIAL_TIMEOUT + Duration::from_secs(3)))
        .unwrap();
    let mut buf = [0u8; 64];
    match stuck.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("a stuck connection was left open: {other:?}"),
    }
    assert!(
        started.elapsed() >= PARTIAL_TIMEOUT,
        "{:?}",
        started.elapsed()
    );
    server.stop().unwrap();
}
