//! Socket options that std does not offer and that the wait strategies need.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Sets `SO_BUSY_POLL`: a blocking receive on this socket polls the device queue for up to
/// `budget_us` microseconds before it sleeps.
pub fn set_busy_poll(fd: BorrowedFd<'_>, budget_us: u32) -> io::Result<()> {
    let value = libc::c_int::try_from(budget_us)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "busy-poll budget too large"))?;
    // SAFETY: `fd` is a live socket borrowed for the call; the option value is a c_int on the
    // stack whose size is passed alongside its address.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BUSY_POLL,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Waits until `fd` is readable or `timeout_ns` has passed, with `ppoll`'s nanosecond timeout.
/// Returns whether the socket is readable; an interrupted wait counts as "not yet".
pub fn wait_readable(fd: BorrowedFd<'_>, timeout_ns: u64) -> io::Result<bool> {
    let mut poll_fd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let timeout = libc::timespec {
        tv_sec: (timeout_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (timeout_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: one pollfd and one timespec, both live on the stack for the call; a null signal
    // mask leaves the thread's mask alone.
    let rc = unsafe { libc::ppoll(&mut poll_fd, 1, &timeout, std::ptr::null()) };
    match rc {
        n if n > 0 => Ok(true),
        0 => Ok(false),
        _ => match io::Error::last_os_error() {
            e if e.kind() == io::ErrorKind::Interrupted => Ok(false),
            e => Err(e),
        },
    }
}

/// `poll(2)` over `fds`, waiting at most `timeout_ms` (0: just look). Returns how many are
/// ready; an interrupted wait counts as none.
pub fn poll_fds(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: `fds` is a valid, exclusively borrowed slice of pollfd for the call, and its
    // length is passed with it.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    match usize::try_from(rc) {
        Ok(ready) => Ok(ready),
        Err(_) => match io::Error::last_os_error() {
            e if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            e => Err(e),
        },
    }
}

/// Asks for 1 ns of timer slack on the calling thread, so timed sleeps end when asked rather
/// than up to 50 µs later (the default slack of a normal thread).
pub fn tighten_timer_slack() {
    // Best effort: without it sleeps are merely less precise, and the fixed-rate sender spins
    // the last stretch to its due time anyway.
    let _ = nix::sys::prctl::set_timerslack(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsFd;

    #[test]
    fn wait_readable_times_out_then_sees_data() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(!wait_readable(socket.as_fd(), 1_000_000).unwrap());
        socket.send_to(b"x", socket.local_addr().unwrap()).unwrap();
        assert!(wait_readable(socket.as_fd(), 1_000_000_000).unwrap());
    }

    #[test]
    fn busy_poll_zero_is_always_allowed() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        set_busy_poll(socket.as_fd(), 0).unwrap();
    }
}
