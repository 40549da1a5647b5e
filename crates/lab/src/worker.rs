//! A measured thread that outlives its runs: it is started (and its thread id known) before
//! the latency-sensitive apply names it, parks waiting for work, and then runs one job after
//! another, each inside the network namespace the job asks for.
//!
//! The lab's client and server are such threads, so that one apply covers every path: the
//! thread that the plan made exclusive is the very thread that measures. `setns` with
//! `CLONE_NEWNET` changes only the calling thread, and a worker can go back to the namespace
//! it started in (the host's, for the loopback path) through the handle it opened first.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use crate::netns::{self, NetnsError};

/// How often a caller waiting for a job looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot start thread {name}")]
    Spawn {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("thread {name} cannot open its own network namespace")]
    Home {
        name: String,
        #[source]
        source: NetnsError,
    },
    #[error("thread {name}: cannot enter the job's network namespace")]
    Enter {
        name: String,
        #[source]
        source: NetnsError,
    },
    #[error("thread {name} ended (a job panicked?)")]
    Gone { name: String },
    #[error("stopped while waiting for thread {name}")]
    Stopped { name: String },
}

type Job = Box<dyn FnOnce(&Home) + Send>;

/// The namespace a worker started in, to return to.
struct Home {
    file: File,
    path: PathBuf,
}

/// A parked worker thread. Dropping it lets the thread end after its current job, without
/// waiting for it: a job stuck in a measurement must not hold up cleanup.
pub struct Worker {
    name: String,
    tid: u32,
    jobs: Sender<Job>,
}

impl Worker {
    /// Starts the thread `name` and returns once it runs and its id is known.
    pub fn spawn(name: &str) -> Result<Worker, WorkerError> {
        let (ready_sender, ready) = mpsc::sync_channel(1);
        let (jobs, job_receiver) = mpsc::channel::<Job>();
        let thread_name = name.to_owned();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let home = match netns::current() {
                    Ok((file, path)) => Home { file, path },
                    Err(source) => {
                        let _ = ready_sender.send(Err(WorkerError::Home {
                            name: thread_name,
                            source,
                        }));
                        return;
                    }
                };
                let tid = nix::unistd::gettid().as_raw().unsigned_abs();
                if ready_sender.send(Ok(tid)).is_err() {
                    return;
                }
                for job in job_receiver {
                    job(&home);
                }
            })
            .map_err(|source| WorkerError::Spawn {
                name: name.to_owned(),
                source,
            })?;
        let gone = || WorkerError::Gone {
            name: name.to_owned(),
        };
        let tid = ready.recv().map_err(|_| gone())??;
        Ok(Worker {
            name: name.to_owned(),
            tid,
            jobs,
        })
    }

    /// The thread's id, as the engine's `--threads` takes it.
    pub fn tid(&self) -> u32 {
        self.tid
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `work` on the thread inside `netns` (`None`: the namespace the thread started
    /// in), after any job queued before it.
    pub fn submit<T: Send + 'static>(
        &self,
        netns: Option<&str>,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<Pending<T>, WorkerError> {
        let (result_sender, result) = mpsc::sync_channel(1);
        let netns = netns.map(str::to_owned);
        let name = self.name.clone();
        let job: Job = Box::new(move |home| {
            let entered = match &netns {
                Some(netns) => netns::enter(netns),
                None => netns::enter_file(&home.file, home.path.clone()),
            };
            let outcome = entered
                .map(|()| work())
                .map_err(|source| WorkerError::Enter { name, source });
            let _ = result_sender.send(outcome);
        });
        self.jobs.send(job).map_err(|_| WorkerError::Gone {
            name: self.name.clone(),
        })?;
        Ok(Pending {
            name: self.name.clone(),
            result,
        })
    }
}

/// A job's result to come.
pub struct Pending<T> {
    name: String,
    result: Receiver<Result<T, WorkerError>>,
}

impl<T> Pending<T> {
    /// Waits for the result, giving up once `stop` is raised (the job goes on by itself).
    pub fn wait(self, stop: &AtomicBool) -> Result<T, WorkerError> {
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(WorkerError::Stopped { name: self.name });
            }
            match self.result.recv_timeout(STOP_POLL) {
                Ok(outcome) => return outcome,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(WorkerError::Gone { name: self.name })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[ignore = "needs root: a job without a namespace setns()es back into the worker's own"]
    fn runs_jobs_on_one_thread_that_knows_its_id() {
        let worker = Worker::spawn("nn-test-worker").unwrap();
        let stop = AtomicBool::new(false);
        let tid = worker
            .submit(None, || nix::unistd::gettid().as_raw().unsigned_abs())
            .unwrap()
            .wait(&stop)
            .unwrap();
        assert_eq!(tid, worker.tid());
        let again = worker.submit(None, || 41 + 1).unwrap().wait(&stop).unwrap();
        assert_eq!(again, 42);
    }

    #[test]
    fn a_stopped_wait_returns_at_once_and_a_missing_namespace_is_named() {
        let worker = Worker::spawn("nn-test-worker").unwrap();
        let stop = AtomicBool::new(true);
        let err = worker.submit(None, || ()).unwrap().wait(&stop).unwrap_err();
        assert!(matches!(err, WorkerError::Stopped { .. }), "{err}");
        let go = AtomicBool::new(false);
        let err = worker
            .submit(Some("nnlab-0zz-absent"), || ())
            .unwrap()
            .wait(&go)
            .unwrap_err();
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert!(source.contains("nnlab-0zz-absent"), "{source}");
    }
}
