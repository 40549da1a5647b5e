//! After a reboot: the journal, plan record and ledger entry of a workload applied in another
//! boot are closed without a single host write (the reboot reset their knobs), reported, and
//! do not stop the workload being applied afresh.

use std::fs;
use std::time::{SystemTime, UNIX_EPOCH};

use nearnative_apply::journal::Journal;
use nearnative_apply::Boot;
use nearnative_engine::{load_ledger, RevertWhich};
use nearnative_knob::Step;
use nearnative_testkit::tree::TreeImage;

use crate::{worker_request, Bench};

const FIRST_BOOT: &str = "0f6c3b1e-3d52-4bd6-9a57-2f2b0d1c9e11";
const SECOND_BOOT: &str = "7a1d44c2-55e0-4c3b-8f0e-6b7e0c1d2a33";

fn set_boot_id(bench: &Bench, id: &str) {
    let path = bench.root().join("proc/sys/kernel/random");
    fs::create_dir_all(&path).unwrap();
    fs::write(path.join("boot_id"), format!("{id}\n")).unwrap();
}

/// Applied in the first boot, then the boot id changes as a reboot would change it.
fn applied_then_rebooted() -> Bench {
    let mut bench = Bench::new("16em64t-4s2c2t");
    set_boot_id(&bench, FIRST_BOOT);
    bench.before = TreeImage::take(bench.root());
    bench.engine().apply(&worker_request()).unwrap();
    set_boot_id(&bench, SECOND_BOOT);
    bench
}

fn assert_state_empty(bench: &Bench) {
    assert!(bench.state.journal_ids().unwrap().is_empty());
    assert!(bench.state.plan_ids().unwrap().is_empty());
    assert!(load_ledger(&bench.state).unwrap().is_empty());
}

#[test]
fn every_state_file_records_the_boot() {
    let mut bench = Bench::new("16em64t-4s2c2t");
    set_boot_id(&bench, FIRST_BOOT);
    bench.before = TreeImage::take(bench.root());
    let engine = bench.engine();
    let applied = engine.apply_from(&worker_request(), "cli").unwrap();
    let journal = Journal::load(&applied.report.journal).unwrap().unwrap();
    assert_eq!(journal.boot_id.as_deref(), Some(FIRST_BOOT));
    let ledger = fs::read_to_string(bench.state.ledger_path()).unwrap();
    assert!(ledger.contains(FIRST_BOOT), "{ledger}");
    let record = fs::read_to_string(&applied.record).unwrap();
    assert!(record.contains(FIRST_BOOT), "{record}");
    let status = engine.status().unwrap();
    assert_eq!(status.workloads[0].boot, Boot::This);
    assert_eq!(status.workloads[0].origin.as_deref(), Some("cli"));
    engine.revert(&RevertWhich::All).unwrap();
    bench.assert_unchanged("revert");
}

#[test]
fn entries_of_another_boot_are_closed_without_a_host_write() {
    let bench = applied_then_rebooted();
    let engine = bench.engine();
    let status = engine.status().unwrap();
    assert_eq!(status.workloads.len(), 1);
    assert_eq!(status.workloads[0].boot, Boot::Other, "{status:?}");

    let host = TreeImage::take(bench.root());
    let closed = engine.close_other_boots().unwrap();
    let diff = TreeImage::take(bench.root()).diff(&host);
    assert!(diff.is_empty(), "closing wrote the host at {diff:?}");
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(closed[0].workload.as_ref().unwrap().0, "pid:4000");
    assert_eq!(closed[0].journal.as_ref().unwrap().as_str(), "pid-4000");
    assert_eq!(closed[0].boot_id.as_deref(), Some(FIRST_BOOT));
    assert_state_empty(&bench);
    assert!(engine.close_other_boots().unwrap().is_empty());
}

#[test]
fn apply_after_a_reboot_closes_the_old_entries_and_applies_afresh() {
    let bench = applied_then_rebooted();
    let engine = bench.engine();
    let applied = engine.apply(&worker_request()).unwrap();
    assert_eq!(applied.closed.len(), 1, "{:?}", applied.closed);
    let journal = Journal::load(&applied.report.journal).unwrap().unwrap();
    assert_eq!(journal.boot_id.as_deref(), Some(SECOND_BOOT));
    assert_eq!(engine.status().unwrap().workloads[0].boot, Boot::This);
}

#[test]
fn revert_after_a_reboot_writes_no_stale_prior() {
    let bench = applied_then_rebooted();
    let host = TreeImage::take(bench.root());
    let reverted = bench.engine().revert(&RevertWhich::All).unwrap();
    assert_eq!(reverted.closed.len(), 1);
    assert!(reverted.report.nothing_to_revert());
    assert!(TreeImage::take(bench.root()).diff(&host).is_empty());
    assert_state_empty(&bench);
}

/// Sets `btime` in the tree's `/proc/stat` to `offset_s` seconds from now.
fn set_boot_time(bench: &Bench, offset_s: i64) {
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let btime = now_s.checked_add_signed(offset_s).unwrap();
    let stat_path = bench.root().join("proc/stat");
    let stat = fs::read_to_string(&stat_path).unwrap();
    let booted: String = stat
        .lines()
        .map(|line| match line.starts_with("btime ") {
            true => format!("btime {btime}\n"),
            false => format!("{line}\n"),
        })
        .collect();
    fs::write(&stat_path, booted).unwrap();
}

/// The worker thread the request makes exclusive exits.
fn worker_exits(bench: &Bench) {
    fs::remove_dir_all(bench.root().join("proc/4000/task/4001")).unwrap();
}

#[test]
fn entries_without_a_boot_id_are_judged_by_their_time_and_their_threads() {
    let bench = Bench::new("16em64t-4s2c2t");
    let engine = bench.engine();
    engine.apply(&worker_request()).unwrap();
    assert!(
        engine.close_other_boots().unwrap().is_empty(),
        "made after the boot"
    );
    // The clock stepped forward after an early-boot apply: the live entry looks older than
    // the boot, but its worker still runs.
    set_boot_time(&bench, 3600);
    assert!(
        engine.close_other_boots().unwrap().is_empty(),
        "its thread is alive"
    );
    assert_eq!(engine.status().unwrap().workloads[0].boot, Boot::Unknown);
    worker_exits(&bench);
    set_boot_time(&bench, 60);
    assert!(
        engine.close_other_boots().unwrap().is_empty(),
        "older than the boot by less than the margin"
    );
    set_boot_time(&bench, 3600);
    let host = TreeImage::take(bench.root());
    let closed = engine.close_other_boots().unwrap();
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(closed[0].boot_id, None);
    assert!(TreeImage::take(bench.root()).diff(&host).is_empty());
    assert_state_empty(&bench);
}

#[test]
fn a_journal_alone_without_a_boot_id_is_kept_while_a_thread_of_it_lives() {
    let bench = Bench::new("16em64t-4s2c2t");
    let engine = bench.engine();
    let applied = engine.apply(&worker_request()).unwrap();
    fs::remove_file(&applied.record).unwrap();
    set_boot_time(&bench, 3600);
    assert!(engine.close_other_boots().unwrap().is_empty());
    assert_eq!(bench.state.journal_ids().unwrap().len(), 1);
    // The workload's thread and every bystander the apply moved exit.
    let journal = Journal::load(&applied.report.journal).unwrap().unwrap();
    for step in &journal.changes {
        if let Step::ThreadAffinity(c) = step {
            let task = format!("proc/{}/task/{}", c.knob.pid, c.knob.tid);
            let _ = fs::remove_dir_all(bench.root().join(task));
        }
    }
    let closed = engine.close_other_boots().unwrap();
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert!(closed[0].workload.is_none() && closed[0].journal.is_some());
    assert!(bench.state.journal_ids().unwrap().is_empty());
}
