//! The TCP serving loop: `poll(2)` over the listener and up to [`MAX_CONNECTIONS`]
//! non-blocking connections, each with one message-sized buffer that frames its stream.
//!
//! Block and busy-poll wait in `poll` (with a [`STOP_CHECK_INTERVAL`] timeout); spin polls with
//! a zero timeout in a loop. A connection is closed when its peer closes it, when it sends a
//! malformed message (a stream cannot be resynchronised), or when it stops reading its replies
//! (the server never queues them: memory stays bounded).
//!
//! A connection cannot hold its slot for ever: one stuck on part of a message is closed after
//! [`PARTIAL_TIMEOUT`], a silent one after [`IDLE_TIMEOUT`], and when every slot is taken a new
//! client takes the slot of the connection silent longest, if it has been silent for
//! [`EVICTABLE_AFTER`]. Running out of file descriptors refuses the new connection (through a
//! reserved descriptor) and goes on serving the others; it never ends the server.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::config::Wait;
use super::link::is_transient;
use super::server::{MAX_CONNECTIONS, STOP_CHECK_INTERVAL};
use super::server_stats::{ServerStats, SharedStats};
use super::sockopt::{poll_fds, set_busy_poll};
use super::wire::{self, Malformed, HEADER_LEN, MAX_MESSAGE_LEN};
use super::RttError;

/// How long a connection may sit on part of a message: a client sends each message in one
/// write, so a message still incomplete this long after its last bytes is never finished.
pub const PARTIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection may stay silent between whole messages.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a connection must have been silent before a new client may take its slot.
pub const EVICTABLE_AFTER: Duration = Duration::from_secs(1);
/// How long the listener is left alone when no descriptor is free even to refuse a client.
const DESCRIPTOR_BACKOFF: Duration = Duration::from_millis(100);

struct Connection {
    stream: TcpStream,
    buf: Box<[u8]>,
    filled: usize,
    /// When bytes last arrived (or the connection was accepted).
    heard: Instant,
}

impl Connection {
    fn expired(&self, now: Instant) -> bool {
        let limit = if self.filled > 0 {
            PARTIAL_TIMEOUT
        } else {
            IDLE_TIMEOUT
        };
        now.duration_since(self.heard) > limit
    }
}

/// The listener's side of the loop: a descriptor kept in reserve so that a client can still
/// be accepted and refused when the process runs out of them, and a pause when even that fails.
struct Listener<'a> {
    socket: &'a TcpListener,
    reserve: Option<File>,
    paused_until: Option<Instant>,
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
    let mut listener = Listener {
        socket: listener,
        reserve: File::open("/dev/null").ok(),
        paused_until: None,
    };
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        connections.retain(|c| !c.expired(now));
        let listening = !matches!(listener.paused_until, Some(until) if now < until);
        fds.clear();
        fds.extend(connections.iter().map(|c| readable(c.stream.as_raw_fd())));
        if listening {
            fds.push(readable(listener.socket.as_raw_fd()));
        }
        let ready =
            poll_fds(&mut fds, timeout_ms).map_err(|e| listener_error(listener.socket, e))?;
        if ready == 0 {
            continue;
        }
        let now = Instant::now();
        // Serve the existing connections first: their indices match `fds[..connections.len()]`.
        for i in (0..connections.len()).rev() {
            if fds[i].revents != 0 {
                if let After::Close = serve_connection(&mut connections[i], now, &mut stats) {
                    connections.swap_remove(i);
                }
            }
        }
        if listening && fds[fds.len() - 1].revents != 0 {
            listener.accept_all(wait, &mut connections, &mut stats)?;
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

impl Listener<'_> {
    fn accept_all(
        &mut self,
        wait: Wait,
        connections: &mut Vec<Connection>,
        stats: &mut ServerStats,
    ) -> Result<(), RttError> {
        loop {
            let stream = match self.socket.accept() {
                Ok((stream, _)) => stream,
                Err(e) if is_transient(&e) => return Ok(()),
                // A connection reset before it was accepted is the client's business.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) if out_of_descriptors(&e) => {
                    self.refuse_one(stats);
                    return Ok(());
                }
                Err(e) => return Err(listener_error(self.socket, e)),
            };
            let now = Instant::now();
            if connections.len() >= MAX_CONNECTIONS && !evict_silent(connections, now) {
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
                heard: now,
            });
        }
    }

    /// Frees the reserved descriptor to accept one waiting client and close it at once, so it
    /// learns it was refused instead of hanging in the backlog; without a reserve, stops
    /// listening for a moment rather than spin on a listener that stays readable.
    fn refuse_one(&mut self, stats: &mut ServerStats) {
        if self.reserve.take().is_some() {
            if self.socket.accept().is_ok() {
                stats.refused += 1;
            }
            self.reserve = File::open("/dev/null").ok();
        }
        if self.reserve.is_none() {
            self.paused_until = Some(Instant::now() + DESCRIPTOR_BACKOFF);
        }
    }
}

fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Closes the connection silent longest, if it has been silent long enough to give way.
fn evict_silent(connections: &mut Vec<Connection>, now: Instant) -> bool {
    let oldest = connections
        .iter()
        .enumerate()
        .min_by_key(|(_, c)| c.heard)
        .filter(|(_, c)| now.duration_since(c.heard) >= EVICTABLE_AFTER)
        .map(|(i, _)| i);
    oldest.map(|i| connections.swap_remove(i)).is_some()
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
fn serve_connection(conn: &mut Connection, now: Instant, stats: &mut ServerStats) -> After {
    match conn.stream.read(&mut conn.buf[conn.filled..]) {
        Ok(0) => return After::Close,
        Ok(n) => {
            conn.filled += n;
            conn.heard = now;
        }
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
