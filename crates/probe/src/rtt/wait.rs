//! The client's wait strategies: how it waits for a reply (closed loop) or for its next event
//! (fixed rate).
//!
//! - Block and busy-poll receive on a blocking socket whose `SO_RCVTIMEO` is the reply timeout;
//!   the kernel wakes the thread (busy-poll first polls the device queue for its budget).
//! - Spin calls `recv` on a non-blocking socket in a loop. It reads the clock only every
//!   [`SPINS_PER_CLOCK_READ`] attempts, to check the deadline: a reply is stamped by the one
//!   clock read that follows its arrival, never delayed by one taken while idle.

use std::io;
use std::os::fd::AsFd;

use super::config::Wait;
use super::link::Link;
use super::sockopt::wait_readable;
use crate::clock::now_ns;

/// Empty receive attempts between two deadline checks while spinning. One attempt is a system
/// call of a few hundred ns, so the deadline is overshot by tens of µs at most.
pub const SPINS_PER_CLOCK_READ: u32 = 64;

/// How long before a fixed-rate send is due the sender stops sleeping and spins, so that the
/// kernel's wake-up latency (tens of µs in a VM) does not make the send late.
pub const SLEEP_MARGIN_NS: u64 = 50_000;

/// Waits for one whole message in `buf` until `deadline_ns`. `None` means the deadline passed.
#[inline]
pub fn recv_until(
    link: &mut Link,
    wait: Wait,
    buf: &mut [u8],
    deadline_ns: u64,
) -> io::Result<Option<usize>> {
    if wait == Wait::Spin {
        return spin_until(link, buf, deadline_ns);
    }
    loop {
        if let Some(len) = link.try_recv(buf)? {
            return Ok(Some(len));
        }
        if now_ns() >= deadline_ns {
            return Ok(None);
        }
    }
}

fn spin_until(link: &mut Link, buf: &mut [u8], deadline_ns: u64) -> io::Result<Option<usize>> {
    let mut spins: u32 = 0;
    loop {
        if let Some(len) = link.try_recv(buf)? {
            return Ok(Some(len));
        }
        spins = spins.wrapping_add(1);
        if spins % SPINS_PER_CLOCK_READ == 0 && now_ns() >= deadline_ns {
            return Ok(None);
        }
    }
}

/// Idles a fixed-rate client (whose socket is non-blocking) from `now_ns` until `wake_ns` or
/// until a message arrives. Spinning returns at once: the caller's loop is the spin.
pub fn idle_until(link: &Link, wait: Wait, now_ns: u64, wake_ns: u64) -> io::Result<()> {
    if wait == Wait::Spin || wake_ns <= now_ns {
        return Ok(());
    }
    wait_readable(link.as_fd(), wake_ns - now_ns).map(drop)
}
