//! An order-keeping parallel map for reading many small procfs files.
//!
//! Each open of a file under `/proc/PID/task/TID` costs the kernel a path walk of several
//! microseconds, so a host with 100k threads takes seconds to read on one CPU. The work splits
//! cleanly per file, so it is shared between a few worker threads.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// More workers than this gain little: the kernel's procfs lookups start to contend.
const MAX_WORKERS: usize = 8;
/// Items per worker below which starting a thread costs more than it saves.
const MIN_ITEMS_PER_WORKER: usize = 256;

/// `items.iter().map(f)`, in order, spread over worker threads. If a worker cannot be spawned,
/// the calling thread does the remaining work itself.
pub fn map_in_order<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let available = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let workers = available
        .min(MAX_WORKERS)
        .min(items.len() / MIN_ITEMS_PER_WORKER);
    if workers < 2 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(items.len()));
    let work = || {
        let mut done = Vec::new();
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(index) else { break };
            done.push((index, f(item)));
        }
        results
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(done);
    };
    std::thread::scope(|scope| {
        for n in 1..workers {
            let spawned = std::thread::Builder::new()
                .name(format!("nn-read-{n}"))
                .spawn_scoped(scope, work);
            if spawned.is_err() {
                break;
            }
        }
        work();
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_unstable_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_for_small_and_large_inputs() {
        for len in [0, 3, 10_000] {
            let items: Vec<u32> = (0..len).collect();
            let doubled = map_in_order(&items, |x| x * 2);
            assert_eq!(
                doubled,
                items.iter().map(|x| x * 2).collect::<Vec<_>>(),
                "{len}"
            );
        }
    }
}
