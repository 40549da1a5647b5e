//! Samples the given CPUs for a while and prints what the sampler cost, as one JSON line:
//! the measuring half of bench/verify-overhead.sh.
//!
//! Usage: sample_cost CPULIST SECONDS

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use nearnative_host::{CpuSet, Root};
use nearnative_verify::{sample, SampleSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [cpus, seconds] = &args[..] else {
        return Err("usage: sample_cost CPULIST SECONDS".into());
    };
    let spec = SampleSpec::new(CpuSet::parse_list(cpus)?);
    let duration = Duration::from_secs_f64(seconds.parse()?);
    let sample = sample(&Root::default(), &spec, duration, &AtomicBool::new(false))?;
    let cost = &sample.sampler;
    let rounds = cost.threads.polls.max(1);
    println!(
        "{{\"duration_ns\":{},\"cpu_time_ns\":{},\"cpu_ms_per_s\":{:.2},\"us_per_round\":{:.1},\
         \"threads_listed\":{},\"candidates\":{},\"polls\":{},\"rescans\":{},\
         \"longest_poll_period_ns\":{},\"foreign_threads\":{}}}",
        sample.duration_ns,
        cost.cpu_time_ns,
        cost.cpu_time_ns as f64 / sample.duration_ns as f64 * 1e3,
        cost.cpu_time_ns as f64 / rounds as f64 / 1e3,
        cost.threads.threads_listed,
        cost.threads.candidates_max,
        cost.threads.polls,
        cost.threads.rescans,
        cost.longest_poll_period_ns,
        sample.threads.len(),
    );
    Ok(())
}
