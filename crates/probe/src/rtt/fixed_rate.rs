//! Fixed-rate open loop: requests leave on the [`Pacer`]'s schedule whatever the replies do,
//! and replies are taken as they come, on the same thread.
//!
//! One thread does both, with a non-blocking socket: each turn of the loop reads the clock
//! once, sends the request that is due (if any), else takes one reply (if any), else expires
//! timed-out requests and idles. Idling spins (`--wait spin`), or sleeps in `ppoll` until a
//! reply arrives or the next send is [`SLEEP_MARGIN_NS`] away and then spins to the due time
//! (`block`, `busy-poll`). Requests `0..warmup` are the warm-up: sent on the same schedule, but
//! left out of every count.

use hdrhistogram::Histogram;

use super::exchange::{Exchange, Tally};
use super::inflight::{InFlight, Pending};
use super::schedule::{achieved_rate, latencies, Pacer};
use super::wait::{idle_until, SLEEP_MARGIN_NS};
use super::wire;
use super::RttError;
use crate::clock::now_ns;
use crate::stats::record;

/// The in-flight ring never holds fewer slots than this, nor more than [`MAX_IN_FLIGHT`].
const MIN_IN_FLIGHT: u64 = 1024;
/// 1 M slots of 24 bytes: the ring's memory stays under 25 MiB at any rate and timeout.
const MAX_IN_FLIGHT: u64 = 1 << 20;

pub struct Plan {
    pub rate: u64,
    pub warmup_requests: u64,
    pub measured_requests: u64,
}

pub struct Outcome {
    pub tally: Tally,
    pub achieved_rate: f64,
    pub elapsed_ns: u64,
}

/// Room for twice the requests a full timeout can hold at `rate`, within the bounds.
pub fn in_flight_capacity(rate: u64, timeout_ns: u64) -> usize {
    let per_timeout = u128::from(rate) * u128::from(timeout_ns) / 1_000_000_000;
    (per_timeout * 2).clamp(u128::from(MIN_IN_FLIGHT), u128::from(MAX_IN_FLIGHT)) as usize
}

pub fn run(
    ex: &mut Exchange,
    plan: &Plan,
    rtt: &mut Histogram<u64>,
    service: &mut Histogram<u64>,
) -> Result<Outcome, RttError> {
    let mut loop_state = Loop {
        pacer: Pacer::new(
            now_ns(),
            plan.rate,
            plan.warmup_requests + plan.measured_requests,
        ),
        in_flight: InFlight::with_capacity(in_flight_capacity(plan.rate, ex.timeout_ns)),
        base_sequence: ex.next_sequence,
        warmup: plan.warmup_requests,
        tally: Tally::default(),
        first_sent_ns: 0,
        last_sent_ns: 0,
    };
    loop {
        let now = now_ns();
        if let Some((index, intended_ns)) = loop_state.pacer.take_due(now) {
            loop_state.send(ex, index, intended_ns, now)?;
            continue;
        }
        let received = ex
            .link
            .try_recv(&mut ex.reply)
            .map_err(|e| ex.io_error("receive", e))?;
        if let Some(len) = received {
            let reply_ns = now_ns();
            loop_state.take_reply(ex, len, reply_ns, rtt, service);
            continue;
        }
        loop_state.expire(now.saturating_sub(ex.timeout_ns));
        let next_send = loop_state.pacer.next_due_ns();
        let next_expiry = loop_state.in_flight.oldest_sent_ns();
        let wake = match (next_send, next_expiry) {
            (None, None) => break,
            (send, expiry) => send
                .map(|t| t.saturating_sub(SLEEP_MARGIN_NS))
                .unwrap_or(u64::MAX)
                .min(expiry.map_or(u64::MAX, |t| t + ex.timeout_ns)),
        };
        idle_until(&ex.link, ex.wait, now, wake).map_err(|e| ex.io_error("poll", e))?;
    }
    ex.next_sequence = loop_state.base_sequence + loop_state.pacer.handed_out();
    Ok(Outcome {
        tally: loop_state.tally,
        achieved_rate: achieved_rate(
            loop_state.tally.sent,
            loop_state.first_sent_ns,
            loop_state.last_sent_ns,
        ),
        elapsed_ns: now_ns().saturating_sub(loop_state.first_sent_ns),
    })
}

struct Loop {
    pacer: Pacer,
    in_flight: InFlight,
    base_sequence: u64,
    warmup: u64,
    tally: Tally,
    first_sent_ns: u64,
    last_sent_ns: u64,
}

impl Loop {
    fn measured(&self, index: u64) -> bool {
        index >= self.warmup
    }

    #[inline]
    fn send(
        &mut self,
        ex: &mut Exchange,
        index: u64,
        intended_ns: u64,
        now: u64,
    ) -> Result<(), RttError> {
        wire::stamp(&mut ex.request, self.base_sequence + index, now);
        ex.link
            .send(&ex.request)
            .map_err(|e| ex.io_error("send", e))?;
        let pending = Pending {
            intended_ns,
            sent_ns: now,
        };
        if self
            .in_flight
            .insert(pending)
            .is_some_and(|i| self.measured(i))
        {
            self.tally.lost += 1;
        }
        if self.measured(index) {
            if index == self.warmup {
                self.first_sent_ns = now;
            }
            self.last_sent_ns = now;
            self.tally.sent += 1;
        }
        Ok(())
    }

    #[inline]
    fn take_reply(
        &mut self,
        ex: &Exchange,
        len: usize,
        reply_ns: u64,
        rtt: &mut Histogram<u64>,
        service: &mut Histogram<u64>,
    ) {
        let index = wire::reply_sequence(&ex.reply[..len], ex.session, ex.request.len())
            .and_then(|s| s.checked_sub(self.base_sequence));
        let Some(index) = index else {
            self.tally.stale += 1;
            return;
        };
        match self.in_flight.complete(index) {
            Some(pending) if self.measured(index) => {
                let lat = latencies(pending.intended_ns, pending.sent_ns, reply_ns);
                record(rtt, lat.corrected_ns);
                record(service, lat.service_ns);
                self.tally.count += 1;
            }
            Some(_) => {}
            None if self.in_flight.was_sent(index) => {
                if self.measured(index) {
                    self.tally.late += 1;
                }
            }
            None => self.tally.stale += 1,
        }
    }

    fn expire(&mut self, cutoff_ns: u64) {
        let warmup = self.warmup;
        let lost = &mut self.tally.lost;
        self.in_flight.expire(cutoff_ns, |index| {
            if index >= warmup {
                *lost += 1;
            }
        });
    }
}
