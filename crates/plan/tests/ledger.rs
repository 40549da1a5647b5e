//! The ledger: replacement by key, checking against the host, persistence as data.

use nearnative_host::CpuSet;
use nearnative_plan::{
    allocate, AdmissionError, AllocationRequest, Allocator, Ledger, LedgerError, Level, WorkloadKey,
};
use nearnative_testkit::Shape;

fn high(key: &str, threads: u32) -> AllocationRequest {
    AllocationRequest::new(key, threads, Level::High)
}

fn ledger_with(shape: &Shape, requests: &[AllocationRequest]) -> Ledger {
    let topology = shape.build();
    let allocator = Allocator::new(&topology);
    let mut admission = allocator.admission(Ledger::new()).unwrap();
    for request in requests {
        admission.admit(request).unwrap();
    }
    admission.into_ledger()
}

#[test]
fn the_same_key_replaces_its_allocation_and_frees_its_cores() {
    let topology = Shape::server(1, 1, 4, 2).build();
    let allocator = Allocator::new(&topology);
    let mut admission = allocator.admission(Ledger::new()).unwrap();
    admission.admit(&high("vm:a", 3)).unwrap();
    assert!(admission.plan(&high("vm:b", 1)).is_err(), "node is full");
    admission.admit(&high("vm:a", 1)).unwrap();
    assert_eq!(admission.ledger().len(), 1);
    assert_eq!(
        admission.ledger().get(&"vm:a".into()).unwrap().slots.len(),
        1
    );
    admission.admit(&high("vm:b", 2)).unwrap();
    let released = admission.release(&"vm:a".into()).unwrap();
    assert_eq!(released.thread_cpus().to_list(), "1");
    admission.admit(&high("vm:c", 1)).unwrap();
}

#[test]
fn an_identical_request_gets_the_same_cores_back() {
    let shape = Shape::server(2, 1, 4, 2);
    let topology = shape.build();
    let first = high("vm:a", 2);
    let ledger = ledger_with(&shape, &[first.clone(), high("vm:b", 1), high("vm:c", 2)]);
    let again = allocate(&topology, &ledger, &first).unwrap();
    let recorded = ledger.get(&first.workload).unwrap();
    assert_eq!(again.slots, recorded.slots);
    assert_eq!(again.exclusive_cpus, recorded.exclusive_cpus);
    assert_eq!(
        again.housekeeping,
        topology.online.difference(&ledger.held())
    );
}

#[test]
fn planning_is_deterministic_and_the_ledger_round_trips_through_json() {
    let shape = Shape::server(2, 2, 6, 2);
    let topology = shape.build();
    let ledger = ledger_with(&shape, &[high("vm:a", 3), high("vm:b", 2)]);
    let request = AllocationRequest::new("vm:c", 5, Level::HighHt);
    let once = allocate(&topology, &ledger, &request).unwrap();
    let twice = allocate(&topology, &ledger.clone(), &request).unwrap();
    assert_eq!(
        serde_json::to_string(&once).unwrap(),
        serde_json::to_string(&twice).unwrap()
    );
    let json = serde_json::to_string(&ledger).unwrap();
    assert!(json.contains("\"level\":\"high\""), "{json}");
    let back: Ledger = serde_json::from_str(&json).unwrap();
    assert_eq!(back, ledger);
}

/// A ledger made on one shape and checked against another.
fn check(made_on: &Shape, checked_on: &Shape, edit: impl FnOnce(&mut Ledger)) -> LedgerError {
    let mut ledger = ledger_with(made_on, &[high("vm:a", 1)]);
    edit(&mut ledger);
    ledger.validate(&checked_on.build()).unwrap_err()
}

#[test]
fn a_ledger_that_no_longer_matches_the_host_is_refused_naming_the_cpu() {
    let shape = Shape::server(1, 1, 4, 2);
    let offline_5 = Shape {
        offline: vec![5],
        ..shape.clone()
    };
    let cases: Vec<(&str, LedgerError, &str)> = vec![
        (
            "a CPU the host does not have",
            check(&shape, &shape, |ledger| {
                let mut a = ledger.release(&"vm:a".into()).unwrap();
                a.exclusive_cpus.insert(99);
                ledger.record(a);
            }),
            "ledger: vm:a holds CPU 99, which this host does not have",
        ),
        (
            "a CPU that went offline",
            check(&shape, &offline_5, |_| {}),
            "ledger: vm:a holds CPU 5, which is offline; revert vm:a and plan it again",
        ),
        (
            "a sibling that came online",
            check(&offline_5, &shape, |_| {}),
            "ledger: vm:a holds CPU 1 but not its online sibling 5 (a CPU came online since), \
             so the core is no longer exclusive; plan vm:a again",
        ),
        (
            "a core none of its threads runs on",
            check(&shape, &shape, |ledger| {
                let mut a = ledger.release(&"vm:a".into()).unwrap();
                a.exclusive_cpus = a.exclusive_cpus.union(&CpuSet::parse_list("2,6").unwrap());
                ledger.record(a);
            }),
            "ledger: vm:a holds CPU 2 apart from its threads' cores and its I/O core; the \
             ledger was edited by hand",
        ),
        (
            "a CPU held twice",
            check(&shape, &shape, |ledger| {
                let mut copy = ledger.get(&"vm:a".into()).unwrap().clone();
                copy.request.workload = WorkloadKey("vm:z".into());
                ledger.record(copy);
            }),
            "ledger: CPU 1 is held by both vm:a and vm:z",
        ),
    ];
    for (description, error, message) in cases {
        assert_eq!(error.to_string(), message, "{description}");
    }
}

#[test]
fn allocating_on_a_mismatched_ledger_is_a_ledger_error() {
    let shape = Shape::server(1, 1, 4, 2);
    let mut ledger = ledger_with(&shape, &[high("vm:a", 1)]);
    let mut a = ledger.release(&"vm:a".into()).unwrap();
    a.io_cpus = CpuSet::parse_list("42").unwrap();
    ledger.record(a);
    let err = allocate(&shape.build(), &ledger, &high("vm:b", 1)).unwrap_err();
    assert!(matches!(
        err,
        AdmissionError::Ledger(LedgerError::UnknownCpu { cpu: 42, .. })
    ));
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(source.contains("CPU 42"), "{source}");
}
