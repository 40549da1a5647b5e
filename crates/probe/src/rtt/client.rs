//! The rtt client: checks its arguments, pins, connects, makes sure the server answers,
//! warms up, measures in the chosen mode, and returns an [`RttReport`].

use std::time::Duration;

use nearnative_host::Root;

use super::closed_loop::{exchange_once, run_phase, PhaseEnd};
use super::config::{resolve, ClientConfig, RunLength, Wait};
use super::exchange::{Exchange, Tally};
use super::fixed_rate::{self, Plan};
use super::link::{Link, LinkOptions};
use super::report::{Histograms, Mode, RateReport, RttReport};
use super::sockopt::tighten_timer_slack;
use super::RttError;
use crate::clock::now_ns;
use crate::stats::{new_histogram, Summary};
use nearnative_sys::pin::pin_current_thread_to;

/// Runs one measurement on the calling thread, which it pins to `config.cpus` first.
pub fn run_client(config: &ClientConfig) -> Result<RttReport, RttError> {
    config.validate(&Root::default())?;
    if let Some(cpus) = &config.cpus {
        pin_current_thread_to(cpus)?;
    }
    tighten_timer_slack();
    let peer = resolve(&config.target)?;
    let options = LinkOptions {
        transport: config.transport,
        wait: config.wait,
        nonblocking: config.rate.is_some(),
        timeout: config.timeout,
        reply_len: config.payload,
    };
    let link = Link::connect(peer, &options)?;
    let timeout_ns = duration_ns(config.timeout);
    let mut ex = Exchange::new(link, config.wait, peer, config.payload, timeout_ns);
    if config.rate.is_some() {
        // The fixed-rate socket is non-blocking: wait for the handshake by spinning.
        ex.wait = Wait::Spin;
    }
    handshake(&mut ex, config.timeout)?;
    ex.wait = config.wait;
    let clock_read_ns = clock_read_cost_ns();
    let measured = match config.rate {
        None => closed_loop(&mut ex, config)?,
        Some(rate) => fixed_rate(&mut ex, config, rate)?,
    };
    Ok(report(config, &ex, measured, clock_read_ns))
}

/// What a mode hands back to be reported.
struct Measured {
    mode: Mode,
    tally: Tally,
    elapsed_ns: u64,
    achieved_rate: f64,
    histograms: Histograms,
}

/// One exchange that must succeed, so a missing server is an error rather than a run of
/// 100% loss.
fn handshake(ex: &mut Exchange, timeout: Duration) -> Result<(), RttError> {
    let mut scratch = new_histogram();
    let mut tally = Tally::default();
    exchange_once(ex, &mut scratch, &mut tally)?;
    if tally.count == 1 {
        return Ok(());
    }
    Err(RttError::NoReply {
        addr: ex.peer.to_string(),
        timeout,
    })
}

fn closed_loop(ex: &mut Exchange, config: &ClientConfig) -> Result<Measured, RttError> {
    let mut rtt = new_histogram();
    let warmup_end = now_ns() + duration_ns(config.warmup);
    if !config.warmup.is_zero() {
        run_phase(ex, PhaseEnd::At(warmup_end), &mut rtt)?;
        rtt.reset();
    }
    let start = now_ns();
    let end = match config.length {
        RunLength::Duration(d) => PhaseEnd::At(start + duration_ns(d)),
        RunLength::Count(n) => PhaseEnd::Requests(n),
    };
    let tally = run_phase(ex, end, &mut rtt)?;
    let elapsed_ns = now_ns() - start;
    Ok(Measured {
        mode: Mode::ClosedLoop,
        tally,
        elapsed_ns,
        achieved_rate: tally.sent as f64 * 1e9 / elapsed_ns.max(1) as f64,
        histograms: Histograms { rtt, service: None },
    })
}

fn fixed_rate(ex: &mut Exchange, config: &ClientConfig, rate: u64) -> Result<Measured, RttError> {
    let requests_in = |d: Duration| {
        let requests = (d.as_nanos() * u128::from(rate)).div_ceil(1_000_000_000);
        u64::try_from(requests).unwrap_or(u64::MAX)
    };
    let plan = Plan {
        rate,
        warmup_requests: requests_in(config.warmup),
        measured_requests: match config.length {
            RunLength::Duration(d) => requests_in(d).max(1),
            RunLength::Count(n) => n,
        },
    };
    let mut rtt = new_histogram();
    let mut service = new_histogram();
    let outcome = fixed_rate::run(ex, &plan, &mut rtt, &mut service)?;
    Ok(Measured {
        mode: Mode::FixedRate,
        tally: outcome.tally,
        elapsed_ns: outcome.elapsed_ns,
        achieved_rate: outcome.achieved_rate,
        histograms: Histograms {
            rtt,
            service: Some(service),
        },
    })
}

fn report(
    config: &ClientConfig,
    ex: &Exchange,
    measured: Measured,
    clock_read_ns: f64,
) -> RttReport {
    let Measured {
        mode,
        tally,
        elapsed_ns,
        achieved_rate,
        histograms,
    } = measured;
    RttReport {
        mode,
        transport: config.transport,
        wait: config.wait.name().to_owned(),
        busy_poll_us: config.wait.busy_poll_us(),
        target: ex.peer.to_string(),
        payload: config.payload,
        cpus: config.cpus.as_ref().map(|c| c.to_list()),
        warmup_ns: duration_ns(config.warmup),
        elapsed_ns,
        sent: tally.sent,
        count: tally.count,
        lost: tally.lost,
        late: tally.late,
        stale: tally.stale,
        timeout_ns: ex.timeout_ns,
        rtt_ns: Summary::of(&histograms.rtt),
        service_ns: histograms.service.as_ref().map(Summary::of),
        rate: RateReport {
            target: config.rate,
            achieved: achieved_rate,
        },
        clock_read_ns,
        histograms: Some(histograms),
    }
}

/// The median cost of one `now_ns()` read, over 101 batches of 1000 back-to-back reads.
pub fn clock_read_cost_ns() -> f64 {
    const BATCH: u64 = 1000;
    let mut batches: Vec<u64> = (0..101)
        .map(|_| {
            let start = now_ns();
            for _ in 0..BATCH {
                std::hint::black_box(now_ns());
            }
            now_ns() - start
        })
        .collect();
    batches.sort_unstable();
    batches[batches.len() / 2] as f64 / BATCH as f64
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
