//! The fault point: lets a test stop the executor dead right after its N-th journal write,
//! before or after the knob write that follows, as `kill -9` would at that instant — no
//! rollback, no further writes.
//!
//! Only the `fault-injection` feature (enabled from this crate's dev-dependencies, never by
//! a binary) exposes a way to arm it; without the feature [`FaultPoint`] holds nothing and
//! every check is `Ok`, so a release binary has no code path that can crash on purpose.

use crate::apply::ApplyError;

/// Where, relative to the knob write that follows the N-th journal write, to stop.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    BeforeKnobWrite,
    AfterKnobWrite,
}

/// Stop after journal write number `journal_write` (1-based, counting every store of the
/// journal: the empty one at the start, one per change, the final one).
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crash {
    pub journal_write: usize,
    pub point: CrashPoint,
}

#[derive(Debug, Default)]
pub(crate) struct FaultPoint {
    #[cfg(feature = "fault-injection")]
    crash: Option<Crash>,
    #[cfg(feature = "fault-injection")]
    journal_writes: usize,
}

impl FaultPoint {
    #[cfg(feature = "fault-injection")]
    pub(crate) fn armed(crash: Crash) -> Self {
        FaultPoint {
            crash: Some(crash),
            journal_writes: 0,
        }
    }

    /// Called after each journal store; `knob_write_follows` is false for the first and last
    /// stores, after which a crash "after the knob write" happens at once.
    pub(crate) fn journal_written(&mut self, knob_write_follows: bool) -> Result<(), ApplyError> {
        #[cfg(feature = "fault-injection")]
        {
            self.journal_writes += 1;
            if let Some(crash) = self.crash {
                let now = crash.point == CrashPoint::BeforeKnobWrite || !knob_write_follows;
                if crash.journal_write == self.journal_writes && now {
                    return Err(ApplyError::Crashed { crash });
                }
            }
        }
        let _ = knob_write_follows;
        Ok(())
    }

    /// Called after each knob write.
    pub(crate) fn knob_written(&self) -> Result<(), ApplyError> {
        #[cfg(feature = "fault-injection")]
        if let Some(crash) = self.crash {
            if crash.journal_write == self.journal_writes
                && crash.point == CrashPoint::AfterKnobWrite
            {
                return Err(ApplyError::Crashed { crash });
            }
        }
        Ok(())
    }
}
