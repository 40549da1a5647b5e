//! The wake-up sources of the reconcile loop: the netlink proc connector, pidfds, inotify on
//! `cgroup.events` and the policy directory, and the signals.
//!
//! An event only wakes the loop, with a hint of what changed; the loop reads the host again and
//! decides. So a source may report too much (a fork the loop had already seen, an exit both the
//! proc connector and a pidfd report) but it must not sit on what it saw. Each source runs on a
//! thread of its own, blocked in `poll(2)` with the others' shared stop bell: the daemon costs
//! nothing while the host is quiet, and dropping [`Events`] ends and joins every thread and
//! closes every descriptor.

mod inotify;
mod pidfd;
mod proc_connector;

use std::collections::BTreeSet;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use nearnative_sys::signal::{forward_signals, SignalError, SignalForwarder};
use rustix::event::{eventfd, EventfdFlags};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use self::inotify::FileWatches;
use self::pidfd::PidfdWatch;
use self::proc_connector::ProcConnector;

/// Why the loop woke: a hint of where to look, never the state itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// A process exec'd (any process on the host: it may be a new workload).
    Exec { pid: u32 },
    /// A new thread in a watched process.
    Thread { tgid: u32, tid: u32 },
    /// A new process whose parent is watched.
    Fork { parent_tgid: u32, child_pid: u32 },
    /// A watched process exited.
    Exit { pid: u32 },
    /// A watched cgroup's `cgroup.events` changed: it became populated or empty (a cgroup is
    /// emptied before it can be removed).
    CgroupEvents { dir: PathBuf },
    /// Something in the policy directory was created, written, moved or deleted, or the
    /// directory itself appeared or went away.
    PolicyDir,
    /// The kernel dropped process events (the socket's buffer overran): anything may have
    /// started or exited unseen, so the loop should sweep now.
    Overrun,
    /// A request on the control socket changed the ledger (a CLI apply or revert): the loop
    /// should sweep now, so that what it freed or took shows at once.
    Control,
    /// SIGHUP.
    Hangup,
    /// SIGTERM or SIGINT.
    Terminate,
}

/// A source could not be started.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("cannot create an eventfd to wake the event threads")]
    Eventfd(#[source] io::Error),
    #[error("cannot start inotify for the policy directory and cgroup.events")]
    Inotify(#[source] nix::Error),
    #[error("cannot start thread {name}")]
    Spawn {
        name: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot forward SIGHUP, SIGTERM and SIGINT to the loop")]
    Signals(#[source] SignalError),
}

/// The running sources. Dropping it stops them all.
#[derive(Debug)]
pub struct Events {
    stop: Arc<Bell>,
    connector: Option<Arc<ProcConnector>>,
    pidfds: Arc<PidfdWatch>,
    files: Arc<FileWatches>,
    /// Set at start (the proc connector's absence) or when its filter could not follow the
    /// watched set.
    connector_note: Mutex<Option<String>>,
    threads: Vec<JoinHandle<()>>,
    signals: Option<SignalForwarder>,
}

impl Events {
    /// Starts the sources, each on its own thread, sending into `tx`. The proc connector
    /// needing root (CAP_NET_ADMIN) and failing is not an error: [`Events::notes`] says so, and
    /// the loop's sweep alone finds new and exited workloads.
    pub fn start(tx: Sender<Wake>, policy_dir: &Path) -> Result<Events, EventsError> {
        let (connector, connector_note) = match ProcConnector::subscribe() {
            Ok(connector) => (Some(Arc::new(connector)), None),
            Err(error) => (
                None,
                Some(format!(
                    "proc connector unavailable ({error}): the sweep alone finds new and exited \
                     workloads"
                )),
            ),
        };
        let mut events = Events {
            stop: Arc::new(Bell::new().map_err(EventsError::Eventfd)?),
            connector,
            pidfds: Arc::new(PidfdWatch::new().map_err(EventsError::Eventfd)?),
            files: Arc::new(FileWatches::new(policy_dir).map_err(EventsError::Inotify)?),
            connector_note: Mutex::new(connector_note),
            threads: Vec::new(),
            signals: None,
        };
        // Each thread pushed as soon as it runs, so an error below still stops the earlier ones
        // when `events` is dropped.
        if let Some(connector) = events.connector.clone() {
            let (stop, tx) = (Arc::clone(&events.stop), tx.clone());
            events.spawn("nn-proc-connector", move || connector.run(&stop, &tx))?;
        }
        let (pidfds, stop, pidfd_tx) = (
            Arc::clone(&events.pidfds),
            Arc::clone(&events.stop),
            tx.clone(),
        );
        events.spawn("nn-pidfd", move || pidfds.run(&stop, &pidfd_tx))?;
        let (files, stop, file_tx) = (
            Arc::clone(&events.files),
            Arc::clone(&events.stop),
            tx.clone(),
        );
        events.spawn("nn-inotify", move || files.run(&stop, &file_tx))?;
        events.signals = Some(
            forward_signals("nn-signals", &[SIGHUP, SIGTERM, SIGINT], move |signal| {
                let wake = if signal == SIGHUP {
                    Wake::Hangup
                } else {
                    Wake::Terminate
                };
                // The loop is gone only when the daemon is on its way out anyway.
                let _ = tx.send(wake);
            })
            .map_err(EventsError::Signals)?,
        );
        Ok(events)
    }

    fn spawn(
        &mut self,
        name: &'static str,
        body: impl FnOnce() + Send + 'static,
    ) -> Result<(), EventsError> {
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(body)
            .map_err(|source| EventsError::Spawn { name, source })?;
        self.threads.push(thread);
        Ok(())
    }

    /// What is not watched and why, one sentence each, for the log and `status`.
    pub fn notes(&self) -> Vec<String> {
        let connector = self
            .connector_note
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        connector.into_iter().chain(self.files.notes()).collect()
    }

    /// The processes (tgids) whose exit and new threads matter now; replaces the previous set.
    /// Opens a pidfd per new pid and closes the ones no longer wanted (on the pidfd thread),
    /// and narrows the proc connector's filter to them.
    pub fn watch_processes(&self, pids: &BTreeSet<u32>) {
        self.pidfds.watch(pids);
        let Some(connector) = &self.connector else {
            return;
        };
        if let Err(error) = connector.watch(pids) {
            *self
                .connector_note
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(format!(
                "cannot update the proc connector's filter ({error}): the sweep finds new \
                 threads and processes of watched workloads"
            ));
        }
    }

    /// The cgroup directories whose `cgroup.events` matter now; replaces the previous set. A
    /// directory without `cgroup.events` (cgroup v1) is skipped, and [`Events::notes`] says the
    /// sweep covers it.
    pub fn watch_cgroups(&self, dirs: &[PathBuf]) {
        self.files.watch_cgroups(dirs);
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.stop.ring();
        self.signals.take();
        for thread in self.threads.drain(..) {
            // A panicking source already printed why; the others still stop.
            let _ = thread.join();
        }
    }
}

/// An eventfd one thread rings to wake another out of `poll(2)`.
#[derive(Debug)]
pub(crate) struct Bell(OwnedFd);

impl Bell {
    pub(crate) fn new() -> io::Result<Bell> {
        Ok(Bell(eventfd(
            0,
            EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK,
        )?))
    }

    /// Makes the bell readable until cleared.
    pub(crate) fn ring(&self) {
        // Fails only when the counter would overflow, and then the bell is readable anyway.
        let _ = rustix::io::write(&self.0, &1u64.to_ne_bytes());
    }

    pub(crate) fn clear(&self) {
        let mut count = [0u8; 8];
        // Fails (EAGAIN) only when it was not rung: cleared already.
        let _ = rustix::io::read(&self.0, &mut count);
    }
}

impl AsFd for Bell {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}
