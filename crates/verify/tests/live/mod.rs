//! Live sampling on this machine: the tests start their own busy threads on CPU 1 and check
//! that the sampler names them, or not, as it should. Other processes of the host may run on
//! CPU 1 too; the tests only assert on their own threads.

mod scope;
mod threads;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use nearnative_host::{CpuSet, Root};
use nearnative_sys::pin::{pin_current_thread, pin_current_thread_to, set_thread_affinity};
use nearnative_verify::{sample, Sample, SampleSpec, Scope};

/// The CPU the tests make "exclusive" and crowd with their own threads.
pub const CPU: u32 = 1;
pub const SECOND: Duration = Duration::from_secs(1);

/// Live tests measure CPU 1 and must not see each other's threads there.
static LIVE: Mutex<()> = Mutex::new(());

pub fn serialize() -> MutexGuard<'static, ()> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Fails the test, naming what is missing, on a host without the CPUs the tests use.
#[track_caller]
pub fn need_cpus() {
    let online = nearnative_host::cpus::online_cpus(&Root::default()).unwrap();
    assert!(
        online.contains(0) && online.contains(CPU),
        "needs online CPUs 0 and {CPU}, have {online}"
    );
}

pub fn gettid() -> u32 {
    nix::unistd::gettid().as_raw() as u32
}

/// A thread of this test that spins on CPU 1 until dropped.
pub struct Busy {
    pub tid: u32,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Busy {
    /// Starts `name`, which first runs `setup` with its own tid (to join a cgroup, which
    /// resets its affinity), then pins itself to CPU 1 and spins.
    pub fn start(name: &str, setup: impl FnOnce(u32) + Send + 'static) -> Busy {
        let stop = Arc::new(AtomicBool::new(false));
        let (send, receive) = mpsc::channel();
        let spin = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let tid = gettid();
                setup(tid);
                pin_current_thread(CPU).unwrap();
                send.send(tid).unwrap();
                while !spin.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
            .unwrap();
        Busy {
            tid: receive.recv().unwrap(),
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Keeps every other thread of this process (the test harness, the calling thread) off CPU 1
/// while it lives, so a sample of CPU 1 sees only the threads a test started there. Threads
/// the harness starts afterwards for other tests run where they like: `pinned` says which
/// were kept off.
pub struct OffCpu {
    pinned: Vec<u32>,
}

impl OffCpu {
    pub fn new() -> OffCpu {
        let housekeeping = CpuSet::from_ids([0]);
        pin_current_thread_to(&housekeeping).unwrap();
        let pinned = own_threads();
        for &tid in &pinned {
            set_affinity(tid, &[0]);
        }
        OffCpu { pinned }
    }

    pub fn pinned(&self, tid: u32) -> bool {
        self.pinned.contains(&tid)
    }
}

impl Drop for OffCpu {
    fn drop(&mut self) {
        let online: Vec<u32> = nearnative_host::cpus::online_cpus(&Root::default())
            .map(|s| s.iter().collect())
            .unwrap_or_default();
        for tid in own_threads() {
            set_affinity(tid, &online);
        }
    }
}

fn own_threads() -> Vec<u32> {
    Root::default()
        .list_dir("/proc/self/task")
        .unwrap()
        .iter()
        .filter_map(|t| t.parse().ok())
        .collect()
}

fn set_affinity(tid: u32, cpus: &[u32]) {
    // A thread that exited meanwhile is fine to miss.
    let _ = set_thread_affinity(tid, &CpuSet::from_ids(cpus.iter().copied()));
}

/// Samples CPU 1 for a second with `targets` as the workload.
pub fn sample_cpu(targets: &[u32], scope: Option<Scope>) -> Sample {
    let mut spec = SampleSpec::new(CpuSet::from_ids([CPU]));
    spec.targets = targets.iter().copied().collect::<BTreeSet<u32>>();
    spec.scope = scope;
    sample(&Root::default(), &spec, SECOND, &AtomicBool::new(false)).unwrap()
}
