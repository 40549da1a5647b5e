//! Allocates 500 workloads one after another on a 1024-CPU synthetic host (4 packages × 2
//! nodes × 64 cores × 2 threads) and prints the median of several rounds, two ways: through
//! one admission session (the ledger checked once, as for a batch), and one-shot (the ledger
//! checked against the topology again for every workload, as one `plan` run per workload
//! does). A benchmark, not a test: `cargo bench -p nearnative-plan --bench allocate`.

use std::time::{Duration, Instant};

use nearnative_host::topology::Topology;
use nearnative_plan::{AllocationRequest, Allocator, Ledger, Level};
use nearnative_testkit::Shape;

const WORKLOADS: u32 = 500;
const ROUNDS: usize = 21;

/// A mix: most workloads one vCPU at high, every fourth two vCPUs at high-ht, every tenth
/// with its memory on a given node. Each takes exactly one core, so all 500 fit in the 504
/// cores left after housekeeping.
fn request(i: u32) -> AllocationRequest {
    let key = format!("vm:{i}");
    let mut request = if i % 4 == 0 {
        AllocationRequest::new(key.as_str(), 2, Level::HighHt)
    } else {
        AllocationRequest::new(key.as_str(), 1, Level::High)
    };
    if i % 10 == 0 {
        request.memory_node = Some(i % 8);
    }
    request
}

fn main() {
    let topology = Shape::server(4, 2, 64, 2).build();
    assert_eq!(topology.online.len(), 1024);
    let requests: Vec<AllocationRequest> = (0..WORKLOADS).map(request).collect();
    report("session", &rounds(|| session(&topology, &requests)));
    report("one-shot", &rounds(|| one_shot(&topology, &requests)));
}

fn session(topology: &Topology, requests: &[AllocationRequest]) -> Ledger {
    let allocator = Allocator::new(topology);
    let mut admission = allocator.admission(Ledger::new()).expect("empty ledger");
    for request in requests {
        admission
            .admit(request)
            .expect("500 one-core workloads fit");
    }
    admission.into_ledger()
}

fn one_shot(topology: &Topology, requests: &[AllocationRequest]) -> Ledger {
    let allocator = Allocator::new(topology);
    let mut ledger = Ledger::new();
    for request in requests {
        let allocation = allocator
            .allocate(&ledger, request)
            .expect("500 one-core workloads fit");
        ledger.record(allocation);
    }
    ledger
}

/// Each round's time (indexing the topology included), sorted.
fn rounds(run: impl Fn() -> Ledger) -> Vec<Duration> {
    let mut times: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            let ledger = run();
            let time = start.elapsed();
            assert_eq!(ledger.len(), WORKLOADS as usize);
            time
        })
        .collect();
    times.sort();
    times
}

fn report(how: &str, times: &[Duration]) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let median = times[times.len() / 2];
    println!(
        "plan {how}: {WORKLOADS} workloads on 1024 CPUs: median {:.2} ms ({:.1} µs per \
         workload), fastest {:.2} ms, slowest {:.2} ms over {ROUNDS} rounds",
        ms(median),
        median.as_secs_f64() * 1e6 / f64::from(WORKLOADS),
        ms(times[0]),
        ms(times[times.len() - 1]),
    );
}
