//! `capture` writes an archive that `inspect --root` reads back the same as the original.

use std::path::{Path, PathBuf};
use std::process::Command;

use nearnative_host::capture::{capture, DEFAULT_MAX_BYTES};
use nearnative_host::workloads::{VcpuSource, Workload};
use nearnative_host::{Finding, Host, InspectOptions, Root, Unknown};

use crate::fixtures::shared;

/// Captures `root`, unpacks the archive and reads it back.
fn round_trip(root: &Path) -> (Host, Host, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("host1.tar.gz");
    let options = InspectOptions::default();
    let (captured, summary) = capture(&Root::new(root), &options, &out, DEFAULT_MAX_BYTES).unwrap();
    assert_eq!(summary.folder, "host1");
    assert!(
        summary.files > 0 && summary.dropped_files == 0,
        "{summary:?}"
    );
    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    let status = Command::new("tar")
        .arg("xzf")
        .arg(&out)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(status.success());
    let reread = Host::read(&Root::new(unpacked.join("host1")), &options);
    (captured, reread, dir)
}

/// Unknowns with the root stripped from their paths, to compare across roots.
fn relative(unknowns: &[Unknown], root: &Path) -> Vec<(String, PathBuf)> {
    unknowns
        .iter()
        .map(|u| {
            (
                u.object.clone(),
                u.path.strip_prefix(root).unwrap_or(&u.path).to_owned(),
            )
        })
        .collect()
}

#[test]
fn captured_snapshot_reads_back_the_same() {
    for name in ["offline-cpu0-node0", "20em64t-hybrid-1p6c2t+2ca4co1t"] {
        let root = shared(name);
        let (captured, reread, dir) = round_trip(&root);
        assert_eq!(reread.topology, captured.topology, "{name}");
        assert_eq!(reread.isolation, captured.isolation, "{name}");
        assert_eq!(reread.findings, captured.findings, "{name}");
        let unpacked = dir.path().join("unpacked/host1");
        assert_eq!(
            relative(&reread.unknowns, &unpacked),
            relative(&captured.unknowns, &root)
        );
    }
}

/// QMP answers are live-only: a VM whose vCPUs `live` mapped over QMP reads back from a
/// capture without them. These are the VMs and findings of `host` that must read back the same.
fn without_qmp_vms(host: &Host, live: &Host) -> (Vec<Workload>, Vec<Finding>) {
    let over_qmp: Vec<String> = live
        .workloads
        .iter()
        .filter(|w| w.vcpu_source == Some(VcpuSource::Qmp))
        .map(|w| format!("VM {}", w.name))
        .collect();
    let vms = host.workloads.iter().filter(|w| {
        live.workloads
            .iter()
            .any(|l| l.pid == w.pid && l.vcpu_source != Some(VcpuSource::Qmp))
    });
    let mentions_qmp_vm = |f: &Finding| {
        over_qmp
            .iter()
            .any(|vm| f.object.contains(vm) || f.evidence.contains(vm))
    };
    let findings = host.findings.iter().filter(|f| !mentions_qmp_vm(f));
    (vms.cloned().collect(), findings.cloned().collect())
}

#[test]
fn live_capture_reads_back_the_same_topology_isolation_and_vms() {
    let (captured, reread, _dir) = round_trip(Path::new("/"));
    assert_eq!(reread.topology, captured.topology);
    assert_eq!(reread.isolation, captured.isolation);
    // Coalescing, offloads and IRQ settability come from ioctls and file modes that only the
    // live host has: a capture reads them as not available, so their findings drop out.
    let live_only = |f: &&Finding| {
        f.object == "kernel-managed IRQs"
            || [
                "GRO on ",
                "LRO on ",
                "rx-usecs=",
                "tx-usecs=",
                "adaptive-rx on ",
            ]
            .iter()
            .any(|p| f.evidence.starts_with(p))
    };
    let (reread_vms, reread_findings) = without_qmp_vms(&reread, &captured);
    let (captured_vms, captured_findings) = without_qmp_vms(&captured, &captured);
    assert_eq!(reread_vms, captured_vms);
    let reproducible: Vec<Finding> = captured_findings
        .into_iter()
        .filter(|f| !live_only(&f))
        .collect();
    assert_eq!(reread_findings, reproducible);
}
