//! The netlink proc connector: the kernel reports every fork, exec and exit on the host to a
//! multicast group that a process holding CAP_NET_ADMIN may join.
//!
//! A busy host forks threads all the time, and the loop cares only about the forks and exits of
//! the few processes it watches, so a classic BPF socket filter, rebuilt whenever the watched
//! set changes, drops the others in the kernel: the daemon's thread wakes for every exec and
//! for its own processes' events, and for nothing else. The frame layouts are those of
//! `linux/netlink.h` (`nlmsghdr`), `linux/connector.h` (`cn_msg`) and `linux/cn_proc.h`
//! (`proc_event`); the kernel writes them in the host's byte order.

use std::collections::BTreeSet;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::mpsc::Sender;
use std::sync::{Mutex, MutexGuard};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::{
    bind, recv, send, socket_with, AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType,
};

use super::{Bell, Wake};

/// `nlmsghdr`: len u32, type u16, flags u16, seq u32, pid u32.
const NLMSG_HEADER_LEN: usize = 16;
/// `cn_msg`: id.idx u32, id.val u32, seq u32, ack u32, len u16, flags u16, then the payload.
const CN_MSG_LEN: usize = 20;
/// Where the `proc_event` starts in a frame.
const EVENT_OFFSET: usize = NLMSG_HEADER_LEN + CN_MSG_LEN;
/// `proc_event`: what u32, cpu u32, timestamp_ns u64, then the event's own fields.
const EVENT_WHAT_OFFSET: usize = EVENT_OFFSET;
const EVENT_DATA_OFFSET: usize = EVENT_OFFSET + 16;
/// The longest event read here (fork: four u32 fields).
const FRAME_MIN_LEN: usize = EVENT_DATA_OFFSET + 16;

const NLMSG_DONE: u16 = 3;
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_CN_MCAST_IGNORE: u32 = 2;

const PROC_EVENT_FORK: u32 = 0x0000_0001;
const PROC_EVENT_EXEC: u32 = 0x0000_0002;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;

/// fork: parent_pid, parent_tgid, child_pid, child_tgid. exec and exit: process_pid,
/// process_tgid.
const FORK_PARENT_TGID: usize = EVENT_DATA_OFFSET + 4;
const FORK_CHILD_PID: usize = EVENT_DATA_OFFSET + 8;
const FORK_CHILD_TGID: usize = EVENT_DATA_OFFSET + 12;
const PROCESS_PID: usize = EVENT_DATA_OFFSET;
const PROCESS_TGID: usize = EVENT_DATA_OFFSET + 4;

/// Room for a burst of a few thousand events (each costs the socket about 1 KiB of buffer)
/// while the thread is descheduled on a loaded housekeeping CPU.
const RECEIVE_BUFFER_BYTES: usize = 4 << 20;

/// One frame's worth, with room to spare for the kernel's newer, longer events.
const FRAME_BUFFER_BYTES: usize = 256;

/// One process event, as far as the loop cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProcEvent {
    Fork {
        parent_tgid: u32,
        child_pid: u32,
        child_tgid: u32,
    },
    Exec {
        tgid: u32,
    },
    Exit {
        pid: u32,
        tgid: u32,
    },
}

/// The event a frame carries, or `None` for a frame that is not a proc connector event or is an
/// event the loop does not need (uid, comm, ptrace changes, the subscription's acknowledgement).
pub(crate) fn parse_frame(frame: &[u8]) -> Option<ProcEvent> {
    if frame.len() < FRAME_MIN_LEN
        || (u32_at(frame, 0)? as usize) > frame.len()
        || u32_at(frame, NLMSG_HEADER_LEN)? != CN_IDX_PROC
        || u32_at(frame, NLMSG_HEADER_LEN + 4)? != CN_VAL_PROC
    {
        return None;
    }
    match u32_at(frame, EVENT_WHAT_OFFSET)? {
        PROC_EVENT_FORK => Some(ProcEvent::Fork {
            parent_tgid: u32_at(frame, FORK_PARENT_TGID)?,
            child_pid: u32_at(frame, FORK_CHILD_PID)?,
            child_tgid: u32_at(frame, FORK_CHILD_TGID)?,
        }),
        PROC_EVENT_EXEC => Some(ProcEvent::Exec {
            tgid: u32_at(frame, PROCESS_TGID)?,
        }),
        PROC_EVENT_EXIT => Some(ProcEvent::Exit {
            pid: u32_at(frame, PROCESS_PID)?,
            tgid: u32_at(frame, PROCESS_TGID)?,
        }),
        _ => None,
    }
}

fn u32_at(frame: &[u8], offset: usize) -> Option<u32> {
    let bytes = frame.get(offset..offset + 4)?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}

/// What the loop hears of an event: every exec; a new thread or child, or the exit, only of a
/// watched process.
///
/// The kernel fills a fork event's parent from the new task's `real_parent`, which for a thread
/// is the parent of its whole process: a new thread is told by its thread group (a watched
/// tgid, with a tid of its own), a new process by its parent's.
pub(crate) fn wake_for(event: ProcEvent, watched: &BTreeSet<u32>) -> Option<Wake> {
    match event {
        ProcEvent::Exec { tgid } => Some(Wake::Exec { pid: tgid }),
        ProcEvent::Fork {
            child_pid,
            child_tgid,
            ..
        } if child_pid != child_tgid && watched.contains(&child_tgid) => Some(Wake::Thread {
            tgid: child_tgid,
            tid: child_pid,
        }),
        ProcEvent::Fork {
            parent_tgid,
            child_pid,
            child_tgid,
        } if child_pid == child_tgid && watched.contains(&parent_tgid) => Some(Wake::Fork {
            parent_tgid,
            child_pid,
        }),
        ProcEvent::Exit { pid, tgid } if pid == tgid && watched.contains(&tgid) => {
            Some(Wake::Exit { pid })
        }
        _ => None,
    }
}

/// A subscribed proc connector socket and the processes whose forks and exits pass its filter.
#[derive(Debug)]
pub(crate) struct ProcConnector {
    socket: OwnedFd,
    watched: Mutex<BTreeSet<u32>>,
}

impl ProcConnector {
    /// Opens the socket, joins the proc connector's group and asks the kernel to report. Fails
    /// without CAP_NET_ADMIN (EPERM at the join).
    pub(crate) fn subscribe() -> io::Result<ProcConnector> {
        let socket = socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            Some(netlink::CONNECTOR),
        )?;
        // Forcing past rmem_max needs the same capability as the subscription; without it the
        // default buffer still works, it only overruns sooner.
        if rustix::net::sockopt::set_socket_recv_buffer_size_force(&socket, RECEIVE_BUFFER_BYTES)
            .is_err()
        {
            rustix::net::sockopt::set_socket_recv_buffer_size(&socket, RECEIVE_BUFFER_BYTES)?;
        }
        // Port 0: the kernel picks a free one, so several subscribers may live in one process.
        bind(&socket, &SocketAddrNetlink::new(0, CN_IDX_PROC))?;
        let connector = ProcConnector {
            socket,
            watched: Mutex::new(BTreeSet::new()),
        };
        connector.attach_filter(&BTreeSet::new())?;
        send_control(&connector.socket, PROC_CN_MCAST_LISTEN)?;
        Ok(connector)
    }

    /// Makes `pids` the watched set, in the filter and for [`wake_for`].
    pub(crate) fn watch(&self, pids: &BTreeSet<u32>) -> io::Result<()> {
        let mut watched = self.watched();
        if *watched != *pids {
            *watched = pids.clone();
            self.attach_filter(pids)?;
        }
        Ok(())
    }

    fn watched(&self) -> MutexGuard<'_, BTreeSet<u32>> {
        self.watched.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn attach_filter(&self, pids: &BTreeSet<u32>) -> io::Result<()> {
        let program = filter_program(pids);
        let fprog = libc::sock_fprog {
            // The program is at most a few thousand instructions (see MAX_FILTERED_PIDS).
            len: program.len() as u16,
            filter: program.as_ptr().cast_mut(),
        };
        // SAFETY: the socket is open for the call's duration; `fprog` points at `program`, which
        // outlives the call, and the kernel copies the instructions before returning.
        let rc = unsafe {
            libc::setsockopt(
                self.socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                std::ptr::from_ref(&fprog).cast(),
                std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Forwards the events to `tx` until `stop` rings or the receiver is gone.
    pub(crate) fn run(&self, stop: &Bell, tx: &Sender<Wake>) {
        let mut frame = [0u8; FRAME_BUFFER_BYTES];
        loop {
            let mut fds = [
                PollFd::new(&self.socket, PollFlags::IN),
                PollFd::new(stop, PollFlags::IN),
            ];
            match poll(&mut fds, None) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(_) => return,
            }
            if !fds[1].revents().is_empty() {
                return;
            }
            if self.drain(&mut frame, tx).is_err() {
                return;
            }
        }
    }

    /// Reads every queued frame. Err means the receiver is gone.
    fn drain(&self, frame: &mut [u8], tx: &Sender<Wake>) -> Result<(), Disconnected> {
        loop {
            let wake = match recv(&self.socket, &mut *frame, RecvFlags::DONTWAIT) {
                Ok((len, _)) => {
                    parse_frame(&frame[..len]).and_then(|event| wake_for(event, &self.watched()))
                }
                // The kernel dropped events: the loop must look at everything.
                Err(Errno::NOBUFS) => Some(Wake::Overrun),
                Err(Errno::INTR) => None,
                Err(_) => return Ok(()),
            };
            if let Some(wake) = wake {
                tx.send(wake).map_err(|_| Disconnected)?;
            }
        }
    }
}

impl Drop for ProcConnector {
    fn drop(&mut self) {
        // The kernel counts listeners host-wide and reports only while there are some; closing
        // the socket alone would leave it reporting to nobody.
        let _ = send_control(&self.socket, PROC_CN_MCAST_IGNORE);
    }
}

#[derive(Debug)]
struct Disconnected;

/// Sends the subscription operation `op` to the kernel's proc connector.
fn send_control(socket: &OwnedFd, op: u32) -> io::Result<()> {
    let message = control_message(op);
    send(socket, &message, SendFlags::empty())?;
    Ok(())
}

/// `nlmsghdr` + `cn_msg` + the operation, addressed to the proc connector.
fn control_message(op: u32) -> [u8; NLMSG_HEADER_LEN + CN_MSG_LEN + 4] {
    let mut message = [0u8; NLMSG_HEADER_LEN + CN_MSG_LEN + 4];
    let len = message.len() as u32;
    message[0..4].copy_from_slice(&len.to_ne_bytes());
    message[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
    let cn = NLMSG_HEADER_LEN;
    message[cn..cn + 4].copy_from_slice(&CN_IDX_PROC.to_ne_bytes());
    message[cn + 4..cn + 8].copy_from_slice(&CN_VAL_PROC.to_ne_bytes());
    message[cn + 16..cn + 18].copy_from_slice(&4u16.to_ne_bytes());
    message[EVENT_OFFSET..].copy_from_slice(&op.to_ne_bytes());
    message
}

/// Beyond this many watched processes the filter passes every fork and exit and [`wake_for`]
/// alone sorts them: the kernel takes at most 4096 instructions, and the filter compares the
/// set three times, two instructions a pid.
const MAX_FILTERED_PIDS: usize = 600;

const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const BPF_JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
const ACCEPT: u32 = u32::MAX;
const DROP: u32 = 0;

/// The socket filter: pass every exec, a fork whose parent or whose new task's thread group is
/// watched, an exit whose pid is a watched process (its leader: threads have pids of their
/// own), and drop the rest.
///
/// Each comparison that matches jumps to the `ret` right after it, so no conditional jump
/// (8-bit offsets) spans more than one instruction, whatever the set's size.
pub(crate) fn filter_program(pids: &BTreeSet<u32>) -> Vec<libc::sock_filter> {
    let mut fork_section = accept_if_watched(FORK_PARENT_TGID, pids);
    fork_section.extend(accept_if_watched(FORK_CHILD_TGID, pids));
    fork_section.push(ret(DROP));
    let mut exit_section = accept_if_watched(PROCESS_PID, pids);
    exit_section.push(ret(DROP));
    let mut program = vec![
        load(EVENT_WHAT_OFFSET),
        jump_if_not(PROC_EVENT_EXEC, 1),
        ret(ACCEPT),
        jump_if_not(PROC_EVENT_FORK, 1),
        jump(3),
        jump_if_not(PROC_EVENT_EXIT, 1),
        jump(1 + fork_section.len()),
        ret(DROP),
    ];
    program.extend(fork_section);
    program.extend(exit_section);
    program
}

/// Loads the u32 at `offset` and accepts the frame if it is one of `pids`; falls through if
/// not.
fn accept_if_watched(offset: usize, pids: &BTreeSet<u32>) -> Vec<libc::sock_filter> {
    if pids.len() > MAX_FILTERED_PIDS {
        return vec![ret(ACCEPT)];
    }
    let mut section = vec![load(offset)];
    for &pid in pids {
        section.push(jump_if_not(pid, 1));
        section.push(ret(ACCEPT));
    }
    section
}

/// The value an absolute word load sees for `value` written in host order: such loads read the
/// packet big-endian.
fn as_loaded(value: u32) -> u32 {
    u32::from_be_bytes(value.to_ne_bytes())
}

fn load(offset: usize) -> libc::sock_filter {
    instruction(BPF_LD_W_ABS, 0, 0, offset as u32)
}

/// Falls through when the accumulator holds `value`, skips `skip` instructions otherwise.
fn jump_if_not(value: u32, skip: u8) -> libc::sock_filter {
    instruction(BPF_JEQ_K, 0, skip, as_loaded(value))
}

fn jump(skip: usize) -> libc::sock_filter {
    instruction(BPF_JA, 0, 0, skip as u32)
}

fn ret(value: u32) -> libc::sock_filter {
    instruction(BPF_RET_K, 0, 0, value)
}

fn instruction(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame as the kernel sends it: the headers, then `what`, cpu, timestamp and `fields`.
    fn frame(what: u32, fields: &[u32]) -> Vec<u8> {
        let mut frame = Vec::new();
        let total = (EVENT_DATA_OFFSET + 4 * fields.len().max(6)) as u32;
        frame.extend(total.to_ne_bytes());
        frame.extend(NLMSG_DONE.to_ne_bytes());
        frame.extend(0u16.to_ne_bytes());
        frame.extend([0u8; 8]);
        frame.extend(CN_IDX_PROC.to_ne_bytes());
        frame.extend(CN_VAL_PROC.to_ne_bytes());
        frame.extend([0u8; 8]);
        frame.extend(((total as usize - EVENT_OFFSET) as u16).to_ne_bytes());
        frame.extend(0u16.to_ne_bytes());
        frame.extend(what.to_ne_bytes());
        frame.extend(1u32.to_ne_bytes());
        frame.extend(123_456_789u64.to_ne_bytes());
        for field in fields {
            frame.extend(field.to_ne_bytes());
        }
        frame.resize(total as usize, 0);
        frame
    }

    #[test]
    fn frames_parse_into_their_events() {
        assert_eq!(
            parse_frame(&frame(PROC_EVENT_FORK, &[10, 10, 11, 11])),
            Some(ProcEvent::Fork {
                parent_tgid: 10,
                child_pid: 11,
                child_tgid: 11
            })
        );
        assert_eq!(
            parse_frame(&frame(PROC_EVENT_EXEC, &[20, 20])),
            Some(ProcEvent::Exec { tgid: 20 })
        );
        assert_eq!(
            parse_frame(&frame(PROC_EVENT_EXIT, &[31, 30, 0, 9, 1, 1])),
            Some(ProcEvent::Exit { pid: 31, tgid: 30 })
        );
    }

    #[test]
    fn frames_that_are_not_wanted_events_are_skipped() {
        // A uid change, the subscription's acknowledgement (PROC_EVENT_NONE).
        assert_eq!(parse_frame(&frame(0x4, &[1, 1, 0, 0])), None);
        assert_eq!(parse_frame(&frame(0, &[0])), None);
        let mut other_connector = frame(PROC_EVENT_EXEC, &[20, 20]);
        other_connector[NLMSG_HEADER_LEN] = 7;
        assert_eq!(parse_frame(&other_connector), None);
        let whole = frame(PROC_EVENT_FORK, &[10, 10, 11, 11]);
        assert_eq!(parse_frame(&whole[..FRAME_MIN_LEN - 1]), None);
        let mut overlong = whole.clone();
        overlong[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(parse_frame(&overlong), None);
    }

    #[test]
    fn only_watched_processes_forks_and_exits_wake_the_loop() {
        let watched = BTreeSet::from([10]);
        let wake = |event| wake_for(event, &watched);
        assert_eq!(
            wake(ProcEvent::Exec { tgid: 99 }),
            Some(Wake::Exec { pid: 99 })
        );
        // A thread's parent is its process's parent.
        assert_eq!(
            wake(ProcEvent::Fork {
                parent_tgid: 5,
                child_pid: 12,
                child_tgid: 10
            }),
            Some(Wake::Thread { tgid: 10, tid: 12 })
        );
        assert_eq!(
            wake(ProcEvent::Fork {
                parent_tgid: 10,
                child_pid: 13,
                child_tgid: 13
            }),
            Some(Wake::Fork {
                parent_tgid: 10,
                child_pid: 13
            })
        );
        assert_eq!(
            wake(ProcEvent::Fork {
                parent_tgid: 11,
                child_pid: 14,
                child_tgid: 14
            }),
            None
        );
        // A thread of the watched process's parent.
        assert_eq!(
            wake(ProcEvent::Fork {
                parent_tgid: 10,
                child_pid: 15,
                child_tgid: 5
            }),
            None
        );
        assert_eq!(
            wake(ProcEvent::Exit { pid: 10, tgid: 10 }),
            Some(Wake::Exit { pid: 10 })
        );
        // One of its threads ending is not the process exiting.
        assert_eq!(wake(ProcEvent::Exit { pid: 12, tgid: 10 }), None);
        assert_eq!(wake(ProcEvent::Exit { pid: 11, tgid: 11 }), None);
    }

    /// Runs a filter built of the instructions `filter_program` emits, as the kernel would.
    fn run_filter(program: &[libc::sock_filter], frame: &[u8]) -> u32 {
        let mut accumulator = 0u32;
        let mut pc = 0usize;
        loop {
            let op = program[pc];
            pc += 1;
            match op.code {
                BPF_LD_W_ABS => {
                    let at = op.k as usize;
                    accumulator = u32::from_be_bytes(frame[at..at + 4].try_into().unwrap());
                }
                BPF_JEQ_K => {
                    pc += usize::from(if accumulator == op.k { op.jt } else { op.jf });
                }
                BPF_JA => pc += op.k as usize,
                BPF_RET_K => return op.k,
                code => panic!("unexpected instruction {code:#x}"),
            }
        }
    }

    #[test]
    fn the_filter_passes_execs_and_the_watched_processes_forks_and_exits() {
        for watched in [BTreeSet::from([10, 40]), (1..=1001).collect()] {
            let program = filter_program(&watched);
            assert!(program.len() <= 4096);
            let passes = |frame: Vec<u8>| run_filter(&program, &frame) == ACCEPT;
            assert!(passes(frame(PROC_EVENT_EXEC, &[77, 77])));
            assert!(passes(frame(PROC_EVENT_FORK, &[5, 5, 41, 40])));
            assert!(passes(frame(PROC_EVENT_FORK, &[10, 10, 42, 42])));
            assert!(passes(frame(PROC_EVENT_EXIT, &[40, 40, 0, 0])));
        }
        let program = filter_program(&BTreeSet::from([10, 40]));
        let passes = |frame: Vec<u8>| run_filter(&program, &frame) == ACCEPT;
        assert!(!passes(frame(PROC_EVENT_FORK, &[11, 11, 43, 43])));
        assert!(!passes(frame(PROC_EVENT_EXIT, &[41, 40, 0, 0])));
        assert!(!passes(frame(PROC_EVENT_EXIT, &[50, 50, 0, 0])));
        assert!(!passes(frame(0x200, &[10, 10])));
        assert!(filter_program(&(1..=600).collect()).len() <= 4096);
    }

    #[test]
    fn the_subscription_message_names_the_proc_connector_and_the_operation() {
        let message = control_message(PROC_CN_MCAST_LISTEN);
        assert_eq!(u32_at(&message, 0), Some(message.len() as u32));
        assert_eq!(u32_at(&message, NLMSG_HEADER_LEN), Some(CN_IDX_PROC));
        assert_eq!(u32_at(&message, NLMSG_HEADER_LEN + 4), Some(CN_VAL_PROC));
        assert_eq!(
            &message[NLMSG_HEADER_LEN + 16..NLMSG_HEADER_LEN + 18],
            &4u16.to_ne_bytes()
        );
        assert_eq!(u32_at(&message, EVENT_OFFSET), Some(PROC_CN_MCAST_LISTEN));
    }
}
