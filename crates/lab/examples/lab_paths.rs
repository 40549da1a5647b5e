//! Bench helper (not the `lab` command): closed-loop UDP RTT across every lab path, quiet and
//! with the noisy neighbour, client pinned to the first online CPU and server to the last.
//! Prints one tab-separated row per path and condition. Run by `bench/lab-paths.sh`.
//!
//! Usage: lab_paths [ROUND_TRIPS]   (default 20000; needs root and iproute2)

use std::error::Error;
use std::time::Duration;

use nearnative_host::{cpus::online_cpus, CpuSet, Root};
use nearnative_lab::{clean_up_on_signals, Lab, Layer, NetPath, NoiseConfig, DEFAULT_RUN_DIR};
use nearnative_probe::rtt::{ClientConfig, RttReport, RunLength, ServerConfig};

fn main() -> Result<(), Box<dyn Error>> {
    let round_trips: u64 = std::env::args().nth(1).map_or(Ok(20_000), |a| a.parse())?;
    clean_up_on_signals()?;
    let cpus = online_cpus(&Root::default())?;
    let (client_cpu, server_cpu) = (cpus.first().unwrap_or(0), cpus.iter().last().unwrap_or(0));
    let mut lab = Lab::create(DEFAULT_RUN_DIR.as_ref())?;
    lab.set_forwarder_cpu(Some(server_cpu));
    let paths = Layer::ALL
        .iter()
        .map(|&layer| lab.build(layer))
        .collect::<Result<Vec<_>, _>>()?;
    println!("condition\tlayer\tp50_ns\tp99_ns\tp99_9_ns\tmax_ns\tlost\tp50_vs_loopback");
    for condition in ["quiet", "noisy"] {
        let noise = match condition {
            "noisy" => {
                Some(lab.start_noise(&NoiseConfig::new(cpus.clone(), Duration::from_secs(300)))?)
            }
            _ => None,
        };
        let mut loopback_p50 = None;
        for path in &paths {
            let report = measure(path, round_trips, client_cpu, server_cpu)?;
            let base = *loopback_p50.get_or_insert(report.rtt_ns.p50) as f64;
            let s = &report.rtt_ns;
            println!(
                "{condition}\t{}\t{}\t{}\t{}\t{}\t{}\t{:.2}",
                path.layer.name(),
                s.p50,
                s.p99,
                s.p99_9,
                s.max,
                report.lost,
                s.p50 as f64 / base
            );
        }
        if let Some(noise) = noise {
            let report = noise.stop()?;
            eprintln!(
                "{condition}: flood sent {} received {}",
                report.flood_sent, report.flood_received
            );
        }
    }
    lab.cleanup()?;
    Ok(())
}

fn measure(
    path: &NetPath,
    round_trips: u64,
    client_cpu: u32,
    server_cpu: u32,
) -> Result<RttReport, Box<dyn Error>> {
    let mut server = ServerConfig::new("0.0.0.0:0");
    server.cpus = Some(CpuSet::from_ids([server_cpu]));
    let mut client = ClientConfig::new("");
    client.cpus = Some(CpuSet::from_ids([client_cpu]));
    client.length = RunLength::Count(round_trips);
    client.warmup = Duration::from_millis(300);
    Ok(path.probe(server, client)?.0)
}
