//! One table row per placement rule, on small hand-made topologies.

use nearnative_host::CpuSet;
use nearnative_plan::{AllocationRequest, Allocator, IoPlacement, Ledger, Level, NumaSpill};
use nearnative_testkit::Shape;

use crate::support::check_invariants;

enum Expect {
    Granted {
        /// Each thread's CPU, in thread order.
        threads: &'static str,
        reserved: &'static str,
        io: &'static str,
        nodes: &'static [u32],
        /// A note that must be there, in part.
        note: Option<&'static str>,
    },
    /// The whole one-line error.
    Refused(&'static str),
}

struct Case {
    description: &'static str,
    shape: Shape,
    /// Admitted first, in order.
    before: Vec<AllocationRequest>,
    request: AllocationRequest,
    expect: Expect,
}

/// 1 package, 2 nodes of 4 two-thread cores: core c is CPUs c and c+8; node 0 holds cores
/// 0-3, node 1 cores 4-7.
fn two_nodes() -> Shape {
    Shape::server(1, 2, 4, 2)
}

fn request(
    key: &str,
    threads: u32,
    level: Level,
    adjust: impl FnOnce(&mut AllocationRequest),
) -> AllocationRequest {
    let mut request = AllocationRequest::new(key, threads, level);
    adjust(&mut request);
    request
}

fn high(key: &str, threads: u32) -> AllocationRequest {
    request(key, threads, Level::High, |_| {})
}

fn cpus(list: &str) -> Option<CpuSet> {
    Some(CpuSet::parse_list(list).unwrap())
}

fn granted(threads: &'static str, reserved: &'static str, nodes: &'static [u32]) -> Expect {
    Expect::Granted {
        threads,
        reserved,
        io: "",
        nodes,
        note: None,
    }
}

fn granted_with_note(
    threads: &'static str,
    reserved: &'static str,
    nodes: &'static [u32],
    note: &'static str,
) -> Expect {
    Expect::Granted {
        threads,
        reserved,
        io: "",
        nodes,
        note: Some(note),
    }
}

fn hybrid() -> Shape {
    // Cores 0-3 are two-thread P-cores (CPUs c and c+6), cores 4-5 single-thread E-cores.
    Shape {
        efficiency_cores_per_node: 2,
        ..Shape::server(1, 1, 6, 2)
    }
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            description: "high: one thread per core, the sibling reserved idle",
            shape: two_nodes(),
            before: vec![],
            request: high("vm:a", 2),
            expect: granted("1,2", "9-10", &[0]),
        },
        Case {
            description: "high-ht: two threads of the workload share each core",
            shape: two_nodes(),
            before: vec![],
            request: request("vm:a", 4, Level::HighHt, |_| {}),
            expect: granted("1,9,2,10", "", &[0]),
        },
        Case {
            description: "high-ht, odd count: the last core's sibling stays idle",
            shape: two_nodes(),
            before: vec![],
            request: request("vm:a", 3, Level::HighHt, |_| {}),
            expect: granted_with_note("1,9,2", "10", &[0], "sibling CPU 10 kept idle"),
        },
        Case {
            description: "high-ht without SMT is high",
            shape: Shape::server(1, 1, 4, 1),
            before: vec![],
            request: request("vm:a", 2, Level::HighHt, |_| {}),
            expect: granted_with_note("1,2", "", &[0], "has no SMT"),
        },
        Case {
            description: "the memory node is preferred",
            shape: two_nodes(),
            before: vec![],
            request: request("vm:a", 2, Level::High, |r| r.memory_node = Some(1)),
            expect: granted("4,5", "12-13", &[1]),
        },
        Case {
            description: "memory wins over the NIC, and the note says why",
            shape: two_nodes(),
            before: vec![],
            request: request("vm:a", 2, Level::High, |r| {
                r.memory_node = Some(0);
                r.nic_node = Some(1);
            }),
            expect: granted_with_note("1,2", "9-10", &[0], "memory node 0 wins over NIC node 1"),
        },
        Case {
            description: "the NIC's node is used when no memory node is given",
            shape: two_nodes(),
            before: vec![],
            request: request("vm:a", 2, Level::High, |r| r.nic_node = Some(1)),
            expect: granted("4,5", "12-13", &[1]),
        },
        Case {
            description: "a full memory node sends the workload to the nearest node, with a note",
            shape: two_nodes(),
            before: vec![request("vm:big", 3, Level::High, |r| {
                r.memory_node = Some(0)
            })],
            request: request("vm:a", 2, Level::High, |r| r.memory_node = Some(0)),
            expect: granted_with_note("4,5", "12-13", &[1], "memory node 0 has 0 free cores"),
        },
        Case {
            description: "CPU 0's core is not taken; it is the node's housekeeping core",
            shape: Shape::server(1, 1, 4, 1),
            before: vec![],
            request: high("vm:a", 3),
            expect: granted("1,2,3", "", &[0]),
        },
        Case {
            description: "CPU 0's core counts as the housekeeping core, so one more is refused",
            shape: Shape::server(1, 1, 4, 1),
            before: vec![],
            request: high("vm:a", 4),
            expect: Expect::Refused(
                "vm:a asks for 4 exclusive cores (level high); 3 are free (node 0: 3) after \
                 keeping 1 housekeeping core per node; free more cores or ask for fewer threads",
            ),
        },
        Case {
            description: "allowed, CPU 0's core is taken last, with a note",
            shape: Shape::server(1, 1, 4, 1),
            before: vec![],
            request: request("vm:a", 3, Level::High, |r| {
                r.allow_cpu0 = true;
                r.housekeeping = cpus("3");
            }),
            expect: granted_with_note("1,2,0", "", &[0], "CPU 0's core is allocated"),
        },
        Case {
            description: "not allowed, CPU 0's core stays besides the explicit housekeeping",
            shape: Shape::server(1, 1, 4, 1),
            before: vec![],
            request: request("vm:a", 3, Level::High, |r| r.housekeeping = cpus("3")),
            expect: Expect::Refused(
                "vm:a asks for 3 exclusive cores (level high); 2 are free (node 0: 2) after \
                 keeping 2 housekeeping cores per node; free more cores or ask for fewer threads",
            ),
        },
        Case {
            description: "hybrid: P-cores are preferred",
            shape: hybrid(),
            before: vec![],
            request: high("vm:a", 2),
            expect: granted("1,2", "7-8", &[0]),
        },
        Case {
            description: "hybrid: E-cores only once P-cores run out, with a note",
            shape: hybrid(),
            before: vec![],
            request: high("vm:a", 4),
            expect: granted_with_note(
                "1,2,3,4",
                "7-9",
                &[0],
                "threads 3 run on efficiency cores (CPUs 4): only 3 free performance cores",
            ),
        },
        Case {
            description: "--io dedicated: one more whole core on the same node",
            shape: two_nodes(),
            before: vec![],
            request: request("vm:a", 2, Level::High, |r| r.io = IoPlacement::Dedicated),
            expect: Expect::Granted {
                threads: "1,2",
                reserved: "9-10",
                io: "3,11",
                nodes: &[0],
                note: Some("I/O threads (iothreads, emulator, vhost) get core CPUs 3,11"),
            },
        },
        Case {
            description: "--io dedicated: its core counts in admission and stays on the main node",
            shape: two_nodes(),
            before: vec![],
            request: request("vm:a", 3, Level::High, |r| {
                r.io = IoPlacement::Dedicated;
                r.spill = NumaSpill::Nearest;
            }),
            expect: Expect::Granted {
                threads: "1,2,4",
                reserved: "9-10,12",
                io: "3,11",
                nodes: &[0, 1],
                note: Some("spilled by distance from node 0 (node 0: 2, node 1: 1)"),
            },
        },
        Case {
            description: "explicit housekeeping cores are never allocated",
            shape: two_nodes(),
            before: vec![],
            request: request("vm:a", 3, Level::High, |r| {
                r.memory_node = Some(0);
                r.housekeeping = cpus("1,13");
            }),
            expect: granted_with_note("4,6,7", "12,14-15", &[1], "memory node 0 has 2 free"),
        },
        Case {
            description: "explicit housekeeping must hold a core of every node",
            shape: two_nodes(),
            before: vec![],
            request: request("vm:a", 1, Level::High, |r| r.housekeeping = cpus("1")),
            expect: Expect::Refused(
                "--housekeeping 1 has no core on NUMA node 1; every node with CPUs needs one for \
                 the host's own work",
            ),
        },
        Case {
            description: "explicit housekeeping names only online CPUs",
            shape: two_nodes(),
            before: vec![],
            request: request("vm:a", 1, Level::High, |r| r.housekeeping = cpus("1,4,99")),
            expect: Expect::Refused(
                "--housekeeping 1,4,99: CPU 99 is not an online CPU with a known core and node",
            ),
        },
        Case {
            description: "explicit housekeeping cannot name another workload's CPUs",
            shape: two_nodes(),
            before: vec![high("vm:b", 1)],
            request: request("vm:a", 1, Level::High, |r| r.housekeeping = cpus("9,4")),
            expect: Expect::Refused(
                "--housekeeping 4,9: CPU 9 is held exclusively by a workload; release it first",
            ),
        },
        Case {
            description: "a core with an offline sibling gives its online thread",
            shape: Shape {
                offline: vec![5],
                ..Shape::server(1, 1, 4, 2)
            },
            before: vec![],
            request: high("vm:a", 1),
            expect: granted("1", "", &[0]),
        },
        Case {
            description: "a high-ht pair goes to a core with both threads online",
            shape: Shape {
                offline: vec![5],
                ..Shape::server(1, 1, 4, 2)
            },
            before: vec![],
            request: request("vm:a", 2, Level::HighHt, |_| {}),
            expect: granted("2,6", "", &[0]),
        },
        Case {
            description: "cores are packed in one L3 group, the smallest that holds them",
            shape: Shape {
                cores_per_l3: 4,
                ..Shape::server(1, 1, 12, 1)
            },
            before: vec![high("vm:b", 2)],
            request: high("vm:a", 2),
            expect: granted("4,5", "", &[0]),
        },
        Case {
            description: "a second workload never gets a reserved-idle sibling or I/O core",
            shape: two_nodes(),
            before: vec![request("vm:b", 1, Level::High, |r| {
                r.io = IoPlacement::Dedicated
            })],
            request: high("vm:a", 1),
            expect: granted("3", "11", &[0]),
        },
        Case {
            description: "spilling across nodes when allowed, main node first",
            shape: Shape::server(2, 1, 4, 1),
            before: vec![],
            request: request("vm:a", 5, Level::High, |r| r.spill = NumaSpill::Nearest),
            expect: granted_with_note("1,2,3,4,5", "", &[0, 1], "(node 0: 3, node 1: 2)"),
        },
        Case {
            description: "without spilling, cores that fit only across nodes are refused",
            shape: Shape::server(2, 1, 4, 1),
            before: vec![],
            request: high("vm:a", 5),
            expect: Expect::Refused(
                "vm:a asks for 5 exclusive cores (level high); 6 are free (node 0: 3, node 1: 3) \
                 after keeping 1 housekeeping core per node, but no single node has 5 and \
                 spilling across nodes is off (remote memory and cross-node cache traffic would \
                 make latency depend on the thread); free cores on one node, or allow spilling \
                 with --numa-spill",
            ),
        },
        Case {
            description: "the refusal counts what is asked, free per node and kept",
            shape: two_nodes(),
            before: vec![
                request("vm:other", 2, Level::High, |r| r.memory_node = Some(0)),
                request("vm:third", 1, Level::High, |r| r.memory_node = Some(1)),
            ],
            request: high("vm:web1", 4),
            expect: Expect::Refused(
                "vm:web1 asks for 4 exclusive cores (level high); 3 are free (node 0: 1, node 1: \
                 2) after keeping 1 housekeeping core per node; free more cores or use --level \
                 high-ht",
            ),
        },
        Case {
            description: "a refusal with a dedicated I/O core says so",
            shape: Shape::server(1, 1, 4, 1),
            before: vec![],
            request: request("vm:a", 3, Level::High, |r| r.io = IoPlacement::Dedicated),
            expect: Expect::Refused(
                "vm:a asks for 4 exclusive cores (level high, one of them for I/O); 3 are free \
                 (node 0: 3) after keeping 1 housekeeping core per node; free more cores or use \
                 --io housekeeping",
            ),
        },
        Case {
            description: "re-planning a workload frees its own cores for its new shape",
            shape: two_nodes(),
            before: vec![high("vm:a", 2)],
            request: high("vm:a", 3),
            expect: granted("1,2,3", "9-11", &[0]),
        },
        Case {
            description: "a preference for a node the host lacks is refused",
            shape: two_nodes(),
            before: vec![],
            request: request("vm:a", 1, Level::High, |r| r.nic_node = Some(7)),
            expect: Expect::Refused("vm:a: NIC node 7 does not exist on this host (nodes: 0, 1)"),
        },
        Case {
            description: "a pool at high: N cores, one CPU of each, the siblings idle",
            shape: two_nodes(),
            before: vec![],
            request: request("pid:a", 3, Level::High, |r| r.cores = Some(2)),
            expect: granted("1,2", "9-10", &[0]),
        },
        Case {
            description: "a pool at high-ht: every CPU of its N cores",
            shape: two_nodes(),
            before: vec![],
            request: request("pid:a", 3, Level::HighHt, |r| r.cores = Some(2)),
            expect: granted("1,9,2,10", "", &[0]),
        },
        Case {
            description: "a pool of one core on two CPUs: CPU 1, CPU 0 stays the host's",
            shape: Shape::server(1, 1, 2, 1),
            before: vec![],
            request: request("pid:a", 2, Level::High, |r| r.cores = Some(1)),
            expect: granted("1", "", &[0]),
        },
        Case {
            description: "a pool at high-ht without SMT has one CPU per core, with a note",
            shape: Shape::server(1, 1, 4, 1),
            before: vec![],
            request: request("pid:a", 3, Level::HighHt, |r| r.cores = Some(2)),
            expect: granted_with_note("1,2", "", &[0], "a pool at level high-ht has one CPU"),
        },
        Case {
            description: "hybrid: a pool takes E-cores only once P-cores run out, with a note",
            shape: hybrid(),
            before: vec![],
            request: request("pid:a", 5, Level::High, |r| r.cores = Some(4)),
            expect: granted_with_note(
                "1,2,3,4",
                "7-9",
                &[0],
                "pool CPUs 4 are on efficiency cores: only 3 free performance cores",
            ),
        },
        Case {
            description: "a pool counts its cores in admission, and the hint says --cores",
            shape: Shape::server(1, 1, 2, 1),
            before: vec![],
            request: request("pid:a", 2, Level::High, |r| r.cores = Some(2)),
            expect: Expect::Refused(
                "pid:a asks for 2 exclusive cores (level high, shared by its 2 threads); 1 is \
                 free (node 0: 1) after keeping 1 housekeeping core per node; free more cores or \
                 ask for fewer with --cores",
            ),
        },
        Case {
            description: "a pool larger than its threads is refused with both numbers",
            shape: two_nodes(),
            before: vec![],
            request: request("pid:a", 2, Level::High, |r| r.cores = Some(3)),
            expect: Expect::Refused(
                "--cores 3 but pid:a has 2 threads to place; a pool of more cores than threads \
                 leaves a core no thread can use",
            ),
        },
        Case {
            description: "a pool of no cores is refused",
            shape: two_nodes(),
            before: vec![],
            request: request("pid:a", 2, Level::High, |r| r.cores = Some(0)),
            expect: Expect::Refused("--cores 0 for pid:a: a pool needs at least one core"),
        },
        Case {
            description: "zero threads is refused",
            shape: two_nodes(),
            before: vec![],
            request: high("vm:a", 0),
            expect: Expect::Refused(
                "vm:a asks for no threads; a workload needs at least one exclusive thread",
            ),
        },
    ]
}

#[test]
fn each_rule_on_hand_made_topologies() {
    for case in cases() {
        let topology = case.shape.build();
        let allocator = Allocator::new(&topology);
        let mut admission = allocator.admission(Ledger::new()).unwrap();
        for before in &case.before {
            admission
                .admit(before)
                .unwrap_or_else(|e| panic!("{}: setup: {e}", case.description));
        }
        let result = admission.admit(&case.request).cloned();
        match (case.expect, result) {
            (
                Expect::Granted {
                    threads,
                    reserved,
                    io,
                    nodes,
                    note,
                },
                Ok(allocation),
            ) => {
                let got: Vec<String> = allocation.slots.iter().map(|s| s.cpu.to_string()).collect();
                let what = case.description;
                assert_eq!(got.join(","), threads, "{what}: threads");
                assert_eq!(
                    allocation.reserved_idle.to_list(),
                    reserved,
                    "{what}: reserved"
                );
                assert_eq!(allocation.io_cpus.to_list(), io, "{what}: I/O");
                assert_eq!(allocation.nodes, nodes, "{what}: nodes");
                if let Some(note) = note {
                    assert!(
                        allocation
                            .notes
                            .iter()
                            .any(|n| n.to_string().contains(note)),
                        "{what}: no note with {note:?} in {:?}",
                        allocation.notes
                    );
                }
            }
            (Expect::Refused(message), Err(err)) => {
                assert_eq!(err.to_string(), message, "{}", case.description);
            }
            (Expect::Granted { .. }, Err(err)) => panic!("{}: refused: {err}", case.description),
            (Expect::Refused(_), Ok(a)) => panic!("{}: granted {a:?}", case.description),
        }
        check_invariants(&topology, admission.ledger());
    }
}

#[test]
fn housekeeping_is_what_no_workload_holds() {
    let topology = two_nodes().build();
    let allocator = Allocator::new(&topology);
    let mut admission = allocator.admission(Ledger::new()).unwrap();
    admission.admit(&high("vm:b", 1)).unwrap();
    let a = admission.admit(&high("vm:a", 1)).unwrap();
    assert_eq!(a.housekeeping.to_list(), "0,3-8,11-15");
}
