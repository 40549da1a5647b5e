//! Plans 500 VMs one after another on a 1024-CPU synthetic host (4 packages × 2 nodes × 64
//! cores × 2 threads) whose Host holds all 500 as fake QEMU processes (4 threads each) in the
//! root cpuset, with 256 IRQs, and prints the median of several rounds: the whole batch
//! (each plan recorded in the ledger before the next), and the last plan alone (499 in the
//! ledger). A benchmark, not a test: `cargo bench -p nearnative-plan --bench plan`.

#[path = "../tests/plan_support.rs"]
#[allow(dead_code)]
mod plan_support;

use std::time::{Duration, Instant};

use nearnative_host::Host;
use nearnative_plan::{plan, Ledger, PlanRequest, Target};
use nearnative_testkit::Shape;

const WORKLOADS: u32 = 500;
const ROUNDS: usize = 7;

fn host() -> Host {
    let mut host = plan_support::host(Shape::server(4, 2, 64, 2).build());
    assert_eq!(host.topology.online.len(), 1024);
    for i in 0..WORKLOADS {
        plan_support::add_vm(&mut host, &format!("vm{i}"), 10_000 + i * 10, 1, "/");
    }
    let all = host.topology.online.clone();
    for irq in 0..256 {
        plan_support::add_irq(&mut host, 24 + irq, &format!("dev{irq}"), &all);
    }
    host
}

fn request(i: u32) -> PlanRequest {
    PlanRequest::new(Target::Vm(format!("vm{i}")))
}

/// Plans every VM, recording each allocation; returns the ledger and the total steps.
fn batch(host: &Host) -> (Ledger, usize) {
    let mut ledger = Ledger::new();
    let mut steps = 0;
    for i in 0..WORKLOADS {
        let plan = plan(host, &request(i), &ledger).expect("500 one-core VMs fit");
        steps += plan.changes.len();
        ledger.record(plan.allocation);
    }
    (ledger, steps)
}

fn median(mut times: Vec<Duration>) -> (Duration, Duration, Duration) {
    times.sort();
    (times[0], times[times.len() / 2], times[times.len() - 1])
}

fn main() {
    let host = host();
    let mut steps = 0;
    let mut last_ledger = Ledger::new();
    let batch_times = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            let (ledger, total) = batch(&host);
            let time = start.elapsed();
            steps = total;
            last_ledger = ledger;
            time
        })
        .collect();
    let last = request(WORKLOADS - 1);
    last_ledger.release(&nearnative_plan::WorkloadKey(format!(
        "vm:vm{}",
        WORKLOADS - 1
    )));
    let single_times = (0..ROUNDS * 3)
        .map(|_| {
            let start = Instant::now();
            plan(&host, &last, &last_ledger).expect("the last VM fits");
            start.elapsed()
        })
        .collect();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (fast, mid, slow) = median(batch_times);
    println!(
        "plan batch: {WORKLOADS} VMs on 1024 CPUs ({steps} steps): median {:.1} ms ({:.0} µs per \
         plan), fastest {:.1} ms, slowest {:.1} ms over {ROUNDS} rounds",
        ms(mid),
        mid.as_secs_f64() * 1e6 / f64::from(WORKLOADS),
        ms(fast),
        ms(slow)
    );
    let (fast, mid, slow) = median(single_times);
    println!(
        "plan one: the 500th VM with 499 in the ledger: median {:.2} ms, fastest {:.2} ms, \
         slowest {:.2} ms over {} rounds",
        ms(mid),
        ms(fast),
        ms(slow),
        ROUNDS * 3
    );
}
