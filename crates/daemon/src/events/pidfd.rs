//! One pidfd per watched process: it turns readable the moment the process exits, whether or
//! not the proc connector is there to say so, and it names that process and no later one that
//! reuses its pid.
//!
//! The thread polls the pidfds together with the stop bell and a bell rung when the watched set
//! changes; the set itself is handed over under a lock, and the thread alone opens and closes
//! the descriptors.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::fd::OwnedFd;
use std::sync::mpsc::Sender;
use std::sync::Mutex;

use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;
use rustix::process::{pidfd_open, Pid, PidfdFlags};

use super::{Bell, Wake};

/// The watched set, handed from the loop's thread to the pidfd thread.
#[derive(Debug)]
pub(crate) struct PidfdWatch {
    pending: Mutex<Option<BTreeSet<u32>>>,
    changed: Bell,
}

impl PidfdWatch {
    pub(crate) fn new() -> io::Result<PidfdWatch> {
        Ok(PidfdWatch {
            pending: Mutex::new(None),
            changed: Bell::new()?,
        })
    }

    /// Makes `pids` the watched set, as soon as the thread wakes.
    pub(crate) fn watch(&self, pids: &BTreeSet<u32>) {
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = Some(pids.clone());
        self.changed.ring();
    }

    /// Reports each watched process's exit to `tx` until `stop` rings or the receiver is gone.
    pub(crate) fn run(&self, stop: &Bell, tx: &Sender<Wake>) {
        let mut watched = Watched::default();
        loop {
            let Some(exited) = self.wait(stop, &watched.open) else {
                return;
            };
            let mut exited = watched.forget(exited);
            if let Some(pids) = self.take_pending() {
                exited.extend(watched.replace(pids));
            }
            for pid in exited {
                if tx.send(Wake::Exit { pid }).is_err() {
                    return;
                }
            }
        }
    }

    /// Blocks until something happens, and returns the processes whose pidfds turned readable,
    /// or `None` once `stop` rings.
    fn wait(&self, stop: &Bell, open: &BTreeMap<u32, OwnedFd>) -> Option<Vec<u32>> {
        let mut fds = Vec::with_capacity(open.len() + 2);
        fds.push(PollFd::new(stop, PollFlags::IN));
        fds.push(PollFd::new(&self.changed, PollFlags::IN));
        fds.extend(open.values().map(|fd| PollFd::new(fd, PollFlags::IN)));
        match poll(&mut fds, None) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(_) => return None,
        }
        if !fds[0].revents().is_empty() {
            return None;
        }
        let readable = fds[2..].iter().map(|fd| !fd.revents().is_empty());
        Some(
            open.keys()
                .zip(readable)
                .filter_map(|(&pid, readable)| readable.then_some(pid))
                .collect(),
        )
    }

    fn take_pending(&self) -> Option<BTreeSet<u32>> {
        self.changed.clear();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

/// The thread's own view: the set it was last given and the pidfds still open for it.
#[derive(Debug, Default)]
struct Watched {
    wanted: BTreeSet<u32>,
    open: BTreeMap<u32, OwnedFd>,
}

impl Watched {
    /// Closes the pidfds of processes that exited, and returns them.
    fn forget(&mut self, exited: Vec<u32>) -> Vec<u32> {
        for pid in &exited {
            self.open.remove(pid);
        }
        exited
    }

    /// Makes `pids` the watched set: closes the pidfds no longer wanted and opens one per new
    /// pid. Returns the new pids that had already exited. A pid that exited while watched is
    /// not opened again while it stays in the set: the number may belong to another process by
    /// now.
    fn replace(&mut self, pids: BTreeSet<u32>) -> Vec<u32> {
        self.open.retain(|pid, _| pids.contains(pid));
        let mut gone = Vec::new();
        for &pid in pids.difference(&self.wanted) {
            match open_pidfd(pid) {
                Ok(fd) => {
                    self.open.insert(pid, fd);
                }
                Err(Errno::SRCH) => gone.push(pid),
                // Not a thread-group leader (EINVAL before Linux 6.9), or out of descriptors:
                // the proc connector and the sweep still see the exit.
                Err(_) => {}
            }
        }
        self.wanted = pids;
        gone
    }
}

fn open_pidfd(pid: u32) -> Result<OwnedFd, Errno> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or(Errno::SRCH)?;
    pidfd_open(pid, PidfdFlags::empty())
}

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::sync::{mpsc, Arc};
    use std::time::Duration;

    use super::*;

    /// Without the proc connector (no root needed): the pidfd alone reports the exit.
    #[test]
    fn a_watched_process_exit_is_reported_through_its_pidfd() {
        let mut child = Command::new("/bin/sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        let (watch, stop) = (
            Arc::new(PidfdWatch::new().unwrap()),
            Arc::new(Bell::new().unwrap()),
        );
        let (tx, rx) = mpsc::channel();
        let thread = {
            let (watch, stop) = (Arc::clone(&watch), Arc::clone(&stop));
            std::thread::spawn(move || watch.run(&stop, &tx))
        };
        watch.watch(&BTreeSet::from([pid]));
        // Let the thread open the pidfd first: opening after the exit reports it too, but
        // through the other path.
        std::thread::sleep(Duration::from_millis(100));
        child.kill().unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(1)),
            Ok(Wake::Exit { pid })
        );
        child.wait().unwrap();
        stop.ring();
        thread.join().unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(1)),
            Err(mpsc::RecvTimeoutError::Disconnected)
        );
    }

    #[test]
    fn a_watched_set_opens_new_pids_and_reports_ones_already_gone() {
        let mut child = Command::new("/bin/sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        let mut watched = Watched::default();
        // Pid 0 is no process at all.
        assert_eq!(watched.replace(BTreeSet::from([pid, 0])), vec![0]);
        assert!(watched.open.contains_key(&pid));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(watched.forget(vec![pid]), vec![pid]);
        // Still wanted, but exited: not opened again.
        assert!(watched.replace(BTreeSet::from([pid, 0])).is_empty());
        assert!(watched.open.is_empty());
        assert!(watched.replace(BTreeSet::new()).is_empty());
        assert!(watched.wanted.is_empty());
    }
}
