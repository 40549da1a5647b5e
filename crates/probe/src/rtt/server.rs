//! The rtt server: binds, pins the serving thread, and answers well-formed probe requests
//! until a stop flag is raised.
//!
//! It runs on the caller's thread ([`Server::run`], as the CLI does) or on a named thread of
//! its own ([`Server::spawn`], as the demo, the tests and the lab do). Memory is fixed once
//! serving starts: one buffer for UDP; for TCP at most [`MAX_CONNECTIONS`] connections with
//! one message-sized buffer each.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nearnative_host::Root;

use super::config::{resolve, ServerConfig, Transport, Wait};
use super::server_stats::{ServerStats, SharedStats};
use super::sockopt::set_busy_poll;
use super::{server_tcp, server_udp, RttError};
use nearnative_sys::pin::pin_current_thread_to;

/// The most TCP connections served at once; more are accepted and closed at once.
pub const MAX_CONNECTIONS: usize = 64;
/// How often a blocked server wakes to look at its stop flag.
pub const STOP_CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// The name of the thread [`Server::spawn`] starts.
pub const SERVER_THREAD_NAME: &str = "nn-rtt-server";

pub struct Server {
    config: ServerConfig,
    socket: Bound,
    local: SocketAddr,
    stats: Arc<SharedStats>,
}

pub(crate) enum Bound {
    Udp(UdpSocket),
    Tcp(TcpListener),
}

impl Server {
    /// Checks the configuration, binds, and sets the socket up for the wait strategy.
    pub fn bind(config: ServerConfig) -> Result<Server, RttError> {
        config.validate(&Root::default())?;
        let addr = resolve(&config.bind)?;
        let bind_err = |source| RttError::Bind {
            addr: addr.to_string(),
            source,
        };
        let socket = match config.transport {
            Transport::Udp => Bound::Udp(UdpSocket::bind(addr).map_err(bind_err)?),
            Transport::Tcp => Bound::Tcp(TcpListener::bind(addr).map_err(bind_err)?),
        };
        let local = match &socket {
            Bound::Udp(s) => s.local_addr(),
            Bound::Tcp(l) => l.local_addr(),
        }
        .map_err(|e| RttError::socket("getsockname", addr, e))?;
        socket.prepare(config.wait, local)?;
        Ok(Server {
            config,
            socket,
            local,
            stats: Arc::default(),
        })
    }

    /// The address actually bound (the port is filled in when `:0` was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Pins the calling thread, then serves until `stop` is set. Returns the final counts.
    pub fn run(self, stop: &AtomicBool) -> Result<ServerStats, RttError> {
        if let Some(cpus) = &self.config.cpus {
            pin_current_thread_to(cpus)?;
        }
        let wait = self.config.wait;
        match &self.socket {
            Bound::Udp(socket) => server_udp::serve(socket, stop, &self.stats),
            Bound::Tcp(listener) => server_tcp::serve(listener, wait, stop, &self.stats),
        }
    }

    /// Serves on a thread named [`SERVER_THREAD_NAME`], which pins itself before serving.
    pub fn spawn(self) -> Result<ServerHandle, RttError> {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::clone(&self.stats);
        let local = self.local;
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(SERVER_THREAD_NAME.into())
            .spawn(move || self.run(&thread_stop))
            .map_err(|source| RttError::Spawn {
                name: SERVER_THREAD_NAME.into(),
                source,
            })?;
        Ok(ServerHandle {
            thread,
            stop,
            stats,
            local,
        })
    }
}

impl Bound {
    fn prepare(&self, wait: Wait, local: SocketAddr) -> Result<(), RttError> {
        let err = |op| move |e| RttError::socket(op, local, e);
        if let Wait::BusyPoll { budget_us } = wait {
            let fd = match self {
                Bound::Udp(s) => s.as_fd(),
                Bound::Tcp(l) => l.as_fd(),
            };
            set_busy_poll(fd, budget_us).map_err(err("SO_BUSY_POLL"))?;
        }
        match self {
            Bound::Udp(s) if wait == Wait::Spin => {
                s.set_nonblocking(true).map_err(err("O_NONBLOCK"))
            }
            Bound::Udp(s) => s
                .set_read_timeout(Some(STOP_CHECK_INTERVAL))
                .map_err(err("SO_RCVTIMEO")),
            // The TCP server multiplexes with poll(2); every socket it reads is non-blocking.
            Bound::Tcp(l) => l.set_nonblocking(true).map_err(err("O_NONBLOCK")),
        }
    }
}

/// A server running on its own thread.
pub struct ServerHandle {
    thread: JoinHandle<Result<ServerStats, RttError>>,
    stop: Arc<AtomicBool>,
    stats: Arc<SharedStats>,
    local: SocketAddr,
}

impl ServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The counts so far.
    pub fn stats(&self) -> ServerStats {
        self.stats.snapshot()
    }

    /// Raises the stop flag and waits for the thread (at most [`STOP_CHECK_INTERVAL`] when
    /// blocked). Returns the final counts, or the error that ended serving.
    pub fn stop(self) -> Result<ServerStats, RttError> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().map_err(|_| RttError::Panicked {
            name: SERVER_THREAD_NAME.into(),
        })?
    }
}
