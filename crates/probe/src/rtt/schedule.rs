//! The fixed-rate schedule and the coordinated-omission correction, as pure functions of time.
//!
//! Request `k` is *intended* to leave at `start + k / rate`. A sender that falls behind (a
//! preemption, a page fault, a full socket buffer) does not shift the schedule: it sends every
//! overdue request at once, and each keeps its intended time. Latency is measured from the
//! intended time, so a stall shows up in every request it delayed, as it would for a client that
//! did not stop sending. This is wrk2's correction for coordinated omission. The service time,
//! measured from the actual send, is what a naive load generator would report.

/// Hands out fixed-rate send slots: `count` requests at `rate` per second from `start_ns`.
#[derive(Debug, Clone)]
pub struct Pacer {
    start_ns: u64,
    rate: u64,
    count: u64,
    next: u64,
}

impl Pacer {
    /// `rate` must be at least 1 (the client's config check refuses 0).
    pub fn new(start_ns: u64, rate: u64, count: u64) -> Pacer {
        Pacer {
            start_ns,
            rate: rate.max(1),
            count,
            next: 0,
        }
    }

    /// The intended send time of request `index`, exact in integer ns (no drift over a run).
    pub fn intended_ns(&self, index: u64) -> u64 {
        let offset = u128::from(index) * 1_000_000_000 / u128::from(self.rate);
        self.start_ns + offset as u64
    }

    /// The intended time of the next request, or `None` once all have been handed out.
    pub fn next_due_ns(&self) -> Option<u64> {
        (self.next < self.count).then(|| self.intended_ns(self.next))
    }

    /// The next request and its intended time if it is due at `now_ns`. Called again after a
    /// send, it hands out every overdue request one after another.
    pub fn take_due(&mut self, now_ns: u64) -> Option<(u64, u64)> {
        let intended = self.next_due_ns().filter(|&t| t <= now_ns)?;
        let index = self.next;
        self.next += 1;
        Some((index, intended))
    }

    /// Requests handed out so far.
    pub fn handed_out(&self) -> u64 {
        self.next
    }
}

/// The two latencies of one answered fixed-rate request, in ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latencies {
    /// From the intended send time: what a user of a steady-rate service experiences.
    pub corrected_ns: u64,
    /// From the actual send: the service time alone.
    pub service_ns: u64,
}

pub fn latencies(intended_ns: u64, sent_ns: u64, reply_ns: u64) -> Latencies {
    Latencies {
        corrected_ns: reply_ns.saturating_sub(intended_ns),
        service_ns: reply_ns.saturating_sub(sent_ns),
    }
}

/// The send rate achieved by `sends` requests whose first and last left at the given times.
pub fn achieved_rate(sends: u64, first_sent_ns: u64, last_sent_ns: u64) -> f64 {
    match last_sent_ns.checked_sub(first_sent_ns) {
        Some(span) if span > 0 && sends >= 2 => (sends - 1) as f64 * 1e9 / span as f64,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const US: u64 = 1_000;

    #[test]
    fn intended_times_do_not_drift() {
        let pacer = Pacer::new(0, 3, 10);
        assert_eq!(pacer.intended_ns(1), 333_333_333);
        assert_eq!(pacer.intended_ns(3), 1_000_000_000);
        assert_eq!(pacer.intended_ns(3_000_000), 1_000_000 * 1_000_000_000);
    }

    /// Worked by hand: 1000 requests/s, so request k is due at k ms. The server answers 100 µs
    /// after each send. The sender runs on time until it is stalled from 1.5 ms to 12 ms; at
    /// 12 ms it sends requests 2..=12 back to back (their sends all at 12 ms), then carries on.
    ///
    /// Request k in 2..=12 is answered at 12.1 ms, so its latency from the intended time is
    /// 12.1 - k ms: 10.1, 9.1, ..., 1.1, 0.1 ms. Its service time is 0.1 ms, as for every
    /// other request. A naive client would report 0.1 ms for all 20 and hide the stall.
    #[test]
    fn stalled_sender_keeps_intended_times() {
        let mut pacer = Pacer::new(0, 1000, 20);
        let mut results = Vec::new();
        let sender_runs_at = (0..=1).map(|k| k * MS).chain((12..20).map(|k| k * MS));
        for now in sender_runs_at {
            while let Some((index, intended)) = pacer.take_due(now) {
                let reply = now + 100 * US;
                results.push((index, latencies(intended, now, reply)));
            }
        }
        assert_eq!(results.len(), 20);
        for (index, lat) in &results {
            assert_eq!(lat.service_ns, 100 * US, "request {index}");
        }
        let corrected: Vec<u64> = results.iter().map(|(_, l)| l.corrected_ns).collect();
        let mut expected = vec![100 * US, 100 * US];
        expected.extend((2..=12).map(|k| 12 * MS + 100 * US - k * MS));
        expected.extend(std::iter::repeat(100 * US).take(7));
        assert_eq!(corrected, expected);
        assert_eq!(corrected[2], 10 * MS + 100 * US);
        assert_eq!(pacer.next_due_ns(), None);
    }

    #[test]
    fn nothing_is_due_early() {
        let mut pacer = Pacer::new(5 * MS, 1000, 2);
        assert_eq!(pacer.take_due(5 * MS - 1), None);
        assert_eq!(pacer.take_due(5 * MS), Some((0, 5 * MS)));
        assert_eq!(pacer.take_due(5 * MS), None);
        assert_eq!(pacer.next_due_ns(), Some(6 * MS));
    }

    #[test]
    fn achieved_rate_counts_intervals() {
        assert_eq!(achieved_rate(11, 0, 10 * MS), 1000.0);
        assert_eq!(achieved_rate(1, 0, 0), 0.0);
    }
}
