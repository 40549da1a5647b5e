//! How a running experiment reports its progress: a trait the caller implements (the CLI
//! draws a progress bar with it), so the library prints nothing itself.

/// Called from the experiment's thread, in order: `start` once, then `step` and `run_done`
/// as it goes, then `finish`.
pub trait Progress {
    /// The run will make `runs` measurements (closed-loop, fixed-rate and jitter per cell).
    fn start(&self, _runs: u64) {}
    /// What is happening now: a set-up step, or the cell and run being measured.
    fn step(&self, _what: &str) {}
    /// One measurement finished.
    fn run_done(&self) {}
    /// The experiment is over (measured, interrupted or failed).
    fn finish(&self) {}
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {}
