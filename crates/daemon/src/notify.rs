//! systemd's notify protocol (sd_notify(3)): READY=1 once the daemon has adopted its state,
//! WATCHDOG=1 from the loop, STOPPING=1 on the way out, STATUS= for `systemctl status`.
//!
//! The protocol is one datagram of `KEY=VALUE` lines to the unix socket named by
//! `NOTIFY_SOCKET`: a path, or an abstract address written with a leading `@`. It is small
//! enough to write over std's [`UnixDatagram`] rather than link libsystemd or pull a crate.
//!
//! A [`Notifier`] is built once, from the environment ([`Notifier::from_env`]) or from an
//! explicit address ([`Notifier::for_address`], for tests and callers that know better). Without
//! `NOTIFY_SOCKET` (the daemon run by hand, or by another supervisor) it is disabled and every
//! call is a successful no-op, so the caller needs no branch of its own. Sends return their
//! error rather than log it: the caller logs the first one and carries on, since a supervisor
//! that stops listening is no reason to stop keeping workloads latency-sensitive.
//!
//! The environment is read, never unset (as `sd_notify(unset_environment=1)` would): changing
//! the environment of a running multi-threaded process races every other reader, and the
//! daemon starts no children that could misuse the variables. The unit's `NotifyAccess=main`
//! makes systemd ignore anyone else anyway.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where notifications go, and how often the watchdog wants to hear from us.
///
/// Invariant: `watchdog` is `Some` only when `target` is: a watchdog interval with nobody to
/// ping would only make the caller wake up for nothing.
#[derive(Debug)]
pub struct Notifier {
    target: Option<Target>,
    watchdog: Option<Duration>,
}

#[derive(Debug)]
struct Target {
    socket: UnixDatagram,
    address: SocketAddr,
}

impl Notifier {
    /// A notifier for the socket systemd passed in `NOTIFY_SOCKET`, disabled when it is unset,
    /// with the watchdog interval from `WATCHDOG_USEC` and `WATCHDOG_PID`.
    ///
    /// Fails when `NOTIFY_SOCKET` is set to something that is not a unix socket address (a
    /// `vsock:` address, say) or a socket cannot be made; the error names the value.
    pub fn from_env() -> io::Result<Self> {
        Self::from_lookup(|name| std::env::var_os(name), std::process::id())
    }

    /// A notifier for `address` (a path, or `@name` for an abstract socket), without a
    /// watchdog interval.
    pub fn for_address(address: &OsStr) -> io::Result<Self> {
        Ok(Self {
            target: Some(Target::new(address)?),
            watchdog: None,
        })
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Self {
        Self {
            target: None,
            watchdog: None,
        }
    }

    /// The environment read through `lookup`, so tests need not change the process's own.
    fn from_lookup(
        lookup: impl Fn(&str) -> Option<std::ffi::OsString>,
        our_pid: u32,
    ) -> io::Result<Self> {
        let Some(address) = lookup("NOTIFY_SOCKET").filter(|a| !a.is_empty()) else {
            return Ok(Self::disabled());
        };
        let watchdog = watchdog_interval_from(
            lookup("WATCHDOG_USEC").as_deref(),
            lookup("WATCHDOG_PID").as_deref(),
            our_pid,
        );
        Ok(Self {
            target: Some(Target::new(&address)?),
            watchdog,
        })
    }

    /// Whether notifications go anywhere.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Tells systemd the daemon is up (its state adopted, its socket bound); `status` shows
    /// in `systemctl status`. `systemctl start` returns only after this.
    pub fn ready(&self, status: &str) -> io::Result<()> {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)))
    }

    /// Tells the watchdog the loop is alive. Send at [`Notifier::watchdog_interval`].
    pub fn watchdog(&self) -> io::Result<()> {
        self.send("WATCHDOG=1")
    }

    /// Tells systemd the daemon is shutting down, so a slow exit is not taken for a hang.
    pub fn stopping(&self) -> io::Result<()> {
        self.send("STOPPING=1")
    }

    /// Replaces the one-line status `systemctl status` shows.
    pub fn status(&self, text: &str) -> io::Result<()> {
        self.send(&format!("STATUS={}", one_line(text)))
    }

    /// How often to call [`Notifier::watchdog`]: half of the unit's `WatchdogSec=`, as
    /// sd_watchdog_enabled(3) advises, so one late wake-up is not fatal. `None` when systemd
    /// runs no watchdog for this process (or nothing listens at all).
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    fn send(&self, message: &str) -> io::Result<()> {
        let Some(target) = &self.target else {
            return Ok(());
        };
        target
            .socket
            .send_to_addr(message.as_bytes(), &target.address)
            .map(|_| ())
            .map_err(|e| with_context(e, "cannot notify systemd at", target.address_text()))
    }
}

impl Target {
    fn new(address: &OsStr) -> io::Result<Self> {
        let text = address.to_string_lossy();
        let address = parse_address(address)?;
        let socket = UnixDatagram::unbound()
            .map_err(|e| with_context(e, "cannot make a socket to notify systemd at", &text))?;
        Ok(Self { socket, address })
    }

    fn address_text(&self) -> String {
        match (self.address.as_pathname(), self.address.as_abstract_name()) {
            (Some(path), _) => path.display().to_string(),
            (None, Some(name)) => format!("@{}", String::from_utf8_lossy(name)),
            (None, None) => "an unnamed socket".to_owned(),
        }
    }
}

/// `NOTIFY_SOCKET`'s value as a socket address: an absolute path, or `@name` for the
/// abstract namespace (the `@` standing for the leading NUL byte).
fn parse_address(address: &OsStr) -> io::Result<SocketAddr> {
    let bytes = address.as_bytes();
    match bytes.first() {
        Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]),
        Some(b'/') => SocketAddr::from_pathname(address),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "NOTIFY_SOCKET {:?} is neither a path nor an abstract socket (@name)",
                address.to_string_lossy()
            ),
        )),
    }
}

/// Half of `WATCHDOG_USEC` when the watchdog is meant for `our_pid`: `WATCHDOG_PID` unset
/// (systemd leaves it out in older versions) or equal to it. A value that does not parse, or
/// zero, means no watchdog, as sd_watchdog_enabled(3) reads it.
fn watchdog_interval_from(
    usec: Option<&OsStr>,
    pid: Option<&OsStr>,
    our_pid: u32,
) -> Option<Duration> {
    let usec: u64 = usec?.to_str()?.parse().ok().filter(|&usec| usec > 0)?;
    let for_us = match pid {
        None => true,
        Some(pid) => pid.to_str().and_then(|p| p.parse::<u32>().ok()) == Some(our_pid),
    };
    for_us.then(|| Duration::from_micros(usec / 2))
}

/// STATUS= takes one line: the next newline would start a key of its own.
fn one_line(text: &str) -> String {
    text.replace('\n', " ")
}

fn with_context(err: io::Error, what: &str, address: impl std::fmt::Display) -> io::Error {
    io::Error::new(err.kind(), format!("{what} {address}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::ffi::OsString;

    /// One of the notifier's sends.
    type Call = fn(&Notifier) -> io::Result<()>;

    /// A listening socket and the `NOTIFY_SOCKET` value that names it.
    fn listener(abstract_name: bool) -> (UnixDatagram, OsString, Option<tempfile::TempDir>) {
        if abstract_name {
            let name = format!(
                "nearnative-notify-test-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            );
            let address = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
            let socket = UnixDatagram::bind_addr(&address).unwrap();
            (socket, format!("@{name}").into(), None)
        } else {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("notify.sock");
            let socket = UnixDatagram::bind(&path).unwrap();
            (socket, path.into_os_string(), Some(dir))
        }
    }

    fn received(socket: &UnixDatagram) -> String {
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn each_call_sends_its_datagram_to_a_path_and_an_abstract_socket() {
        for abstract_name in [false, true] {
            let (socket, address, _dir) = listener(abstract_name);
            let notifier = Notifier::for_address(&address).unwrap();
            assert!(notifier.is_enabled());
            let cases: [(&str, Call, &str); 4] = [
                (
                    "ready, status on one line",
                    |n| n.ready("adopted 2\nworkloads"),
                    "READY=1\nSTATUS=adopted 2 workloads",
                ),
                ("watchdog", Notifier::watchdog, "WATCHDOG=1"),
                ("stopping", Notifier::stopping, "STOPPING=1"),
                ("status", |n| n.status("3 applied"), "STATUS=3 applied"),
            ];
            for (what, call, expected) in cases {
                call(&notifier).unwrap();
                assert_eq!(received(&socket), expected, "{what}, {address:?}");
            }
        }
    }

    #[test]
    fn the_environment_names_the_socket_and_the_watchdog() {
        let (socket, address, _dir) = listener(false);
        let env: HashMap<&str, OsString> = HashMap::from([
            ("NOTIFY_SOCKET", address),
            ("WATCHDOG_USEC", "30000000".into()),
            ("WATCHDOG_PID", "4242".into()),
        ]);
        let notifier = Notifier::from_lookup(|name| env.get(name).cloned(), 4242).unwrap();
        notifier.watchdog().unwrap();
        assert_eq!(received(&socket), "WATCHDOG=1");
        assert_eq!(notifier.watchdog_interval(), Some(Duration::from_secs(15)));
    }

    #[test]
    fn without_notify_socket_every_call_is_a_no_op() {
        let env: HashMap<&str, OsString> = HashMap::from([("WATCHDOG_USEC", "30000000".into())]);
        let notifier = Notifier::from_lookup(|name| env.get(name).cloned(), 1).unwrap();
        assert!(!notifier.is_enabled());
        assert_eq!(notifier.watchdog_interval(), None);
        notifier.ready("up").unwrap();
        notifier.watchdog().unwrap();
        notifier.stopping().unwrap();
        notifier.status("up").unwrap();
    }

    #[test]
    fn the_watchdog_is_ours_only_for_our_pid() {
        // (what, WATCHDOG_USEC, WATCHDOG_PID, expected interval), our pid being 7.
        type Case = (
            &'static str,
            Option<&'static str>,
            Option<&'static str>,
            Option<Duration>,
        );
        let cases: [Case; 6] = [
            (
                "no pid given",
                Some("2000000"),
                None,
                Some(Duration::from_secs(1)),
            ),
            (
                "our pid",
                Some("2000000"),
                Some("7"),
                Some(Duration::from_secs(1)),
            ),
            ("another pid", Some("2000000"), Some("8"), None),
            ("no watchdog", None, Some("7"), None),
            ("zero", Some("0"), None, None),
            ("garbage", Some("30s"), None, None),
        ];
        for (what, usec, pid, expected) in cases {
            let interval = watchdog_interval_from(usec.map(OsStr::new), pid.map(OsStr::new), 7);
            assert_eq!(interval, expected, "{what}");
        }
    }

    #[test]
    fn an_address_neither_path_nor_abstract_is_refused_by_name() {
        let err = Notifier::for_address(OsStr::new("vsock:2:1234")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("vsock:2:1234"), "{err}");
    }

    #[test]
    fn a_socket_nobody_listens_on_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone.sock");
        let notifier = Notifier::for_address(path.as_os_str()).unwrap();
        let err = notifier.ready("up").unwrap_err();
        assert!(err.to_string().contains("gone.sock"), "{err}");
    }
}
