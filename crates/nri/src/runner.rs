//! The plugin's life across connections: dial the runtime, register, serve until the
//! connection ends, and dial again with backoff. The runtime restarting ends the connection,
//! and NRI v0.6 cannot make the runtime wait for a plugin, so reconnecting is ours to do;
//! Synchronize then re-fences what was created meanwhile.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use nearnative_host::CpuSet;

use crate::admission::AdmissionBackend;
use crate::connection::Closer;
use crate::nri_plugin::{Log, NriPlugin};
use crate::{Connection, Error};

/// containerd's and CRI-O's NRI socket.
pub const DEFAULT_SOCKET: &str = "/var/run/nri/nri.sock";
/// The name the runtime knows the plugin by.
pub const PLUGIN_NAME: &str = "nearnative";
/// Where the plugin sits among others: the runtime calls them in ascending index.
pub const DEFAULT_INDEX: u8 = 10;

/// The first wait before dialing again, doubled after each failed attempt up to the most.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MOST_BACKOFF: Duration = Duration::from_secs(5);

/// Where and as what the plugin registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub socket: PathBuf,
    pub name: String,
    pub index: u8,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            socket: PathBuf::from(DEFAULT_SOCKET),
            name: PLUGIN_NAME.to_owned(),
            index: DEFAULT_INDEX,
        }
    }
}

/// Runs the plugin, connection after connection, until [`stop`](Runner::stop).
pub struct Runner {
    settings: Settings,
    backend: Arc<dyn AdmissionBackend>,
    log: Log,
    stop: Mutex<StopState>,
    stopped: Condvar,
}

#[derive(Default)]
struct StopState {
    stopped: bool,
    /// The live connection, for `stop` to end it.
    current: Option<Closer>,
}

impl Runner {
    pub fn new(settings: Settings, backend: Arc<dyn AdmissionBackend>, log: Log) -> Runner {
        Runner {
            settings,
            backend,
            log,
            stop: Mutex::new(StopState::default()),
            stopped: Condvar::new(),
        }
    }

    /// Serves the runtime until [`stop`](Runner::stop). `online` gives the node's online
    /// CPUs, read again for each connection. Each change of what goes wrong is logged once.
    pub fn run(&self, online: &dyn Fn() -> Result<CpuSet, String>) {
        let mut backoff = FIRST_BACKOFF;
        let mut last_problem = String::new();
        while !self.is_stopped() {
            let outcome = online()
                .map_err(|reason| format!("NRI: cannot read the online CPUs: {reason}"))
                .and_then(|online| self.serve_once(online).map_err(|err| err.to_string()));
            match outcome {
                Ok(()) if self.is_stopped() => return,
                Ok(()) => {
                    (self.log)(&format!(
                        "NRI: the runtime on {} went away; dialing again",
                        self.settings.socket.display()
                    ));
                    backoff = FIRST_BACKOFF;
                    last_problem.clear();
                }
                Err(problem) => {
                    if problem != last_problem {
                        (self.log)(&format!("{problem}; dialing again until it answers"));
                        last_problem = problem;
                    }
                    backoff = (backoff * 2).min(MOST_BACKOFF);
                }
            }
            self.sleep(backoff);
        }
    }

    /// Ends [`run`](Runner::run): the live connection is closed, a wait cut short.
    pub fn stop(&self) {
        let mut state = lock(&self.stop);
        state.stopped = true;
        if let Some(current) = state.current.take() {
            current.close();
        }
        self.stopped.notify_all();
    }

    /// One connection: `Ok` once it was registered and then ended, the reason otherwise.
    fn serve_once(&self, online: CpuSet) -> Result<(), Error> {
        let (plugin, refencer) =
            NriPlugin::new(Arc::clone(&self.backend), online, Arc::clone(&self.log));
        let connection = Connection::open(&self.settings.socket, Arc::new(plugin))?;
        if !self.watch(&connection) {
            connection.close();
            return connection.wait();
        }
        let client = connection.client();
        let refencing = thread::Builder::new()
            .name("nri-refencer".to_owned())
            .spawn(move || refencer.run(&client));
        let refencing = match refencing {
            Ok(handle) => handle,
            Err(source) => {
                connection.close();
                // The connection's own end is not the news here: the thread is.
                let _ = connection.wait();
                return Err(Error::Spawn {
                    socket: self.settings.socket.clone(),
                    thread: "nri-refencer",
                    source,
                });
            }
        };
        let registered = connection
            .client()
            .register_plugin(&self.settings.name, self.settings.index);
        if registered.is_ok() {
            (self.log)(&format!(
                "NRI: registered as {} (index {:02}) on {}",
                self.settings.name,
                self.settings.index,
                self.settings.socket.display()
            ));
        } else {
            connection.close();
        }
        let ended = connection.wait();
        lock(&self.stop).current = None;
        // It ends with the plugin, which the connection dropped; a panic in it was its own.
        let _ = refencing.join();
        registered.and(ended)
    }

    /// Lets `stop` close `connection`; false when stopped already.
    fn watch(&self, connection: &Connection) -> bool {
        let mut state = lock(&self.stop);
        if state.stopped {
            return false;
        }
        state.current = Some(connection.closer());
        true
    }

    fn is_stopped(&self) -> bool {
        lock(&self.stop).stopped
    }

    fn sleep(&self, pause: Duration) {
        let state = lock(&self.stop);
        // Woken early by stop; a spurious wake-up only shortens one pause.
        let _ = self
            .stopped
            .wait_timeout_while(state, pause, |state| !state.stopped);
    }
}

/// A poisoned lock only means a thread panicked holding it; the flag is still right.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
