//! The client's connected socket: a connected UDP socket, or a TCP stream with message framing.
//!
//! A connected UDP socket lets the kernel skip the route lookup and address copy of
//! `sendto`/`recvfrom` on every message, and drops datagrams from anyone but the server.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use super::config::{Transport, Wait};
use super::sockopt::set_busy_poll;
use super::RttError;

pub enum Link {
    Udp(UdpSocket),
    Tcp(TcpLink),
}

/// A stream carrying fixed-length replies; `filled` bytes of the next one have arrived.
pub struct TcpLink {
    stream: TcpStream,
    reply_len: usize,
    filled: usize,
}

/// How a link is opened.
pub struct LinkOptions {
    pub transport: Transport,
    pub wait: Wait,
    /// Non-blocking even when `wait` blocks: the fixed-rate loop polls instead.
    pub nonblocking: bool,
    /// Connect timeout, and the blocking receive timeout.
    pub timeout: Duration,
    /// The length of every reply, which frames the TCP stream.
    pub reply_len: usize,
}

impl Link {
    pub fn connect(addr: SocketAddr, options: &LinkOptions) -> Result<Link, RttError> {
        let connect_err = |source| RttError::Connect {
            addr: addr.to_string(),
            source,
        };
        let link = match options.transport {
            Transport::Udp => {
                let local: SocketAddr = match addr {
                    SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
                    SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
                };
                let socket = UdpSocket::bind(local).map_err(connect_err)?;
                socket.connect(addr).map_err(connect_err)?;
                Link::Udp(socket)
            }
            Transport::Tcp => {
                let stream =
                    TcpStream::connect_timeout(&addr, options.timeout).map_err(connect_err)?;
                stream
                    .set_nodelay(true)
                    .map_err(|e| RttError::socket("TCP_NODELAY", addr, e))?;
                Link::Tcp(TcpLink {
                    stream,
                    reply_len: options.reply_len,
                    filled: 0,
                })
            }
        };
        link.apply_wait(addr, options)?;
        Ok(link)
    }

    fn apply_wait(&self, addr: SocketAddr, options: &LinkOptions) -> Result<(), RttError> {
        let err = |op| move |e| RttError::socket(op, addr, e);
        if let Wait::BusyPoll { budget_us } = options.wait {
            set_busy_poll(self.as_fd(), budget_us).map_err(err("SO_BUSY_POLL"))?;
        }
        let nonblocking = options.nonblocking || options.wait == Wait::Spin;
        match self {
            Link::Udp(s) => {
                s.set_nonblocking(nonblocking).map_err(err("O_NONBLOCK"))?;
                s.set_read_timeout(Some(options.timeout))
                    .map_err(err("SO_RCVTIMEO"))
            }
            Link::Tcp(t) => {
                t.stream
                    .set_nonblocking(nonblocking)
                    .map_err(err("O_NONBLOCK"))?;
                t.stream
                    .set_read_timeout(Some(options.timeout))
                    .map_err(err("SO_RCVTIMEO"))
            }
        }
    }

    /// Sends one whole message.
    #[inline]
    pub fn send(&mut self, message: &[u8]) -> io::Result<()> {
        match self {
            Link::Udp(socket) => match socket.send(message) {
                // A refused earlier datagram (ICMP port unreachable) is reported on the next
                // call and fails it unsent; that error belongs to the earlier one, so retry.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    socket.send(message).map(drop)
                }
                sent => sent.map(drop),
            },
            Link::Tcp(t) => t.send(message),
        }
    }

    /// One receive attempt. `Some(len)` when a whole message is in `buf[..len]`; `None` when
    /// nothing (or only part of a TCP message) arrived before the socket's timeout, or at once
    /// on a non-blocking socket.
    #[inline]
    pub fn try_recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self {
            Link::Udp(socket) => match socket.recv(buf) {
                Ok(n) => Ok(Some(n)),
                Err(e) if is_transient(&e) => Ok(None),
                Err(e) => Err(e),
            },
            Link::Tcp(t) => t.try_recv(buf),
        }
    }
}

impl AsFd for Link {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Link::Udp(s) => s.as_fd(),
            Link::Tcp(t) => t.stream.as_fd(),
        }
    }
}

impl TcpLink {
    fn send(&mut self, message: &[u8]) -> io::Result<()> {
        let mut written = 0;
        while written < message.len() {
            match self.stream.write(&message[written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                // A full send buffer on a non-blocking stream: the server is reading, retry.
                Err(e) if is_transient(&e) => std::hint::spin_loop(),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let want = self.reply_len.min(buf.len());
        match self.stream.read(&mut buf[self.filled..want]) {
            Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) if self.filled + n == want => {
                self.filled = 0;
                Ok(Some(want))
            }
            Ok(n) => {
                self.filled += n;
                Ok(None)
            }
            Err(e) if is_transient(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Errors that mean "nothing yet": no data on a non-blocking socket, a receive timeout, a
/// signal, or an ICMP refusal of an earlier datagram (the reply is then simply lost).
pub fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
            | io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionRefused
    )
}
