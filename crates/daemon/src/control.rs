//! The control socket (`/run/nearnative/control.sock`): while the daemon runs,
//! `nearnative apply|revert|status|verify` go through it, so the ledger has one owner.
//!
//! The protocol is one JSON [`Request`] line from the client and one JSON [`Response`] line
//! back, per connection (docs/daemon.md). Lines are bounded, and each connection is
//! served by a thread of its own with read and write timeouts, so a client that stalls holds
//! up nobody else.
//!
//! Only root may talk to it. The socket's directory is created 0700 and checked to be closed
//! to others, the socket is created 0600 (its mode is set on the descriptor before `bind`, so
//! the file never exists wider), and each peer's uid is read with `SO_PEERCRED`: anyone but
//! root (or the daemon's own uid, for a daemon run unprivileged in a test) gets a refusal
//! and nothing runs.
//!
//! [`Client`] is the CLI's side: it answers `Ok(None)` when no daemon listens, and the command
//! then works directly, as it does without a daemon.

use std::fs::{self, DirBuilder};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nearnative_apply::DEFAULT_STATE_DIR;
use nearnative_engine::{Applied, RevertWhich, Reverted, VerifyOptions, VerifyReport};
use nearnative_plan::PlanRequest;
use nearnative_sys::trust::{self, TrustError};
use nix::sys::socket::{self, sockopt, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};

use crate::status::DaemonStatus;

/// Where the daemon listens unless told otherwise (`--control-socket`).
pub const DEFAULT_SOCKET: &str = "/run/nearnative/control.sock";

/// A request is a target and a few options: anything longer is not from nearnative.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// A verify report lists every offender it saw: generous, but bounded.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// How long a connected peer may take to send its request line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the daemon waits for a client to take its answer.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client waits for the daemon beyond the work itself: the request may wait for
/// the reconcile loop to finish a sweep or an apply of its own.
const DAEMON_MARGIN: Duration = Duration::from_secs(120);
/// `status` is a snapshot: a daemon that takes longer is stuck.
const STATUS_TIMEOUT: Duration = Duration::from_secs(30);
/// libvirt waits for its hook, and a domain's start with it: a daemon that has not answered
/// by then is not there for the domain, which starts without it.
pub const LIBVIRT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the CLI asks the daemon, one per connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// `nearnative apply`: plan and apply under the daemon's ledger.
    Apply { request: PlanRequest },
    /// `nearnative revert TARGET | --all`.
    Revert { which: RevertRequest },
    /// `nearnative status`: the daemon's view of every workload.
    Status,
    /// `nearnative verify TARGET`.
    Verify {
        target: String,
        options: VerifyRequest,
    },
    /// An event of libvirt's qemu hook (`nearnative libvirt hook`).
    Libvirt { event: LibvirtEvent },
}

/// What libvirt's qemu hook saw: the operation and the domain, with its switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibvirtEvent {
    pub op: LibvirtOp,
    /// The domain's name (libvirt's GUEST argument).
    pub domain: String,
    /// The domain's `<nn:latency>` switch as a request for `vm:NAME` (the daemon sets its
    /// own scope and libvirt URI); `None`: the domain has no switch.
    pub request: Option<PlanRequest>,
    /// The vCPUs libvirt starts the domain with.
    pub vcpus: u32,
}

/// The hook operations the daemon acts on (libvirt's OP with its SUBOP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LibvirtOp {
    /// `prepare begin`: admit the domain's cores, or refuse its start.
    Prepare,
    /// `started begin`: apply it (or, without a switch, fence the new bystander).
    Started,
    /// `release end`: revert it and release its cores.
    Release,
    /// `reconnect begin`: libvirtd restarted; adopt the running domain.
    Reconnect,
}

/// The daemon's answer to a [`LibvirtEvent`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LibvirtAnswer {
    /// `prepare`: the cores are there, and held for the domain until it is applied.
    Admitted {
        exclusive_cpus: nearnative_host::CpuSet,
    },
    /// `prepare`: the start must fail; one line, the planner's.
    Refused { reason: String },
    /// Taken: the loop acts on it (at once).
    Noted,
}

impl Request {
    /// How long a client waits for the answer: the work's own length (a verify samples for
    /// a while) and a margin for a daemon that is busy.
    pub fn timeout(&self) -> Duration {
        match self {
            Request::Status => STATUS_TIMEOUT,
            Request::Verify { options, .. } => options.options().sample + DAEMON_MARGIN,
            Request::Apply { .. } | Request::Revert { .. } => DAEMON_MARGIN,
            Request::Libvirt { .. } => LIBVIRT_TIMEOUT,
        }
    }

    /// The request's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Apply { .. } => "apply",
            Request::Revert { .. } => "revert",
            Request::Status => "status",
            Request::Verify { .. } => "verify",
            Request::Libvirt { .. } => "libvirt",
        }
    }
}

/// Which workloads to revert, as [`RevertWhich`] says it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevertRequest {
    /// `vm:NAME`, `vm-pid:PID`, `pid:PID` or `cgroup:/PATH`, as applied or as keyed.
    Target(String),
    All,
}

impl From<&RevertWhich> for RevertRequest {
    fn from(which: &RevertWhich) -> Self {
        match which {
            RevertWhich::Target(target) => RevertRequest::Target(target.clone()),
            RevertWhich::All => RevertRequest::All,
        }
    }
}

impl From<RevertRequest> for RevertWhich {
    fn from(which: RevertRequest) -> Self {
        match which {
            RevertRequest::Target(target) => RevertWhich::Target(target),
            RevertRequest::All => RevertWhich::All,
        }
    }
}

/// [`VerifyOptions`] on the wire: the sample length in milliseconds, which a script can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyRequest {
    /// How long the exclusive CPUs are watched; zero reads the knobs back only.
    pub sample_ms: u64,
}

impl VerifyRequest {
    pub fn options(&self) -> VerifyOptions {
        VerifyOptions {
            sample: Duration::from_millis(self.sample_ms),
        }
    }
}

impl From<&VerifyOptions> for VerifyRequest {
    fn from(options: &VerifyOptions) -> Self {
        VerifyRequest {
            sample_ms: u64::try_from(options.sample.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// The daemon's answer: the engine's own result, which the CLI prints exactly as it prints
/// the direct command's, or the error the direct command would have printed.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Applied(Box<Applied>),
    Reverted(Box<Reverted>),
    Status(DaemonStatus),
    Verified(Box<VerifyReport>),
    Libvirt(LibvirtAnswer),
    /// One line, as the direct command would print it after `nearnative: `.
    Error {
        message: String,
    },
}

impl Response {
    /// An error and its causes on one line, each cause left out when the message before
    /// already quotes it (as the CLI prints a direct command's error).
    pub fn error(error: &dyn std::error::Error) -> Response {
        Response::Error {
            message: error_line(error),
        }
    }

    /// The variant's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Response::Applied(_) => "applied",
            Response::Reverted(_) => "reverted",
            Response::Status(_) => "status",
            Response::Verified(_) => "verified",
            Response::Libvirt(_) => "libvirt",
            Response::Error { .. } => "error",
        }
    }
}

/// An error and its causes on one line, each cause left out when the message before already
/// quotes it (as the CLI prints a direct command's error).
pub fn error_line(error: &dyn std::error::Error) -> String {
    let mut message = String::new();
    let mut cause = Some(error);
    while let Some(current) = cause {
        let text = one_line(&current.to_string());
        if !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
        cause = current.source();
    }
    message
}

fn one_line(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines.join(" ")
}

/// The daemon's side: turns a request into its answer. Called on the connection's thread, so
/// it may block (an apply, a verify's sample) without holding up other clients.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: Request) -> Response;
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("another daemon listens on {}; stop it first", .path.display())]
    InUse { path: PathBuf },
    #[error("control socket {}: permission denied: the daemon's control socket is root only", .path.display())]
    PermissionDenied { path: PathBuf },
    #[error("control socket {}: is a {found}, not a socket; move it aside", .path.display())]
    NotASocket { path: PathBuf, found: &'static str },
    #[error("control socket {}: mode {mode:04o} after bind, not 0600; removed it", .path.display())]
    Mode { path: PathBuf, mode: u32 },
    #[error("control socket {}: {what}: {source}", .path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Untrusted(#[from] TrustError),
    #[error("control socket {}: no answer from the daemon within {} s", .path.display(), .timeout.as_secs())]
    Timeout { path: PathBuf, timeout: Duration },
    #[error("control socket {}: the daemon closed the connection without answering", .path.display())]
    Closed { path: PathBuf },
    #[error("control socket {}: the daemon's answer is longer than {MAX_RESPONSE_BYTES} bytes", .path.display())]
    TooLong { path: PathBuf },
    #[error("control socket {}: cannot read the daemon's answer: {source}", .path.display())]
    BadResponse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("control socket {}: the daemon answered `{answer}` to `{request}`", .path.display())]
    Unexpected {
        path: PathBuf,
        request: &'static str,
        answer: &'static str,
    },
    /// The daemon ran the request and it failed: its message, as the direct command's.
    #[error("{message}")]
    Daemon { message: String },
}

fn io_error<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(io::Error) -> ControlError + 'a {
    move |source| ControlError::Io {
        path: path.to_owned(),
        what,
        source,
    }
}

fn nix_error<'a>(
    path: &'a Path,
    what: &'static str,
) -> impl FnOnce(nix::Error) -> ControlError + 'a {
    move |errno| io_error(path, what)(io::Error::from(errno))
}

/// The listening socket and its accept thread. Dropping it stops accepting and removes the
/// socket file (if it is still the one bound); connections being served finish on their own.
pub struct ControlServer {
    path: PathBuf,
    listener: UnixListener,
    /// Device and inode of the bound file, so drop never removes a successor's socket.
    bound: (u64, u64),
    stopping: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Listens on `path`, replacing a stale socket file (nobody listening); another daemon's
    /// live socket is an error naming it.
    pub fn bind(path: &Path, handler: Arc<dyn Handler>) -> Result<ControlServer, ControlError> {
        prepare_dir(path)?;
        clear_stale(path)?;
        let listener = listen_private(path)?;
        let meta = fs::symlink_metadata(path).map_err(io_error(path, "cannot stat it"))?;
        let accepting = listener
            .try_clone()
            .map_err(io_error(path, "cannot share the listener"))?;
        let stopping = Arc::new(AtomicBool::new(false));
        let accept = std::thread::Builder::new()
            .name("control-accept".to_owned())
            .spawn({
                let stopping = Arc::clone(&stopping);
                move || accept_loop(&accepting, &handler, &stopping)
            })
            .map_err(io_error(path, "cannot start the accept thread"))?;
        Ok(ControlServer {
            path: path.to_owned(),
            listener,
            bound: (meta.dev(), meta.ino()),
            stopping,
            accept: Some(accept),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Shutting a listening socket down wakes the thread blocked in accept (EINVAL).
        let _ = socket::shutdown(self.listener.as_raw_fd(), socket::Shutdown::Both);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let ours = fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.bound);
        if ours {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Creates the socket's directory 0700 if it is missing, then checks it is closed to others
/// (root's, or the daemon's own user's), so nobody else can swap the socket file.
fn prepare_dir(path: &Path) -> Result<(), ControlError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_error(dir, "cannot create its directory")(e)),
    }
    trust::check_parent(path)?;
    Ok(())
}

/// Removes a socket file nobody listens on (a daemon that was killed); refuses a live one.
fn clear_stale(path: &Path) -> Result<(), ControlError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(path, "cannot stat it")(e)),
    };
    if !meta.file_type().is_socket() {
        let found = match meta.file_type() {
            t if t.is_symlink() => "symbolic link",
            t if t.is_dir() => "directory",
            _ => "file",
        };
        return Err(ControlError::NotASocket {
            path: path.to_owned(),
            found,
        });
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(ControlError::InUse {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            fs::remove_file(path).map_err(io_error(path, "cannot remove the stale socket"))
        }
        Err(e) => Err(io_error(path, "cannot tell whether a daemon listens on it")(e)),
    }
}

/// A listening socket whose file is 0600 from the moment it exists: Linux gives the file
/// the mode of the socket's own inode (less the umask), which `fchmod` sets before `bind`.
fn listen_private(path: &Path) -> Result<UnixListener, ControlError> {
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(nix_error(path, "cannot create a socket"))?;
    nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o600))
        .map_err(nix_error(path, "cannot set the socket's mode"))?;
    let address = UnixAddr::new(path).map_err(nix_error(path, "not a socket path"))?;
    socket::bind(fd.as_raw_fd(), &address).map_err(nix_error(path, "cannot bind"))?;
    let listener = UnixListener::from(fd);
    // The umask may only have narrowed 0600; give the owner read and write back.
    let exact = fs::set_permissions(path, fs::Permissions::from_mode(0o600));
    exact.map_err(io_error(path, "cannot set the socket's mode"))?;
    let mode = fs::symlink_metadata(path)
        .map_err(io_error(path, "cannot stat it"))?
        .mode()
        & 0o7777;
    if mode != 0o600 {
        let _ = fs::remove_file(path);
        return Err(ControlError::Mode {
            path: path.to_owned(),
            mode,
        });
    }
    let backlog = Backlog::new(64).map_err(nix_error(path, "cannot listen"))?;
    socket::listen(&listener, backlog).map_err(nix_error(path, "cannot listen"))?;
    Ok(listener)
}

fn accept_loop(listener: &UnixListener, handler: &Arc<dyn Handler>, stopping: &AtomicBool) {
    for stream in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        match stream {
            Ok(stream) => {
                let handler = Arc::clone(handler);
                let spawned = std::thread::Builder::new()
                    .name("control-conn".to_owned())
                    .spawn(move || serve(stream, &*handler));
                if let Err(e) = spawned {
                    eprintln!("control socket: cannot serve a connection: {e}");
                }
            }
            // Out of descriptors or memory for a moment: let connections finish first.
            Err(e) => {
                eprintln!("control socket: accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// One connection: the peer's uid checked, one request read, handled and answered.
fn serve(stream: UnixStream, handler: &dyn Handler) {
    let response = match refusal(&stream) {
        Some(refused) => refused,
        None => match read_request(&stream) {
            Ok(request) => handler.handle(request),
            Err(message) => Response::Error { message },
        },
    };
    // A client that left meanwhile (Ctrl-C during a verify) has nobody to read the answer.
    let _ = write_line(&stream, &response, RESPONSE_TIMEOUT);
}

/// The refusal for a peer that is not root (nor the daemon's own user), or `None`.
fn refusal(stream: &UnixStream) -> Option<Response> {
    let credentials = match socket::getsockopt(stream, sockopt::PeerCredentials) {
        Ok(credentials) => credentials,
        Err(e) => {
            return Some(Response::Error {
                message: format!("refused: cannot read the peer's credentials: {e}"),
            })
        }
    };
    let own = nix::unistd::geteuid().as_raw();
    if credentials.uid() == 0 || credentials.uid() == own {
        return None;
    }
    let message = format!(
        "refused: peer uid {} (pid {}) is not root; the control socket is root only",
        credentials.uid(),
        credentials.pid()
    );
    eprintln!("control socket: {message}");
    Some(Response::Error { message })
}

fn read_request(stream: &UnixStream) -> Result<Request, String> {
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .map_err(|e| format!("cannot set a read timeout: {e}"))?;
    let line = read_line(stream, MAX_REQUEST_BYTES).map_err(|e| match e {
        LineError::TooLong => format!("request longer than {MAX_REQUEST_BYTES} bytes"),
        LineError::Io(e) if is_timeout(&e) => {
            format!("no request line within {} s", REQUEST_TIMEOUT.as_secs())
        }
        LineError::Io(e) => format!("cannot read the request: {e}"),
    })?;
    if line.is_empty() {
        return Err("empty request".to_owned());
    }
    serde_json::from_slice(&line).map_err(|e| format!("bad request: {e}"))
}

enum LineError {
    TooLong,
    Io(io::Error),
}

/// One line of at most `limit` bytes, without its newline. End of stream ends it too.
fn read_line(stream: &UnixStream, limit: usize) -> Result<Vec<u8>, LineError> {
    let bounded = stream.take(limit as u64 + 1);
    let mut line = Vec::new();
    BufReader::new(bounded)
        .read_until(b'\n', &mut line)
        .map_err(LineError::Io)?;
    if line.last() == Some(&b'\n') {
        line.pop();
    } else if line.len() > limit {
        return Err(LineError::TooLong);
    }
    Ok(line)
}

fn write_line<T: Serialize>(stream: &UnixStream, value: &T, timeout: Duration) -> io::Result<()> {
    stream.set_write_timeout(Some(timeout))?;
    let mut line = serde_json::to_vec(value).map_err(io::Error::other)?;
    line.push(b'\n');
    let mut writer = stream;
    writer.write_all(&line)?;
    writer.flush()
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Sends `request` to the daemon on `path` and waits up to `timeout` for its answer.
/// `Ok(None)` when no daemon listens (no socket file, or a stale one): the caller works
/// directly. A socket the caller may not open is an error, not a reason to work directly:
/// that would fail too, for want of root.
pub fn request(
    path: &Path,
    request: &Request,
    timeout: Duration,
) -> Result<Option<Response>, ControlError> {
    let stream = match UnixStream::connect(path) {
        Ok(stream) => stream,
        Err(e) => {
            return match e.kind() {
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => Ok(None),
                io::ErrorKind::PermissionDenied => Err(ControlError::PermissionDenied {
                    path: path.to_owned(),
                }),
                _ => Err(io_error(path, "cannot connect")(e)),
            }
        }
    };
    let timeout = timeout.max(Duration::from_millis(1));
    match write_line(&stream, request, timeout) {
        // A daemon that refuses (a peer not root) answers and closes before reading: its
        // answer waits to be read all the same.
        Err(e) if is_hang_up(&e) => {}
        written => written.map_err(|e| answer_error(path, timeout, e))?,
    }
    stream
        .set_read_timeout(Some(timeout))
        .map_err(io_error(path, "cannot set a read timeout"))?;
    let line = read_line(&stream, MAX_RESPONSE_BYTES).map_err(|e| match e {
        LineError::TooLong => ControlError::TooLong {
            path: path.to_owned(),
        },
        LineError::Io(e) => answer_error(path, timeout, e),
    })?;
    if line.is_empty() {
        return Err(ControlError::Closed {
            path: path.to_owned(),
        });
    }
    let response = serde_json::from_slice(&line).map_err(|source| ControlError::BadResponse {
        path: path.to_owned(),
        source,
    })?;
    Ok(Some(response))
}

fn answer_error(path: &Path, timeout: Duration, e: io::Error) -> ControlError {
    if is_timeout(&e) {
        return ControlError::Timeout {
            path: path.to_owned(),
            timeout,
        };
    }
    match is_hang_up(&e) {
        true => ControlError::Closed {
            path: path.to_owned(),
        },
        false => io_error(path, "cannot talk to the daemon")(e),
    }
}

fn is_hang_up(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    )
}

/// The CLI's way to a running daemon. Each call answers `Ok(None)` when the command should
/// work directly: it names another tree than the live host (`--root`), or another state
/// directory than the daemon's, or no daemon listens. An apply or revert by a caller who is
/// not root also works directly, so it hears what the command needs ("apply changes the
/// live host and must run as root"), not that the root-only socket refused it.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    may_ask: bool,
    state_dir: PathBuf,
}

impl Client {
    /// `root` and `state_dir` are the command's `--root` and `--state-dir`.
    pub fn new(socket: &Path, root: &Path, state_dir: &Path) -> Client {
        Client {
            socket: socket.to_owned(),
            may_ask: root == Path::new("/"),
            state_dir: state_dir.to_owned(),
        }
    }

    pub fn apply(&self, request: &PlanRequest) -> Result<Option<Applied>, ControlError> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(None);
        }
        let request = Request::Apply {
            request: request.clone(),
        };
        match self.ask(&request)? {
            Some(Response::Applied(applied)) => Ok(Some(*applied)),
            other => self.unexpected(&request, other),
        }
    }

    pub fn revert(&self, which: &RevertWhich) -> Result<Option<Reverted>, ControlError> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(None);
        }
        let request = Request::Revert {
            which: which.into(),
        };
        match self.ask(&request)? {
            Some(Response::Reverted(reverted)) => Ok(Some(*reverted)),
            other => self.unexpected(&request, other),
        }
    }

    pub fn verify(
        &self,
        target: &str,
        options: &VerifyOptions,
    ) -> Result<Option<VerifyReport>, ControlError> {
        let request = Request::Verify {
            target: target.to_owned(),
            options: options.into(),
        };
        match self.ask(&request)? {
            Some(Response::Verified(report)) => Ok(Some(*report)),
            other => self.unexpected(&request, other),
        }
    }

    /// The daemon's status, when it owns the state directory asked about.
    pub fn status(&self) -> Result<Option<DaemonStatus>, ControlError> {
        if !self.may_ask {
            return Ok(None);
        }
        let status = match self.send(&Request::Status)? {
            Some(Response::Status(status)) => status,
            other => return self.unexpected(&Request::Status, other),
        };
        match self.owns_state_dir(&status) {
            true => Ok(Some(status)),
            false => Ok(None),
        }
    }

    /// Sends `request` when the daemon owns the command's host and state directory.
    fn ask(&self, request: &Request) -> Result<Option<Response>, ControlError> {
        if !self.may_ask || (self.custom_state_dir() && self.status()?.is_none()) {
            return Ok(None);
        }
        self.send(request)
    }

    /// The default means "wherever the daemon keeps it": a daemon started with another state
    /// directory is still the one to ask. Only a directory named by the caller must match.
    fn custom_state_dir(&self) -> bool {
        self.state_dir != Path::new(DEFAULT_STATE_DIR)
    }

    /// The daemon's answer, its error turned into [`ControlError::Daemon`].
    fn send(&self, request: &Request) -> Result<Option<Response>, ControlError> {
        match self::request(&self.socket, request, request.timeout())? {
            Some(Response::Error { message }) => Err(ControlError::Daemon { message }),
            answer => Ok(answer),
        }
    }

    fn owns_state_dir(&self, status: &DaemonStatus) -> bool {
        if !self.custom_state_dir() {
            return true;
        }
        let canonical = |dir: &Path| fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
        canonical(&status.state_dir) == canonical(&self.state_dir)
    }

    /// `None` (no daemon) passes through; any other answer than the one asked for is an error.
    fn unexpected<T>(
        &self,
        request: &Request,
        answer: Option<Response>,
    ) -> Result<Option<T>, ControlError> {
        match answer {
            None => Ok(None),
            Some(answer) => Err(ControlError::Unexpected {
                path: self.socket.clone(),
                request: request.name(),
                answer: answer.name(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("ledger.json: {source}")]
    struct Outer {
        source: Inner,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("bad checksum")]
    struct Inner;

    impl Outer {
        fn quoting() -> Outer {
            Outer { source: Inner }
        }
    }

    #[test]
    fn an_error_is_one_line_without_repeated_causes() {
        let Response::Error { message } = Response::error(&Outer::quoting()) else {
            panic!("not an error");
        };
        assert_eq!(message, "ledger.json: bad checksum");
    }

    #[test]
    fn requests_are_readable_json_lines() {
        let revert = Request::Revert {
            which: RevertRequest::Target("vm:web1".to_owned()),
        };
        assert_eq!(
            serde_json::to_string(&revert).unwrap(),
            r#"{"revert":{"which":{"target":"vm:web1"}}}"#
        );
        assert_eq!(
            serde_json::to_string(&Request::Status).unwrap(),
            r#""status""#
        );
        let verify: Request = serde_json::from_str(
            r#"{"verify":{"target":"pid:4000","options":{"sample_ms":1500}}}"#,
        )
        .unwrap();
        assert_eq!(
            verify.timeout(),
            Duration::from_millis(1500) + DAEMON_MARGIN
        );
    }

    #[test]
    fn libvirt_events_and_answers_are_readable_json_lines() {
        let release = Request::Libvirt {
            event: LibvirtEvent {
                op: LibvirtOp::Release,
                domain: "nn1".to_owned(),
                request: None,
                vcpus: 2,
            },
        };
        assert_eq!(
            serde_json::to_string(&release).unwrap(),
            r#"{"libvirt":{"event":{"op":"release","domain":"nn1","request":null,"vcpus":2}}}"#
        );
        assert_eq!(release.timeout(), LIBVIRT_TIMEOUT);
        let refused = Response::Libvirt(LibvirtAnswer::Refused {
            reason: "vm:nn1 asks for 2 exclusive cores".to_owned(),
        });
        assert_eq!(
            serde_json::to_string(&refused).unwrap(),
            r#"{"libvirt":{"refused":{"reason":"vm:nn1 asks for 2 exclusive cores"}}}"#
        );
        let noted: Response = serde_json::from_str(r#"{"libvirt":"noted"}"#).unwrap();
        assert!(matches!(noted, Response::Libvirt(LibvirtAnswer::Noted)));
    }
}
