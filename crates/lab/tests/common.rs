//! Shared helpers: root detection, the host's lab objects, closed-loop probes over a path.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use nearnative_probe::rtt::{ClientConfig, RunLength};

/// Root tests change the host's namespace list, so they run one at a time to compare it.
static ROOT_TESTS: Mutex<()> = Mutex::new(());

/// Serialises root tests (marked `#[ignore = "needs root: ..."]`); fails the test at once,
/// in one line, when not root. In a child process a test started
/// ([`child_command`](crate::child::child_command)) it plays the child's part and exits
/// instead, before anything else: the preflight child runs as another user.
#[track_caller]
pub fn root_test() -> MutexGuard<'static, ()> {
    crate::child::run_if_child();
    assert!(
        nix::unistd::geteuid().is_root(),
        "needs root to create network namespaces"
    );
    ROOT_TESTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The host's namespaces, interfaces and lab cgroups.
pub use nearnative_lab::leftovers::HostNames as NetState;

pub fn net_state() -> NetState {
    NetState::read(&nearnative_host::Root::default()).unwrap()
}

/// `assert_restored` on a listing taken after a run.
pub trait Restored {
    /// Fails unless nothing a lab names was added or removed since `before`, and nothing else
    /// that was there before is gone (other software may add its own meanwhile).
    fn assert_restored(&self, before: &NetState);
}

impl Restored for NetState {
    fn assert_restored(&self, before: &NetState) {
        if let Err(difference) = self.restored_from(before) {
            panic!("not restored: {difference}");
        }
    }
}

/// A closed-loop UDP probe of `count` round trips with a short warm-up.
pub fn closed_loop(target: String, count: u64) -> ClientConfig {
    let mut config = ClientConfig::new(target);
    config.length = RunLength::Count(count);
    config.warmup = Duration::from_millis(100);
    config.timeout = Duration::from_millis(200);
    config
}
