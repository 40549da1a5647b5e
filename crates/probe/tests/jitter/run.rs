//! A run's report holds together: runtimes, shares, floors and the stop flag.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nearnative_host::CpuSet;
use nearnative_probe::jitter::{self, JitterConfig, JitterError, JitterReport, Mode};

use super::{last_online_cpu, serial};

#[test]
fn spin_report_accounts_for_the_run() {
    let _cpu = serial();
    let cpu = last_online_cpu();
    let config = JitterConfig::spin(CpuSet::from_ids([cpu]), Duration::from_millis(300));
    let JitterReport::Spin(report) = jitter::run(&config, &AtomicBool::new(false)).unwrap() else {
        panic!("spin config gave a timer report");
    };
    assert_eq!(report.cpus.len(), 1);
    let row = &report.cpus[0];
    assert_eq!(row.cpu, cpu);
    assert!(
        row.runtime_ns >= 290_000_000 && row.runtime_ns < 2_000_000_000,
        "{row:?}"
    );
    assert!(
        row.min_iteration_ns > 0 && row.min_iteration_ns < 5_000,
        "{row:?}"
    );
    assert!(row.iterations > 1_000, "{row:?}");
    assert!(row.stolen_ns <= row.runtime_ns, "{row:?}");
    assert!((0.0..=1.0).contains(&row.stolen_share), "{row:?}");
    if row.interruptions > 0 {
        assert!(row.gaps.min > config.threshold_ns, "{row:?}");
    }
}

#[test]
fn timer_wakes_once_per_interval() {
    let _cpu = serial();
    let config = JitterConfig {
        mode: Mode::Timer {
            interval: Duration::from_millis(1),
        },
        ..JitterConfig::spin(
            CpuSet::from_ids([last_online_cpu()]),
            Duration::from_millis(300),
        )
    };
    let JitterReport::Timer(report) = jitter::run(&config, &AtomicBool::new(false)).unwrap() else {
        panic!("timer config gave a spin report");
    };
    let row = &report.cpus[0];
    // Every period of the runtime is either a wake-up or an overrun, never both or neither.
    let elapsed_periods = row.runtime_ns / report.interval_ns;
    let periods = row.wakeups + row.overruns;
    assert!(
        periods + 2 >= elapsed_periods && periods <= elapsed_periods + 1,
        "{row:?}"
    );
    assert!(row.runtime_ns >= 290_000_000, "{row:?}");
    // The summary reports the exact max, and no percentile above it.
    let lateness = &row.lateness;
    assert_eq!(lateness.max, row.max_lateness_ns, "{row:?}");
    assert!(
        lateness.p50 <= lateness.p99_999 && lateness.p99_999 <= lateness.max,
        "{row:?}"
    );
}

#[test]
fn stop_ends_a_long_run_early() {
    let _cpu = serial();
    let config = JitterConfig::spin(
        CpuSet::from_ids([last_online_cpu()]),
        Duration::from_secs(60),
    );
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let report = std::thread::scope(|s| {
        let runner = s.spawn(|| jitter::run(&config, &stop));
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::Relaxed);
        runner.join().unwrap()
    })
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "{report:?}");
}

#[test]
fn offline_cpu_is_refused_before_any_thread_starts() {
    let config = JitterConfig::spin(CpuSet::from_ids([4_000]), Duration::from_secs(1));
    let err = jitter::run(&config, &AtomicBool::new(false)).unwrap_err();
    assert!(matches!(err, JitterError::NotOnline { .. }), "{err}");
}
