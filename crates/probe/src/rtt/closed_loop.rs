//! Closed-loop ping-pong: one request in flight; the next leaves when the reply arrives or the
//! timeout passes.
//!
//! The hot loop allocates nothing and formats nothing: the request buffer is stamped in place,
//! the reply lands in a preallocated buffer, and each event (send, receive) reads the clock
//! once. A reply with an older sequence number (its request already counted lost) is counted
//! late and the wait goes on; anything else that is not our reply is counted stale.

use hdrhistogram::Histogram;

use super::exchange::{Exchange, Tally};
use super::wait::recv_until;
use super::wire;
use super::RttError;
use crate::clock::now_ns;
use crate::stats::record;

/// When a phase of the loop ends.
#[derive(Debug, Clone, Copy)]
pub enum PhaseEnd {
    /// The first exchange that finishes at or after this clock reading is the last.
    At(u64),
    /// After this many requests.
    Requests(u64),
}

/// Runs exchanges until `end`, recording each RTT into `rtt`.
pub fn run_phase(
    ex: &mut Exchange,
    end: PhaseEnd,
    rtt: &mut Histogram<u64>,
) -> Result<Tally, RttError> {
    let mut tally = Tally::default();
    loop {
        let finished_at = exchange_once(ex, rtt, &mut tally)?;
        let done = match end {
            PhaseEnd::At(deadline) => finished_at >= deadline,
            PhaseEnd::Requests(n) => tally.sent >= n,
        };
        if done {
            return Ok(tally);
        }
    }
}

/// One request and its reply (or timeout). Returns the clock reading the exchange ended on.
#[inline]
pub fn exchange_once(
    ex: &mut Exchange,
    rtt: &mut Histogram<u64>,
    tally: &mut Tally,
) -> Result<u64, RttError> {
    let sequence = ex.next_sequence;
    ex.next_sequence += 1;
    let sent_ns = now_ns();
    wire::stamp(&mut ex.request, sequence, sent_ns);
    ex.link
        .send(&ex.request)
        .map_err(|e| ex.io_error("send", e))?;
    tally.sent += 1;
    let deadline = sent_ns + ex.timeout_ns;
    loop {
        let received = recv_until(&mut ex.link, ex.wait, &mut ex.reply, deadline)
            .map_err(|e| ex.io_error("receive", e))?;
        let Some(len) = received else {
            tally.lost += 1;
            return Ok(deadline);
        };
        let received_ns = now_ns();
        match wire::reply_sequence(&ex.reply[..len], ex.session, ex.request.len()) {
            Some(s) if s == sequence => {
                record(rtt, received_ns - sent_ns);
                tally.count += 1;
                return Ok(received_ns);
            }
            Some(s) if s < sequence => tally.late += 1,
            _ => tally.stale += 1,
        }
        if received_ns >= deadline {
            tally.lost += 1;
            return Ok(received_ns);
        }
    }
}
