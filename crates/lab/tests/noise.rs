//! The noisy neighbour runs its hogs and its flood, stops by itself, and leaves nothing.

use std::time::{Duration, Instant};

use nearnative_host::{cpus::online_cpus, Root};
use nearnative_lab::{Lab, NoiseConfig};

use crate::common::{net_state, root_test, Restored};

#[test]
#[ignore = "needs root: network namespaces"]
fn noise_hogs_every_cpu_and_floods_within_its_bound_needs_root() {
    let _serial = root_test();
    let before = net_state();
    let run_dir = tempfile::tempdir().unwrap();
    let mut lab = Lab::create(run_dir.path()).unwrap();
    let cpus = online_cpus(&Root::default()).unwrap();
    let mut config = NoiseConfig::new(cpus.clone(), Duration::from_millis(500));
    config.flood_rate = 20_000;
    let started = Instant::now();
    let noise = lab.start_noise(&config).unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let report = noise.stop().unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(report.hog_rounds.len(), cpus.iter().count());
    assert!(report.hog_rounds.iter().all(|&r| r > 0), "{report:?}");
    // 500 ms at 20 000/s: at most 10 000 sent (the bound), and a fair share of that even if
    // the sender started late (its pacing catches up after a stall). The receiver, competing
    // with the hogs, may drop bursts at its socket, so only delivery itself is checked.
    assert!(report.flood_sent <= 10_000, "{report:?}");
    assert!(report.flood_sent >= 1_000, "{report:?}");
    assert!(report.flood_received > 0, "{report:?}");
    assert!(report.flood_received <= report.flood_sent, "{report:?}");
    drop(lab);
    net_state().assert_restored(&before);
}

#[test]
fn refuses_unbounded_noise() {
    let cases = [
        ("zero duration", Duration::ZERO, 1000),
        ("an hour", Duration::from_secs(3600), 1000),
        ("ten million per second", Duration::from_secs(1), 10_000_000),
    ];
    for (what, duration, rate) in cases {
        let mut config = NoiseConfig::new(Default::default(), duration);
        config.flood_rate = rate;
        let run_dir = tempfile::tempdir().unwrap();
        let mut registry = nearnative_lab::registry::Registry::create(
            run_dir.path(),
            "lab-1aa.json",
            Root::default(),
        )
        .unwrap();
        let tag = nearnative_lab::names::RunTag::next();
        let err = nearnative_lab::noise::start(&mut registry, &tag, &config).unwrap_err();
        assert!(registry.objects().is_empty(), "{what}: nothing created");
        assert!(!err.to_string().is_empty(), "{what}");
    }
}
