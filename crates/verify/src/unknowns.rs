//! A bounded log of what the sampler could not read, so a host where every read fails
//! cannot grow the sample without limit.

use std::collections::BTreeSet;
use std::path::PathBuf;

use nearnative_host::{ReadError, Unknown};

/// Unknowns kept per sample; later ones are only counted.
pub const MAX_UNKNOWNS: usize = 100;

/// Unknowns in the order found, at most one per path.
#[derive(Debug, Default)]
pub struct UnknownLog {
    kept: Vec<Unknown>,
    paths: BTreeSet<PathBuf>,
    pub dropped: u64,
}

impl UnknownLog {
    pub fn push(&mut self, unknown: Unknown) {
        if self.paths.contains(&unknown.path) {
            return;
        }
        if self.kept.len() >= MAX_UNKNOWNS {
            self.dropped += 1;
            return;
        }
        self.paths.insert(unknown.path.clone());
        self.kept.push(unknown);
    }

    pub fn error(&mut self, object: impl Into<String>, err: &ReadError) {
        self.push(Unknown::from_error(object, err));
    }

    pub fn into_vec(self) -> Vec<Unknown> {
        self.kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_one_per_path_and_at_most_the_bound() {
        let mut log = UnknownLog::default();
        let unknown = |n: usize| Unknown {
            object: "x".into(),
            path: PathBuf::from(format!("/p/{n}")),
            reason: "r".into(),
        };
        log.push(unknown(0));
        log.push(unknown(0));
        for n in 1..MAX_UNKNOWNS + 5 {
            log.push(unknown(n));
        }
        assert_eq!(log.dropped, 5);
        assert_eq!(log.into_vec().len(), MAX_UNKNOWNS);
    }
}
