//! The tap layer: two tap devices, one in the client's namespace and one in the server's,
//! joined by a user-space forwarder that copies each Ethernet frame from one tap's fd to the
//! other's. This is the shape of a VM's network path (tap plus a user-space device model),
//! without the guest: every frame leaves the kernel and re-enters it once.
//!
//! The taps are not persistent: each exists while its fd is open, so they vanish with the
//! forwarder, or with the process even after `kill -9`. They are still registered, so a
//! registry names everything the run made.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use nearnative_sys::pin::{pin_current_thread, PinError};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// The forwarder thread's name.
pub const FORWARDER_THREAD_NAME: &str = "nn-lab-tapfwd";
/// How long the forwarder waits for a frame before looking at its stop flag, in ms.
const STOP_CHECK_MS: u16 = 100;
/// Larger than any frame a tap without offloads hands up (MTU 1500 plus the Ethernet header).
const FRAME_BUFFER: usize = 65_536;

#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("cannot open /dev/net/tun (is the tun module available?)")]
    OpenTun(#[source] io::Error),
    #[error("cannot create tap {name}")]
    Create {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot start thread {FORWARDER_THREAD_NAME}")]
    Spawn(#[source] io::Error),
    #[error("tap forwarder: cannot pin")]
    Pin(#[source] PinError),
    #[error("tap forwarder: {op} failed")]
    Io {
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("thread {FORWARDER_THREAD_NAME} panicked")]
    Panicked,
}

/// Creates the tap `name` in the calling thread's network namespace and returns its fd.
pub fn open_tap(name: &str) -> Result<File, TapError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(TapError::OpenTun)?;
    let create_err = |source| TapError::Create {
        name: name.to_owned(),
        source,
    };
    let mut request: libc::ifreq = ifreq_named(name).map_err(create_err)?;
    request.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads one ifreq, which lives on this stack frame for the whole call;
    // the fd is an open /dev/net/tun.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut request) };
    if rc < 0 {
        return Err(create_err(io::Error::last_os_error()));
    }
    Ok(file)
}

fn ifreq_named(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain old data (arrays and a union of integers, addresses and a
    // pointer), for which all-zero bytes are a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= request.ifr_name.len() || name.bytes().any(|b| b == 0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long or holds NUL",
        ));
    }
    for (slot, byte) in request.ifr_name.iter_mut().zip(name.bytes()) {
        *slot = byte as libc::c_char;
    }
    Ok(request)
}

/// The user-space side of the tap path: a thread copying frames both ways between two taps.
#[derive(Debug)]
pub struct Forwarder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<u64, TapError>>>,
    tid: u32,
}

impl Forwarder {
    /// Starts forwarding between `a` and `b`, on a thread pinned to `cpu` when given. Returns
    /// once the thread runs, so its id is known (the lab's apply names it).
    pub fn start(a: File, b: File, cpu: Option<u32>) -> Result<Forwarder, TapError> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let (tid_sender, tid_receiver) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name(FORWARDER_THREAD_NAME.into())
            .spawn(move || {
                if let Some(cpu) = cpu {
                    pin_current_thread(cpu).map_err(TapError::Pin)?;
                }
                let _ = tid_sender.send(nix::unistd::gettid().as_raw().unsigned_abs());
                forward(a, b, &thread_stop)
            })
            .map_err(TapError::Spawn)?;
        let mut forwarder = Forwarder {
            stop,
            thread: Some(thread),
            tid: 0,
        };
        match tid_receiver.recv() {
            Ok(tid) => forwarder.tid = tid,
            // The thread ended before running: its own error says why.
            Err(_) => return forwarder.halt().and(Err(TapError::Panicked)),
        }
        Ok(forwarder)
    }

    /// The forwarding thread's id.
    pub fn tid(&self) -> u32 {
        self.tid
    }

    /// The flag that stops the thread when raised.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Stops the thread (within 100 ms), closing both taps; returns the frames forwarded.
    pub fn stop(mut self) -> Result<u64, TapError> {
        self.halt()
    }

    fn halt(&mut self) -> Result<u64, TapError> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| TapError::Panicked)?,
            None => Ok(0),
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}

fn forward(mut a: File, mut b: File, stop: &AtomicBool) -> Result<u64, TapError> {
    let mut frame = vec![0u8; FRAME_BUFFER];
    let mut frames = 0;
    while !stop.load(Ordering::Relaxed) {
        let (a_ready, b_ready) = wait_readable(&a, &b)?;
        if a_ready {
            frames += copy_frame(&mut a, &mut b, &mut frame)?;
        }
        if b_ready {
            frames += copy_frame(&mut b, &mut a, &mut frame)?;
        }
    }
    Ok(frames)
}

fn wait_readable(a: &File, b: &File) -> Result<(bool, bool), TapError> {
    let mut fds = [
        PollFd::new(a.as_fd(), PollFlags::POLLIN),
        PollFd::new(b.as_fd(), PollFlags::POLLIN),
    ];
    match poll(&mut fds, PollTimeout::from(STOP_CHECK_MS)) {
        Ok(_) => {}
        Err(nix::errno::Errno::EINTR) => return Ok((false, false)),
        Err(e) => {
            return Err(TapError::Io {
                op: "poll",
                source: e.into(),
            })
        }
    }
    let readable = |fd: &PollFd| fd.revents().is_some_and(|r| r.contains(PollFlags::POLLIN));
    Ok((readable(&fds[0]), readable(&fds[1])))
}

/// Moves one frame. A frame the other side refuses (its queue full, the device going down) is
/// dropped as a wire would drop it.
fn copy_frame(from: &mut File, to: &mut File, frame: &mut [u8]) -> Result<u64, TapError> {
    let len = match from.read(frame) {
        Ok(len) => len,
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
        Err(source) => return Err(TapError::Io { op: "read", source }),
    };
    Ok(u64::from(to.write(&frame[..len]).is_ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_names_that_do_not_fit_ifreq() {
        assert!(ifreq_named("nnl4194304zzt0").is_ok());
        assert!(ifreq_named("nnl12345678901234").is_err());
        assert!(ifreq_named("a\0b").is_err());
    }
}
