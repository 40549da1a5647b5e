//! Random sequences of requests (and releases) against an evolving ledger, on the six real
//! snapshots and on generated topologies: after every step the ledger keeps every rule, and a
//! request (one CPU per thread, or a pool of cores) is granted exactly when the free whole
//! cores, counted per node, hold it.

use std::sync::OnceLock;

use nearnative_host::topology::Topology;
use nearnative_plan::{
    AdmissionError, AllocationRequest, Allocator, IoPlacement, Ledger, Level, NumaSpill,
};
use nearnative_testkit::{topology, Shape, SNAPSHOTS};
use proptest::prelude::*;

use crate::support::{check_invariants, fits};

fn snapshots() -> &'static [Topology] {
    static TOPOLOGIES: OnceLock<Vec<Topology>> = OnceLock::new();
    TOPOLOGIES.get_or_init(|| SNAPSHOTS.iter().map(|name| topology(name)).collect())
}

/// One step: admit a request for one of a few workloads, or release one.
#[derive(Debug, Clone)]
enum Step {
    Admit(Ask),
    Release(u8),
}

/// A request before it is bound to a topology (node preferences are picked modulo the node
/// count, so they always exist).
#[derive(Debug, Clone)]
struct Ask {
    workload: u8,
    threads: u32,
    /// A pool of this many cores, at most one per thread.
    cores: Option<u32>,
    level: Level,
    io: IoPlacement,
    memory_node: Option<usize>,
    nic_node: Option<usize>,
    allow_cpu0: bool,
    spill: NumaSpill,
}

impl Ask {
    fn request(&self, topology: &Topology) -> AllocationRequest {
        let nodes = &topology.numa_nodes;
        let node = |pick: Option<usize>| pick.map(|p| nodes[p % nodes.len()].id);
        AllocationRequest {
            memory_node: node(self.memory_node),
            nic_node: node(self.nic_node),
            cores: self.cores,
            io: self.io,
            allow_cpu0: self.allow_cpu0,
            spill: self.spill,
            ..AllocationRequest::new(
                format!("vm:{}", self.workload).as_str(),
                self.threads,
                self.level,
            )
        }
    }
}

fn ask(max_threads: u32) -> impl Strategy<Value = Ask> {
    let threads_and_pool = (1..=max_threads)
        .prop_flat_map(|threads| (Just(threads), prop::option::weighted(0.3, 1..=threads)));
    (
        (
            0u8..6,
            threads_and_pool,
            prop::bool::ANY,
            prop::bool::weighted(0.2),
        ),
        (
            prop::option::of(0usize..8),
            prop::option::of(0usize..8),
            prop::bool::weighted(0.1),
            prop::bool::ANY,
        ),
    )
        .prop_map(
            |((workload, (threads, cores), ht, io), (memory_node, nic_node, allow_cpu0, spill))| {
                Ask {
                    workload,
                    threads,
                    cores,
                    level: if ht { Level::HighHt } else { Level::High },
                    io: if io {
                        IoPlacement::Dedicated
                    } else {
                        IoPlacement::Housekeeping
                    },
                    memory_node,
                    nic_node,
                    allow_cpu0,
                    spill: if spill {
                        NumaSpill::Nearest
                    } else {
                        NumaSpill::Refuse
                    },
                }
            },
        )
}

fn steps(max_threads: u32) -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        5 => ask(max_threads).prop_map(Step::Admit),
        1 => (0u8..6).prop_map(Step::Release),
    ];
    prop::collection::vec(step, 1..24)
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        (1u32..=2, 1u32..=2, 1u32..=6, 1u32..=2),
        (0u32..=3, 0u32..=2, prop::collection::vec(0u32..48, 0..4)),
    )
        .prop_map(
            |((packages, nodes, cores, threads), (per_l3, efficiency, offline))| Shape {
                cores_per_l3: per_l3,
                efficiency_cores_per_node: efficiency.min(cores - 1),
                offline,
                ..Shape::server(packages, nodes, cores, threads)
            },
        )
}

/// Runs `steps` on `topology`, checking every rule after each.
fn run(topology: &Topology, steps: &[Step]) -> Result<(), TestCaseError> {
    let allocator = Allocator::new(topology);
    let mut admission = allocator.admission(Ledger::new()).unwrap();
    for step in steps {
        match step {
            Step::Release(workload) => {
                admission.release(&format!("vm:{workload}").as_str().into());
            }
            Step::Admit(ask) => {
                let request = ask.request(topology);
                let expected = fits(topology, admission.ledger(), &request);
                match admission.admit(&request) {
                    Ok(_) => prop_assert!(expected, "granted beyond the free cores: {request:?}"),
                    Err(AdmissionError::NotEnoughCores(s) | AdmissionError::NoSingleNode(s)) => {
                        prop_assert!(!expected, "refused though it fits: {request:?}: {s:?}")
                    }
                    Err(other) => prop_assert!(false, "{request:?}: {other}"),
                }
            }
        }
        check_invariants(topology, admission.ledger());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_requests_on_the_real_snapshots_keep_every_rule(
        snapshot in 0..SNAPSHOTS.len(),
        steps in steps(12),
    ) {
        run(&snapshots()[snapshot], &steps)?;
    }

    #[test]
    fn random_requests_on_generated_topologies_keep_every_rule(
        shape in shape(),
        steps in steps(6),
    ) {
        run(&shape.build(), &steps)?;
    }
}
