//! Integration tests of the probe library, one module per instrument.

mod jitter;
