//! Exact cores (`AllocationRequest::exact`): a container admitted before it existed gets,
//! at its apply, exactly the cores its runtime already confined it to, or a one-line refusal.

use nearnative_host::CpuSet;
use nearnative_plan::{allocate, AllocationRequest, Ledger, Level};
use nearnative_testkit::Shape;

/// 1 package, 2 nodes of 4 two-thread cores: core c is CPUs c and c+8; node 0 holds cores
/// 0-3, node 1 cores 4-7.
fn two_nodes() -> nearnative_host::topology::Topology {
    Shape::server(1, 2, 4, 2).build()
}

fn set(list: &str) -> CpuSet {
    CpuSet::parse_list(list).unwrap()
}

/// A container's pool of `cores` cores, `threads` threads now, on exactly `cpus`.
fn pool(key: &str, threads: u32, cores: u32, cpus: &str) -> AllocationRequest {
    let mut request = AllocationRequest::new(key, threads, Level::High);
    request.cores = Some(cores);
    request.exact = Some(set(cpus));
    request
}

#[test]
fn free_whole_cores_are_given_exactly() {
    let allocation = allocate(&two_nodes(), &Ledger::new(), &pool("c", 3, 2, "2-3,10-11")).unwrap();
    assert_eq!(allocation.exclusive_cpus, set("2-3,10-11"));
    assert_eq!(
        allocation.thread_cpus(),
        set("2-3"),
        "one CPU of each core at high"
    );
    assert_eq!(allocation.nodes, [0]);
}

#[test]
fn a_pool_may_have_more_cores_than_threads_now() {
    let allocation = allocate(&two_nodes(), &Ledger::new(), &pool("c", 1, 2, "5-6,13-14")).unwrap();
    assert_eq!(allocation.exclusive_cpus, set("5-6,13-14"));
    assert_eq!(allocation.nodes, [1]);
}

#[test]
fn the_same_request_again_keeps_its_cores() {
    let topology = two_nodes();
    let mut ledger = Ledger::new();
    let request = pool("c", 1, 1, "1,9");
    ledger.record(allocate(&topology, &ledger, &request).unwrap());
    let again = allocate(&topology, &ledger, &request).unwrap();
    assert_eq!(again.exclusive_cpus, set("1,9"));
}

#[test]
fn anything_but_exactly_those_free_cores_is_refused_in_one_line() {
    let topology = two_nodes();
    let mut ledger = Ledger::new();
    ledger.record(allocate(&topology, &ledger, &pool("other", 1, 1, "1,9")).unwrap());
    let cases = [
        (
            pool("c", 1, 1, "1,9"),
            "c cannot have exactly CPUs 1,9: the core of CPUs 1,9 is held by another workload or kept for the host",
        ),
        (
            pool("c", 1, 1, "0,8"),
            "c cannot have exactly CPUs 0,8: the core of CPUs 0,8 is held by another workload or kept for the host",
        ),
        (
            pool("c", 1, 1, "2"),
            "c cannot have exactly CPUs 2: not whole cores: CPUs 10 share their cores",
        ),
        (
            pool("c", 2, 2, "2,10"),
            "c cannot have exactly CPUs 2,10: 1 core(s), but the request needs 2",
        ),
        (
            pool("c", 1, 1, "40"),
            "c cannot have exactly CPUs 40: CPU 40 is not an online CPU with a known core",
        ),
        (
            pool("c", 4, 4, "4-7,12-15"),
            "c cannot have exactly CPUs 4-7,12-15: node 1 would be left without a core for the host",
        ),
        (
            AllocationRequest {
                within: Some(set("4-7,12-15")),
                ..pool("c", 1, 1, "2,10")
            },
            "c cannot have exactly CPUs 2,10: outside the scope's CPUs 4-7,12-15",
        ),
    ];
    for (request, expected) in cases {
        let err = allocate(&topology, &ledger, &request).unwrap_err();
        assert_eq!(err.to_string(), expected);
    }
}
