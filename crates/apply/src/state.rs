//! The state directory's layout: `lock`, `journals/<id>.json` (one per apply that has not been
//! reverted), `plans/<id>.json` (the plan each of those applies carried out) and `ledger.json`
//! (the admission ledger). The last two are the engine's; their places are named here so the
//! whole layout is in one file.
//!
//! The directory is root's alone (mode 0700, files 0600): a journal decides what `revert`
//! writes. [`StateDir::check`] refuses a directory someone else could have written into.

use std::fmt;
use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use nearnative_sys::trust::{self, TrustError};

pub const DEFAULT_STATE_DIR: &str = "/var/lib/nearnative";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: cannot create the state directory: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: cannot list the state directory: {source}")]
    List {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("journal id {id:?}: {reason}")]
    BadId { id: String, reason: &'static str },
    #[error(transparent)]
    Untrusted(#[from] TrustError),
}

/// The name of one apply's journal: 1 to 64 of `[A-Za-z0-9._-]`, not starting with `.`, so it
/// is always a plain file name inside `journals/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JournalId(String);

impl JournalId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for JournalId {
    type Error = StateError;
    fn try_from(id: String) -> Result<Self, StateError> {
        let bad = |reason| {
            Err(StateError::BadId {
                id: id.clone(),
                reason,
            })
        };
        if id.is_empty() || id.len() > 64 {
            return bad("must be 1 to 64 characters");
        }
        if id.starts_with('.') {
            return bad("must not start with \".\"");
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
        match id.chars().all(allowed) {
            true => Ok(JournalId(id)),
            false => bad("may hold only letters, digits, \".\", \"_\" and \"-\""),
        }
    }
}

impl TryFrom<&str> for JournalId {
    type Error = StateError;
    fn try_from(id: &str) -> Result<Self, StateError> {
        JournalId::try_from(id.to_owned())
    }
}

impl From<JournalId> for String {
    fn from(id: JournalId) -> String {
        id.0
    }
}

impl fmt::Display for JournalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    dir: PathBuf,
}

impl Default for StateDir {
    fn default() -> Self {
        StateDir::new(DEFAULT_STATE_DIR)
    }
}

impl StateDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StateDir { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn journals_dir(&self) -> PathBuf {
        self.dir.join("journals")
    }

    pub fn journal_path(&self, id: &JournalId) -> PathBuf {
        self.journals_dir().join(format!("{id}.json"))
    }

    pub fn plans_dir(&self) -> PathBuf {
        self.dir.join("plans")
    }

    pub fn plan_path(&self, id: &JournalId) -> PathBuf {
        self.plans_dir().join(format!("{id}.json"))
    }

    pub fn ledger_path(&self) -> PathBuf {
        self.dir.join("ledger.json")
    }

    /// Creates the directory, `journals/` and `plans/` (0700) if missing, checking that all
    /// of it is root's alone before (nothing is made inside a directory others could write)
    /// and after.
    pub fn ensure(&self) -> Result<(), StateError> {
        self.check()?;
        for dir in [self.journals_dir(), self.plans_dir()] {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|source| StateError::Create { path: dir, source })?;
        }
        self.check()
    }

    /// Refuses the directory unless it, everything in it and the directories above it are
    /// root's alone, with no link below it. Commands that only read (status, verify) call
    /// this; those that write get it from [`nearnative_sys::lock::StateLock::acquire`].
    pub fn check(&self) -> Result<(), StateError> {
        Ok(trust::check_state_dir(&self.dir)?)
    }

    /// The ids of the journals present, sorted; none when the directory does not exist.
    pub fn journal_ids(&self) -> Result<Vec<JournalId>, StateError> {
        ids_in(self.journals_dir())
    }

    /// The ids of the applied plans present, sorted.
    pub fn plan_ids(&self) -> Result<Vec<JournalId>, StateError> {
        ids_in(self.plans_dir())
    }
}

/// The `<id>` of every `<id>.json` in `dir`, sorted; none when `dir` does not exist.
fn ids_in(dir: PathBuf) -> Result<Vec<JournalId>, StateError> {
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(StateError::List { path: dir, source }),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| StateError::List {
            path: dir.clone(),
            source,
        })?;
        let name = entry.file_name();
        let id = name
            .to_str()
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|n| JournalId::try_from(n).ok());
        ids.extend(id);
    }
    ids.sort();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_ids_are_plain_file_names() {
        let cases = [
            ("simple", "vm1-2026-11-24", true),
            ("dot-dot", "..", false),
            ("slash", "a/b", false),
            ("hidden", ".x", false),
            ("empty", "", false),
        ];
        for (what, id, ok) in cases {
            assert_eq!(JournalId::try_from(id).is_ok(), ok, "{what}");
        }
    }

    #[test]
    fn layout_and_listing() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        assert!(state.journal_ids().unwrap().is_empty());
        state.ensure().unwrap();
        let id = JournalId::try_from("b").unwrap();
        fs::write(state.journal_path(&id), "{}").unwrap();
        fs::write(state.journals_dir().join(".a.json.tmp.1"), "").unwrap();
        assert_eq!(state.journal_ids().unwrap(), vec![id]);
        assert_eq!(state.ledger_path(), dir.path().join("state/ledger.json"));
    }

    #[test]
    fn ensure_makes_0700_directories_and_refuses_an_open_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        state.ensure().unwrap();
        for path in [
            state.dir().to_owned(),
            state.journals_dir(),
            state.plans_dir(),
        ] {
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{}", path.display());
        }
        fs::set_permissions(state.dir(), fs::Permissions::from_mode(0o777)).unwrap();
        let err = state.ensure().unwrap_err().to_string();
        assert!(err.contains("mode 0777"), "{err}");
        assert!(state.check().is_err());
    }
}
