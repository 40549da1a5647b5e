//! The engine end to end on every captured host (plan → apply → revert through the tree
//! backend, byte-identical; injected crashes; refusals that leave nothing changed).

mod boots;
mod corrupt_ledger;
mod evacuate;
mod libvirt;
mod reconcile;
mod refusals;
mod snapshots;
mod two_workloads;
mod verify;
mod workload_ids;

use std::path::Path;

use nearnative_apply::StateDir;
use nearnative_engine::Engine;
use nearnative_host::Root;
use nearnative_knob::TreeBackend;
use nearnative_plan::PlanRequest;
use nearnative_testkit::tree::{furnish, TreeImage, TIDS};
use nearnative_testkit::Snapshot;
use tempfile::TempDir;

/// An extracted, furnished snapshot, a state directory outside it, and its image before.
pub struct Bench {
    pub snapshot: Snapshot,
    pub before: TreeImage,
    _state_dir: TempDir,
    pub state: StateDir,
}

impl Bench {
    pub fn new(name: &str) -> Bench {
        let snapshot = nearnative_testkit::extract(name);
        furnish(&snapshot.root);
        // Every journal store is fsync'd; in memory, a plan of hundreds of steps stays quick.
        let state_dir = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        Bench {
            before: TreeImage::take(&snapshot.root),
            state: StateDir::new(state_dir.path().join("state")),
            _state_dir: state_dir,
            snapshot,
        }
    }

    pub fn root(&self) -> &Path {
        &self.snapshot.root
    }

    pub fn engine(&self) -> Engine {
        self.engine_with(Box::new(TreeBackend::new(self.root())))
    }

    pub fn engine_with(&self, backend: Box<dyn nearnative_knob::Backend>) -> Engine {
        Engine::new(Root::new(self.root()), backend, self.state.clone())
    }

    /// Panics with the differing paths unless the tree is as it was before.
    pub fn assert_unchanged(&self, what: &str) {
        let diff = TreeImage::take(self.root()).diff(&self.before);
        assert!(diff.is_empty(), "{what}: tree differs at {diff:?}");
    }
}

/// The fake process's second thread, alone: one exclusive core fits every snapshot.
pub fn worker_request() -> PlanRequest {
    let mut request = PlanRequest::new(format!("pid:{}", TIDS[0]).parse().unwrap());
    request.threads = Some(vec![TIDS[1]]);
    request
}
