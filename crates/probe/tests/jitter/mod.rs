//! `jitter::run` on the live machine: what a run reports, and that it sees a busy neighbour.

mod neighbour;
mod run;

use std::sync::{Mutex, MutexGuard, PoisonError};

use nearnative_host::cpus::online_cpus;
use nearnative_host::Root;

/// Live jitter tests share one CPU and the neighbour test holds it with SCHED_FIFO, so they
/// take turns: one test's load must not be another's measurement.
fn serial() -> MutexGuard<'static, ()> {
    static CPU: Mutex<()> = Mutex::new(());
    CPU.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The highest online CPU: away from CPU 0, where most housekeeping lands.
fn last_online_cpu() -> u32 {
    let online = online_cpus(&Root::default()).unwrap();
    online.iter().last().unwrap()
}
