//! Admission before a workload exists (`admit`): the allocation its plan will get once its
//! threads exist, or the planner's refusal.

use nearnative_host::CpuSet;
use nearnative_plan::{admit, plan, AdmissionError, Ledger, PlanError, PlanRequest, Target};
use nearnative_testkit::Shape;

use crate::plan_support::*;

fn vm(name: &str) -> PlanRequest {
    PlanRequest::new(Target::Vm(name.into()))
}

#[test]
fn admission_gives_what_the_plan_gives_once_the_vm_runs() {
    let mut host = host(Shape::server(1, 1, 4, 1).build());
    let admitted = admit(&host, &vm("nn1"), 2, &Ledger::new()).unwrap();
    add_vm(&mut host, "nn1", 4000, 2, "/");
    let planned = plan(&host, &vm("nn1"), &Ledger::new()).unwrap();
    assert_eq!(admitted, planned.allocation);
    assert_eq!(admitted.thread_cpus(), CpuSet::from_ids([1, 2]));
}

#[test]
fn more_cores_than_are_free_is_refused_with_the_planners_line() {
    let host = host(Shape::server(1, 1, 4, 1).build());
    let mut ledger = Ledger::new();
    ledger.record(admit(&host, &vm("a"), 2, &ledger).unwrap());
    let refused = admit(&host, &vm("b"), 2, &ledger).unwrap_err();
    assert!(
        matches!(
            refused,
            PlanError::Admission(AdmissionError::NotEnoughCores(_))
        ),
        "{refused:?}"
    );
    let line = refused.to_string();
    assert!(line.starts_with("vm:b asks for 2 exclusive"), "{line}");
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(admit(&host, &vm("b"), 1, &ledger).is_ok(), "one is free");
}

#[test]
fn the_scope_cgroups_cpus_bound_what_is_admitted() {
    let mut host = host(Shape::server(1, 1, 8, 1).build());
    add_cpuset(&mut host, "/machine", &CpuSet::from_ids([4, 5, 6, 7]));
    let mut request = vm("nn1");
    request.scope = Some("/machine".to_owned());
    let admitted = admit(&host, &request, 2, &Ledger::new()).unwrap();
    assert!(admitted.held().is_subset(&CpuSet::from_ids([4, 5, 6, 7])));
    assert!(
        admit(&host, &request, 4, &Ledger::new()).is_err(),
        "the scope keeps housekeeping"
    );
    request.rt = Some(100);
    assert!(matches!(
        admit(&host, &request, 1, &Ledger::new()),
        Err(PlanError::BadPriority { priority: 100 })
    ));
}
