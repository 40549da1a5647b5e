//! apply and revert end to end: on every captured host through the tree backend (round trip,
//! injected crashes, failures part-way, revert edge cases), and live on this machine on
//! objects the tests create.

mod crash;
mod extend;
mod failure;
mod handover;
mod live;
mod migration;
mod revert_cases;
mod roundtrip;
mod steps;
mod trust;
use nearnative_testkit::tree;

use std::path::Path;

use nearnative_apply::{ApplyError, ApplyReport, JournalId, StateDir};
use nearnative_knob::TreeBackend;
use tempfile::TempDir;

use crate::tree::{Cpus, TreeImage};
use nearnative_testkit::Snapshot;

pub fn id(text: &str) -> JournalId {
    JournalId::try_from(text).unwrap()
}

/// An extracted, furnished snapshot with its backend, a fresh state directory, and the
/// tree's image before any change.
pub struct Bench {
    pub snapshot: Snapshot,
    pub cpus: Cpus,
    pub backend: TreeBackend,
    _state_dir: TempDir,
    pub state: StateDir,
    pub before: TreeImage,
}

impl Bench {
    pub fn new(name: &str) -> Bench {
        let snapshot = nearnative_testkit::extract(name);
        let cpus = tree::furnish(&snapshot.root);
        let state_dir = tempfile::tempdir().unwrap();
        Bench {
            backend: TreeBackend::new(&snapshot.root),
            before: TreeImage::take(&snapshot.root),
            state: StateDir::new(state_dir.path().join("state")),
            _state_dir: state_dir,
            cpus,
            snapshot,
        }
    }

    pub fn root(&self) -> &Path {
        &self.snapshot.root
    }

    pub fn image(&self) -> TreeImage {
        TreeImage::take(self.root())
    }

    /// Applies [`steps::every_file_knob`] through the tree backend as journal `id`.
    pub fn apply_every_file_knob(&self, id: &str) -> Result<ApplyReport, ApplyError> {
        let steps = steps::every_file_knob(&self.cpus);
        nearnative_apply::apply(&steps, &self.backend, &self.state, &crate::id(id))
    }

    /// Panics with the differing paths unless the tree is as it was before.
    pub fn assert_unchanged(&self, what: &str) {
        let diff = self.image().diff(&self.before);
        assert!(diff.is_empty(), "{what}: tree differs at {diff:?}");
    }
}
