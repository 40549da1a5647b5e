//! Why a sample could not be taken at all. Everything short of that (a file missing or
//! malformed, a thread that vanished) is kept inside the [`crate::Sample`] as an unknown or
//! skipped, so one bad file never costs the whole measurement.

/// A refused spec or a sampler that could not run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("invalid sample spec: {reason}")]
    InvalidSpec { reason: String },
    #[error("invalid scope {text:?}: {reason}")]
    InvalidScope { text: String, reason: String },
    #[error("cannot start the sampling thread")]
    Spawn(#[source] std::io::Error),
    #[error("the sampling thread panicked")]
    SamplerPanicked,
}
