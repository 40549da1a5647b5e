//! Knobs on this machine, as root, on a thread the test spawned: affinity and policy read back
//! as written, and a NIC without ethtool support (loopback) answers "not available".

use std::sync::mpsc;

use nearnative_host::CpuSet;
use nearnative_knob::bypass::nic::{Interface, NicCoalesce, NicFeature};
use nearnative_knob::exclusivity::sched::{Policy, SchedPolicy};
use nearnative_knob::exclusivity::task::{parse_start_time, ThreadAffinity};
use nearnative_knob::{Knob, KnobError, LiveBackend, Offload};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[test]
#[ignore = "needs root: to set SCHED_FIFO"]
fn own_thread_affinity_and_policy_read_back_as_written_needs_root() {
    assert!(is_root(), "needs root to set SCHED_FIFO");
    let (tid_tx, tid_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let worker = std::thread::Builder::new()
        .name("nn-knob-worker".into())
        .spawn(move || {
            // SAFETY: gettid has no preconditions and cannot fail.
            tid_tx.send(unsafe { libc::gettid() } as u32).unwrap();
            let _ = stop_rx.recv();
        })
        .unwrap();
    let tid = tid_rx.recv().unwrap();
    let pid = std::process::id();
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
    let start_time = parse_start_time(&stat).unwrap();
    let backend = LiveBackend::new();

    let affinity = ThreadAffinity {
        pid,
        tid,
        start_time,
    };
    let original = affinity.read(&backend).unwrap();
    let one = CpuSet::from_ids([original.iter().last().unwrap()]);
    affinity.write(&backend, &one).unwrap();
    assert_eq!(affinity.read(&backend).unwrap(), one);
    affinity.write(&backend, &original).unwrap();
    assert_eq!(affinity.read(&backend).unwrap(), original);

    let policy = SchedPolicy {
        pid,
        tid,
        start_time,
    };
    let before = policy.read(&backend).unwrap();
    for wanted in [
        Policy::Fifo { priority: 3 },
        Policy::Other { nice: 5 },
        before,
    ] {
        policy.write(&backend, &wanted).unwrap();
        assert_eq!(policy.read(&backend).unwrap(), wanted);
    }
    let stale = ThreadAffinity {
        pid,
        tid,
        start_time: start_time + 1,
    };
    assert!(stale.write(&backend, &one).unwrap_err().is_gone());

    drop(stop_tx);
    worker.join().unwrap();
}

#[test]
fn loopback_coalescing_is_not_available_live() {
    let knob = NicCoalesce {
        iface: Interface::try_from("lo".to_owned()).unwrap(),
    };
    let err = knob.read(&LiveBackend::new()).unwrap_err();
    assert!(matches!(err, KnobError::NotAvailable { .. }), "{err}");
    assert!(err.to_string().contains("SIOCETHTOOL"), "{err}");
}

/// In a network namespace of its own (per thread: `unshare(CLONE_NEWNET)`), with a veth pair
/// made there, GRO is switched off and on through SFEATURES and LRO (fixed off on veth) is
/// refused; the namespace goes when the thread ends. No other interface is touched.
#[test]
#[ignore = "needs root: for a network namespace"]
fn veth_gro_switches_and_fixed_lro_is_refused_in_own_netns_needs_root() {
    assert!(is_root(), "needs root for a network namespace");
    let outcome = std::thread::Builder::new()
        .name("nn-netns".into())
        .spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let status = std::process::Command::new("ip")
                .args(["link", "add", "nn0", "type", "veth", "peer", "name", "nn1"])
                .status()
                .unwrap();
            assert!(status.success(), "ip link add veth");
            let backend = LiveBackend::new();
            let iface = Interface::try_from("nn0".to_owned()).unwrap();
            let gro = NicFeature {
                iface: iface.clone(),
                feature: Offload::Gro,
            };
            let original = gro.read(&backend).unwrap();
            for wanted in [!original, original] {
                gro.write(&backend, &wanted).unwrap();
                assert_eq!(gro.read(&backend).unwrap(), wanted);
            }
            let lro = NicFeature {
                iface,
                feature: Offload::Lro,
            };
            assert!(!lro.read(&backend).unwrap());
            let err = lro.write(&backend, &true).unwrap_err();
            assert!(err.is_refused(), "{err}");
        })
        .unwrap()
        .join();
    assert!(outcome.is_ok(), "netns thread panicked");
}
