//! The `/metrics` responder: one thread, one client at a time, on a loopback address.
//!
//! Prometheus scrapes once every few seconds with one short GET, so a sequential responder
//! is enough. What keeps a misbehaving client from holding it: the whole request must arrive
//! within [`REQUEST_DEADLINE`] and fit in [`MAX_REQUEST_BYTES`], and the response must be
//! taken within [`WRITE_TIMEOUT`]; then the connection is dropped.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags};

use super::Metrics;

/// The `Content-Type` of what [`Metrics::encode`] emits: the Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The default of `--metrics`.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9464";
/// Time a client has to send its whole request head.
const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// Time a client has to take each part of the response.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// A scrape's request head is a few hundred bytes; anything past this is not a scrape.
const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// How often the idle thread looks at its stop flag: the longest a drop waits for it.
const STOP_POLL_MS: u8 = 100;
/// After the response, how long the client has to hang up, and how much of what it sent
/// beyond the request head is read meanwhile (see [`close_gracefully`]).
const LINGER: Duration = Duration::from_millis(200);
const MAX_DRAIN_BYTES: usize = 256 * 1024;
/// After a failed accept (out of file descriptors, say), a pause before the next, so the
/// thread does not spin on a listener that stays readable.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The `--metrics` argument: `ADDR:PORT` on loopback, or `off`.
pub fn parse_addr(text: &str) -> Result<Option<SocketAddr>, String> {
    let text = text.trim();
    if text == "off" {
        return Ok(None);
    }
    let addr: SocketAddr = text.parse().map_err(|_| {
        format!("--metrics {text:?}: expected ADDR:PORT (such as {DEFAULT_ADDR}) or off")
    })?;
    match addr.ip().is_loopback() {
        true => Ok(Some(addr)),
        false => Err(format!(
            "--metrics {text}: not a loopback address; the daemon serves its metrics on \
             loopback only (127.0.0.1 or [::1])"
        )),
    }
}

/// The running responder; dropping it stops its thread.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// The address bound, with the port the kernel chose when asked for port 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // Joining fails only if the thread panicked, and then it holds nothing to release.
            let _ = thread.join();
        }
    }
}

/// Binds `addr` and answers `GET /metrics` with `metrics` on a thread named `nn-metrics`.
/// Refuses an address off loopback, whoever built it.
pub fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> io::Result<MetricsServer> {
    if !addr.ip().is_loopback() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("metrics address {addr}: not a loopback address"),
        ));
    }
    let listener = TcpListener::bind(addr)?;
    let local_addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let thread = std::thread::Builder::new()
        .name("nn-metrics".to_owned())
        .spawn({
            let stop = Arc::clone(&stop);
            move || accept_loop(&listener, &metrics, &stop)
        })?;
    Ok(MetricsServer {
        local_addr,
        stop,
        thread: Some(thread),
    })
}

fn accept_loop(listener: &TcpListener, metrics: &Metrics, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, STOP_POLL_MS) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(_) => std::thread::sleep(ACCEPT_BACKOFF),
        }
        match listener.accept() {
            // A client that misbehaves only loses its own connection.
            Ok((mut stream, _)) => {
                if respond(&mut stream, metrics).is_ok() {
                    close_gracefully(stream);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => std::thread::sleep(ACCEPT_BACKOFF),
        }
    }
}

/// What a request asked for, as far as this responder cares.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Metrics,
    OtherPath,
    OtherMethod,
    Malformed,
}

fn respond(stream: &mut TcpStream, metrics: &Metrics) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let head = match read_head(stream)? {
        Some(head) => head,
        None => return write_response(stream, "431 Request Header Fields Too Large", ""),
    };
    match classify(&head) {
        Request::Metrics => write_response(stream, "200 OK", &metrics.encode()),
        Request::OtherPath => write_response(stream, "404 Not Found", "only /metrics\n"),
        Request::OtherMethod => write_response(stream, "405 Method Not Allowed", ""),
        Request::Malformed => write_response(stream, "400 Bad Request", ""),
    }
}

/// Closing a socket with unread input makes the kernel reset the connection, and the client
/// may then lose the response (a refusal of an oversized request, say). So the write side
/// is shut first, and what the client still sends is read and dropped, within bounds, until
/// it hangs up.
fn close_gracefully(mut stream: TcpStream) {
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER;
    let mut drained = 0;
    let mut chunk = [0u8; 4096];
    while drained < MAX_DRAIN_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => drained += n,
        }
    }
}

/// Reads up to the end of the request head (the blank line); `None` when it is longer than
/// [`MAX_REQUEST_BYTES`]. Fails when the client is slower than [`REQUEST_DEADLINE`] or hangs
/// up first.
fn read_head(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !ends_head(&head) {
        if head.len() > MAX_REQUEST_BYTES {
            return Ok(None);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(head))
}

fn ends_head(head: &[u8]) -> bool {
    head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n")
}

fn classify(head: &[u8]) -> Request {
    let Some(line) = head
        .split(|&b| b == b'\n')
        .next()
        .and_then(|line| std::str::from_utf8(line).ok())
    else {
        return Request::Malformed;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Request::Malformed;
    };
    if !version.starts_with("HTTP/1.") {
        return Request::Malformed;
    }
    let path = target.split('?').next().unwrap_or(target);
    match (method, path) {
        ("GET", "/metrics") => Request::Metrics,
        ("GET", _) => Request::OtherPath,
        _ => Request::OtherMethod,
    }
}

fn write_response(stream: &mut TcpStream, status: &str, body: &str) -> io::Result<()> {
    let allow = match status.starts_with("405") {
        true => "Allow: GET\r\n",
        false => "",
    };
    let content_type = match status.starts_with("200") {
        true => CONTENT_TYPE,
        false => "text/plain; charset=utf-8",
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         {allow}Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified_by_method_and_path() {
        let cases = [
            (
                "scrape",
                "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                Request::Metrics,
            ),
            (
                "query string",
                "GET /metrics?a=b HTTP/1.0\r\n\r\n",
                Request::Metrics,
            ),
            ("other path", "GET /x HTTP/1.1\r\n\r\n", Request::OtherPath),
            (
                "prefix path",
                "GET /metricsx HTTP/1.1\r\n\r\n",
                Request::OtherPath,
            ),
            (
                "post",
                "POST /metrics HTTP/1.1\r\n\r\n",
                Request::OtherMethod,
            ),
            (
                "head",
                "HEAD /metrics HTTP/1.1\r\n\r\n",
                Request::OtherMethod,
            ),
            ("two words", "GET /metrics\r\n\r\n", Request::Malformed),
            (
                "not http",
                "GET /metrics SPDY/3\r\n\r\n",
                Request::Malformed,
            ),
            ("binary", "\u{fffd}\r\n\r\n", Request::Malformed),
        ];
        for (what, head, expected) in cases {
            assert_eq!(classify(head.as_bytes()), expected, "{what}");
        }
    }

    #[test]
    fn addresses() {
        let cases = [
            ("default", "127.0.0.1:9464", Ok(Some("127.0.0.1:9464"))),
            ("v6 loopback", "[::1]:9464", Ok(Some("[::1]:9464"))),
            ("off", "off", Ok(None)),
            ("any", "0.0.0.0:9464", Err("not a loopback address")),
            ("v6 any", "[::]:9464", Err("not a loopback address")),
            ("lan", "192.168.1.4:9464", Err("not a loopback address")),
            ("no port", "127.0.0.1", Err("expected ADDR:PORT")),
            ("garbage", "metrics please", Err("expected ADDR:PORT")),
        ];
        for (what, text, expected) in cases {
            match (parse_addr(text), expected) {
                (Ok(got), Ok(want)) => {
                    assert_eq!(got, want.map(|a| a.parse().unwrap()), "{what}")
                }
                (Err(got), Err(want)) => {
                    assert!(got.contains(want) && got.contains(text), "{what}: {got}");
                    assert!(!got.contains('\n'), "{what}: one line");
                }
                (got, want) => panic!("{what}: got {got:?}, want {want:?}"),
            }
        }
    }
}
