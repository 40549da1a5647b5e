//! The daemon's integration tests, one module per concern.

mod control;
mod discover;
mod events;
mod kubernetes;
mod metrics;
