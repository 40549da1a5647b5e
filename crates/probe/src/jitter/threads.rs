//! One measuring thread per CPU, started together.
//!
//! Each thread is named `jitter-cpuN`, pins itself first thing, takes its real-time priority
//! if asked, and prepares its state (the histogram) on its own CPU. Then it waits at a start
//! gate. The gate opens only when every thread has arrived and all set up cleanly, so the CPUs
//! cover the same window and a failure on one CPU measures nothing anywhere.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::thread;

use nearnative_host::CpuSet;

use super::realtime::set_fifo_priority;
use super::JitterError;
use nearnative_sys::pin::pin_current_thread;

/// Runs `prepare` then `measure` on a thread pinned to each CPU of `cpus`, and returns the
/// results in CPU order. The first real failure wins over the "a peer failed" of the others.
pub(super) fn on_each_cpu<S, R: Send>(
    cpus: &CpuSet,
    rt_priority: Option<u8>,
    prepare: impl Fn() -> S + Sync,
    measure: impl Fn(u32, S) -> Result<R, JitterError> + Sync,
) -> Result<Vec<R>, JitterError> {
    let gate = StartGate::default();
    let setup_failed = AtomicBool::new(false);
    let results: Vec<Result<R, JitterError>> = thread::scope(|scope| {
        let mut handles = Vec::with_capacity(cpus.len());
        let (gate, setup_failed, prepare, measure) = (&gate, &setup_failed, &prepare, &measure);
        for cpu in cpus.iter() {
            let body = move || {
                let setup = set_up(cpu, rt_priority);
                if setup.is_err() {
                    setup_failed.store(true, Ordering::SeqCst);
                }
                let state = prepare();
                if !gate.arrive_and_wait() {
                    return setup.and(Err(JitterError::PeerFailed));
                }
                measure(cpu, state)
            };
            match thread::Builder::new()
                .name(format!("jitter-cpu{cpu}"))
                .spawn_scoped(scope, body)
            {
                Ok(handle) => handles.push((cpu, handle)),
                Err(source) => {
                    gate.open(false);
                    return vec![Err(JitterError::Spawn { cpu, source })];
                }
            }
        }
        gate.wait_for(handles.len());
        gate.open(!setup_failed.load(Ordering::SeqCst));
        handles
            .into_iter()
            .map(|(cpu, handle)| handle.join().unwrap_or(Err(JitterError::Panicked { cpu })))
            .collect()
    });
    first_real_error(results)
}

fn set_up(cpu: u32, rt_priority: Option<u8>) -> Result<(), JitterError> {
    pin_current_thread(cpu).map_err(|source| JitterError::Pin { cpu, source })?;
    if let Some(priority) = rt_priority {
        set_fifo_priority(priority).map_err(|source| JitterError::Realtime {
            cpu,
            priority,
            source,
        })?;
    }
    Ok(())
}

fn first_real_error<R>(results: Vec<Result<R, JitterError>>) -> Result<Vec<R>, JitterError> {
    let mut peer_failed = false;
    let mut rows = Vec::with_capacity(results.len());
    for result in results {
        match result {
            Ok(row) => rows.push(row),
            Err(JitterError::PeerFailed) => peer_failed = true,
            Err(err) => return Err(err),
        }
    }
    match peer_failed {
        true => Err(JitterError::PeerFailed),
        false => Ok(rows),
    }
}

/// A one-shot gate: threads arrive and block until the coordinator opens it, with a verdict.
#[derive(Default)]
struct StartGate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    arrived: usize,
    verdict: Option<bool>,
}

impl StartGate {
    /// Blocks until the gate opens; true means "go", false means "abandon".
    fn arrive_and_wait(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.arrived += 1;
        self.changed.notify_all();
        loop {
            if let Some(go) = state.verdict {
                return go;
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Blocks until `count` threads have arrived.
    fn wait_for(&self, count: usize) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while state.arrived < count {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn open(&self, go: bool) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.verdict = Some(go);
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_named_pinned_and_in_cpu_order() {
        let cpus = CpuSet::from_ids([0]);
        let rows = on_each_cpu(
            &cpus,
            None,
            || (),
            |cpu, ()| {
                let name = thread::current().name().map(str::to_owned);
                let allowed = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0));
                Ok((cpu, name, allowed.map(|set| set.is_set(0))))
            },
        )
        .unwrap();
        assert_eq!(
            rows,
            vec![(0, Some("jitter-cpu0".to_owned()), Ok(Ok(true)))]
        );
    }

    #[test]
    fn one_bad_cpu_stops_them_all_with_its_own_error() {
        let cpus = CpuSet::from_ids([0, 60_000]);
        let measured = AtomicBool::new(false);
        let err = on_each_cpu(
            &cpus,
            None,
            || (),
            |_, ()| {
                measured.store(true, Ordering::SeqCst);
                Ok(())
            },
        )
        .unwrap_err();
        assert!(matches!(err, JitterError::Pin { cpu: 60_000, .. }), "{err}");
        assert!(!measured.load(Ordering::SeqCst));
    }
}
