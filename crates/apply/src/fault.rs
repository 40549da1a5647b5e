//! The fault point: lets a test stop the executor dead right after its N-th journal write,
//! before or after the knob write that follows, as `kill -9` would at that instant — no
//! rollback, no further writes.
//!
//! Journal writes are counted per journaled step, as schema 1 stored the journal once per
//! step: a batch of k steps made durable by one append counts k, the i-th of them standing
//! for "the batch is on disk and the steps before i are written". So there is a crash point
//! right after every durable append and before and after every knob write.
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

/// Stop after journal write number `journal_write` (1-based, counting the empty journal at
/// the start, one per journaled step, and the final status).
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

    /// Called after the journal's header and its final status are stored: no knob write
    /// follows, so either crash point stops here.
    pub(crate) fn journal_written(&mut self) -> Result<(), ApplyError> {
        #[cfg(feature = "fault-injection")]
        {
            self.journal_writes += 1;
            if let Some(crash) = self.crash {
                if crash.journal_write == self.journal_writes {
                    return Err(ApplyError::Crashed { crash });
                }
            }
        }
        Ok(())
    }

    /// Called just before the knob write of each journaled step, its batch being on disk.
    pub(crate) fn knob_write_next(&mut self) -> Result<(), ApplyError> {
        #[cfg(feature = "fault-injection")]
        {
            self.journal_writes += 1;
            if let Some(crash) = self.crash {
                if crash.journal_write == self.journal_writes
                    && crash.point == CrashPoint::BeforeKnobWrite
                {
                    return Err(ApplyError::Crashed { crash });
                }
            }
        }
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
