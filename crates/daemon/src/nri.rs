//! The NRI plugin's thread: [`nearnative_nri::Runner`] dialing the runtime, registering as
//! `nearnative`, serving it and dialing again with backoff, on the engine-backed
//! [`crate::kubernetes::EngineBackend`]; stopped with the daemon.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use nearnative_host::{CpuSet, Root};
use nearnative_nri::runner::{Settings, PLUGIN_NAME};
use nearnative_nri::{AdmissionBackend, Runner};

use crate::daemon::DaemonError;

/// The plugin's thread, running until [`Plugin::stop`].
pub struct Plugin {
    runner: Arc<Runner>,
    thread: JoinHandle<()>,
}

/// Starts the plugin on `socket` at `index`.
pub fn start(
    socket: &Path,
    index: u8,
    backend: Arc<dyn AdmissionBackend>,
) -> Result<Plugin, DaemonError> {
    let settings = Settings {
        socket: socket.to_owned(),
        name: PLUGIN_NAME.to_owned(),
        index,
    };
    let runner = Arc::new(Runner::new(
        settings,
        backend,
        Arc::new(|line: &str| crate::log::line(line)),
    ));
    let serving = Arc::clone(&runner);
    let thread = std::thread::Builder::new()
        .name("nri-plugin".to_owned())
        .spawn(move || serving.run(&online_cpus))
        .map_err(|source| DaemonError::NriThread {
            socket: socket.to_owned(),
            source,
        })?;
    Ok(Plugin { runner, thread })
}

impl Plugin {
    /// Closes the connection and waits for the thread; containers stay as they are.
    pub fn stop(self) {
        self.runner.stop();
        // A panic of the plugin's thread was logged by the panic hook; nothing to add.
        let _ = self.thread.join();
    }
}

/// The node's online CPUs, read again for each connection.
fn online_cpus() -> Result<CpuSet, String> {
    let root = Root::default();
    let path = "/sys/devices/system/cpu/online";
    root.read_trimmed(path)
        .map_err(|e| e.to_string())
        .and_then(|text| CpuSet::parse_list(&text).map_err(|e| format!("{path}: {e}")))
}
