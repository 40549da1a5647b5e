//! The measuring instrument: network round-trip time (`rtt`) and CPU jitter (`jitter`).
//!
//! All times are nanoseconds from `CLOCK_MONOTONIC` (see [`clock`]), recorded into HDR
//! histograms and summarised by [`stats::Summary`].

pub mod clock;
pub mod jitter;
pub mod rtt;
pub mod stats;
