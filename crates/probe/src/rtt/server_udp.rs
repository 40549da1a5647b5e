//! The UDP serving loop: receive a datagram, check it, answer it in place.
//!
//! Block and busy-poll wait in `recvfrom` (with a [`STOP_CHECK_INTERVAL`] timeout to see the
//! stop flag); spin calls `recvfrom` on a non-blocking socket in a loop. The one receive
//! buffer is a byte longer than the largest message, so an oversized datagram is seen as such.
//!
//! [`STOP_CHECK_INTERVAL`]: super::server::STOP_CHECK_INTERVAL

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};

use super::link::is_transient;
use super::server_stats::{ServerStats, SharedStats};
use super::wire::{self, MAX_MESSAGE_LEN};
use super::RttError;

pub fn serve(
    socket: &UdpSocket,
    stop: &AtomicBool,
    shared: &SharedStats,
) -> Result<ServerStats, RttError> {
    let mut buf = vec![0u8; MAX_MESSAGE_LEN + 1];
    let mut stats = ServerStats::default();
    while !stop.load(Ordering::Relaxed) {
        let (len, peer) = match socket.recv_from(&mut buf) {
            Ok(received) => received,
            // Spinning needs no pause: the system call itself paces the loop.
            Err(e) if is_transient(&e) => continue,
            Err(e) => {
                let local = socket.local_addr().map(|a| a.to_string());
                return Err(RttError::socket("receive", local.unwrap_or_default(), e));
            }
        };
        stats.received += 1;
        let message = &mut buf[..len];
        match wire::check_request(message) {
            Ok(()) => {
                wire::mark_reply(message);
                match socket.send_to(message, peer) {
                    Ok(_) => stats.answered += 1,
                    Err(_) => stats.send_errors += 1,
                }
            }
            Err(why) => stats.count_malformed(why),
        }
        shared.publish(&stats);
    }
    Ok(stats)
}
