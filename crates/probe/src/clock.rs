//! The probe's clock: `CLOCK_MONOTONIC`, read in nanoseconds.
//!
//! On Linux x86_64 and arm64 `clock_gettime(CLOCK_MONOTONIC)` is served by the vDSO from the
//! TSC (or the arch timer), so a read costs tens of nanoseconds and makes no system call. It is
//! unaffected by wall-clock steps, and NTP slews it by at most 500 ppm, which is noise at the
//! microsecond scale we report. `CLOCK_MONOTONIC_RAW` would avoid even the slew, but on many
//! kernels it is not in the vDSO and costs a real system call, which is worse for a probe.

use nix::time::{clock_gettime, ClockId};

/// Nanoseconds on `CLOCK_MONOTONIC`. Only differences between two readings mean anything.
pub fn now_ns() -> u64 {
    // CLOCK_MONOTONIC is always supported on Linux; the fallback keeps this total.
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_backwards() {
        let mut last = now_ns();
        for _ in 0..10_000 {
            let now = now_ns();
            assert!(now >= last);
            last = now;
        }
        assert!(last > 0);
    }
}
