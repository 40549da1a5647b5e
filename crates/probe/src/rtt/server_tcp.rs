//! The TCP serving loop: `poll(2)` over the listener and up to [`MAX_CONNECTIONS`]
//! non-blocking connections, each with one message-sized buffer that frames its stream.
//!
//! Block and busy-poll wait in `poll` (with a [`STOP_CHECK_INTERVAL`] timeout); spin polls with
//! a zero timeout in a loop. A connection is closed when its peer closes it, when it sends a
//! malformed message (a stream cannot be resynchronised), or when it stops reading its replies
//! (the server never queues them: memory stays bounded).

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use super::config::Wait;
use super::link::is_transient;
use super::server::{MAX_CONNECTIONS, STOP_CHECK_INTERVAL};
use super::server_stats::{ServerStats, SharedStats};
use super::sockopt::{poll_fds, set_busy_poll};
use super::wire::{self, Malformed, HEADER_LEN, MAX_MESSAGE_LEN};
use super::RttError;

struct Connection {
    stream: TcpStream,
    buf: Box<[u8]>,
    filled: usize,
}

enum After {
    KeepOpen,
    Close,
}

pub fn serve(
    listener: &TcpListener,
    wait: Wait,
    stop: &AtomicBool,
    shared: &SharedStats,
) -> Result<ServerStats, RttError> {
    let timeout_ms = match wait {
        Wait::Spin => 0,
        _ => STOP_CHECK_INTERVAL.as_millis() as i32,
    };
    let mut connections: Vec<Connection> = Vec::with_capacity(MAX_CONNECTIONS);
    let mut fds: Vec<libc::pollfd> = Vec::with_capacity(MAX_CONNECTIONS + 1);
    let mut stats = ServerStats::default();
    while !stop.load(Ordering::Relaxed) {
        fds.clear();
        fds.push(readable(listener.as_raw_fd()));
        fds.extend(connections.iter().map(|c| readable(c.stream.as_raw_fd())));
        let ready = poll_fds(&mut fds, timeout_ms).map_err(|e| listener_error(listener, e))?;
        if ready == 0 {
            continue;
        }
        // Serve the existing connections first: their indices match `fds[1..]`.
        for i in (0..connections.len()).rev() {
            if fds[i + 1].revents != 0 {
                if let After::Close = serve_connection(&mut connections[i], &mut stats) {
                    connections.swap_remove(i);
                }
            }
        }
        if fds[0].revents != 0 {
            accept_all(listener, wait, &mut connections, &mut stats)?;
        }
        shared.publish(&stats);
    }
    Ok(stats)
}

fn readable(fd: i32) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

fn accept_all(
    listener: &TcpListener,
    wait: Wait,
    connections: &mut Vec<Connection>,
    stats: &mut ServerStats,
) -> Result<(), RttError> {
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if is_transient(&e) => return Ok(()),
            // A connection reset before it was accepted is the client's business.
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
            Err(e) => return Err(listener_error(listener, e)),
        };
        if connections.len() >= MAX_CONNECTIONS {
            stats.refused += 1;
            continue;
        }
        if configure(&stream, wait).is_err() {
            continue;
        }
        stats.accepted += 1;
        connections.push(Connection {
            stream,
            buf: vec![0; MAX_MESSAGE_LEN].into_boxed_slice(),
            filled: 0,
        });
    }
}

fn configure(stream: &TcpStream, wait: Wait) -> io::Result<()> {
    stream.set_nonblocking(true)?;
    stream.set_nodelay(true)?;
    if let Wait::BusyPoll { budget_us } = wait {
        set_busy_poll(stream.as_fd(), budget_us)?;
    }
    Ok(())
}

/// Reads what has arrived and answers every whole message in it.
fn serve_connection(conn: &mut Connection, stats: &mut ServerStats) -> After {
    match conn.stream.read(&mut conn.buf[conn.filled..]) {
        Ok(0) => return After::Close,
        Ok(n) => conn.filled += n,
        Err(e) if is_transient(&e) => return After::KeepOpen,
        Err(_) => return After::Close,
    }
    loop {
        let len = match wire::check_request_header(&conn.buf[..conn.filled]) {
            Err(Malformed::Truncated) if conn.filled < HEADER_LEN => return After::KeepOpen,
            Err(why) => {
                stats.received += 1;
                stats.count_malformed(why);
                return After::Close;
            }
            Ok(len) if len > conn.filled => return After::KeepOpen,
            Ok(len) => len,
        };
        stats.received += 1;
        wire::mark_reply(&mut conn.buf[..len]);
        if !send_whole(&mut conn.stream, &conn.buf[..len]) {
            stats.stalled += 1;
            return After::Close;
        }
        stats.answered += 1;
        conn.buf.copy_within(len..conn.filled, 0);
        conn.filled -= len;
    }
}

/// Writes all of `message`, or gives up (false) when the peer's window and our send buffer
/// are full: a client that does not read its replies loses its connection.
fn send_whole(stream: &mut TcpStream, message: &[u8]) -> bool {
    let mut written = 0;
    while written < message.len() {
        match stream.write(&message[written..]) {
            Ok(0) => return false,
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

fn listener_error(listener: &TcpListener, e: io::Error) -> RttError {
    let local = listener.local_addr().map(|a| a.to_string());
    RttError::socket("accept", local.unwrap_or_default(), e)
}
