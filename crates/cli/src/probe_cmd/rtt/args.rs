//! The flags of `probe rtt`, and their translation into the probe library's configs.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use crate::duration::parse_duration;
use nearnative_probe::rtt::{
    ClientConfig, DemoConfig, RunLength, ServerConfig, Transport, Wait, DEFAULT_BIND,
};
use nearnative_sys::pin::parse_cpu_list;

/// Measure network round-trip time against `nearnative probe rtt serve`.
///
/// Without --rate: closed-loop ping-pong, one message in flight. With --rate N: fixed-rate
/// open loop; latency counts from each request's intended send time (coordinated omission
/// corrected as wrk2 does) and the service time from the actual send is reported beside it.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct RttArgs {
    #[command(subcommand)]
    pub command: Option<RttCommand>,
    #[command(flatten)]
    pub client: Box<ClientArgs>,
}

#[derive(Debug, Subcommand)]
pub enum RttCommand {
    /// Answer probe requests until SIGINT/SIGTERM, then print what was received.
    Serve(ServeArgs),
    /// Start a server and a client on loopback (server on CPU 1, client on CPU 0) and print
    /// the latency table of a few scenarios.
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The server, as HOST:PORT.
    #[arg(value_name = "ADDR:PORT", required = true)]
    pub target: Option<String>,
    #[command(flatten)]
    pub transport: TransportArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
    /// CPUs to pin the client thread to (a list: 0, 2-3), before the warm-up.
    #[arg(long = "cpu", value_name = "LIST")]
    pub cpus: Option<String>,
    /// Message length in bytes, the 32-byte header included.
    #[arg(long, default_value_t = 64, value_name = "BYTES")]
    pub payload: usize,
    /// Time spent exchanging before measuring; left out of the results.
    #[arg(long, default_value = "500ms", value_parser = parse_duration, value_name = "DURATION")]
    pub warmup: Duration,
    /// Measure for this long (e.g. 10s, 500ms).
    #[arg(
        long,
        default_value = "5s",
        value_parser = parse_duration,
        value_name = "DURATION",
        conflicts_with = "count"
    )]
    pub duration: Duration,
    /// Measure this many requests instead of a duration.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Fixed-rate open loop at N requests per second (N or N/s).
    #[arg(long, value_name = "N/s", value_parser = parse_rate)]
    pub rate: Option<u64>,
    /// A reply later than this counts as lost.
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write the percentile spectrum (CSV, values in ns) to FILE for plotting.
    #[arg(long, value_name = "FILE")]
    pub histogram_out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Loopback by default: the server answers anyone who reaches it.
    #[arg(long, default_value = DEFAULT_BIND, value_name = "ADDR:PORT")]
    pub bind: String,
    #[command(flatten)]
    pub transport: TransportArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
    /// CPUs to pin the serving thread to (a list: 1, 2-3).
    #[arg(long = "cpu", value_name = "LIST")]
    pub cpus: Option<String>,
    /// Print the final counts as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Measured time per scenario.
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Duration,
    /// Message length in bytes, the 32-byte header included.
    #[arg(long, default_value_t = 64, value_name = "BYTES")]
    pub payload: usize,
    /// Print the rows as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TransportArgs {
    /// Use UDP (the default).
    #[arg(long, conflicts_with = "tcp")]
    pub udp: bool,
    /// Use TCP (Nagle off).
    #[arg(long)]
    pub tcp: bool,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// How to wait for a message: a blocking recv, a spin on a non-blocking recv, or a
    /// blocking recv with SO_BUSY_POLL.
    #[arg(long, value_enum, default_value_t = WaitKind::Block)]
    pub wait: WaitKind,
    /// SO_BUSY_POLL budget in µs for --wait busy-poll.
    #[arg(long, default_value_t = 50, value_name = "US")]
    pub busy_poll_us: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WaitKind {
    Block,
    Spin,
    BusyPoll,
}

impl TransportArgs {
    pub fn transport(&self) -> Transport {
        if self.tcp {
            Transport::Tcp
        } else {
            Transport::Udp
        }
    }
}

impl WaitArgs {
    fn wait(&self) -> Wait {
        match self.wait {
            WaitKind::Block => Wait::Block,
            WaitKind::Spin => Wait::Spin,
            WaitKind::BusyPoll => Wait::BusyPoll {
                budget_us: self.busy_poll_us,
            },
        }
    }
}

impl ClientArgs {
    pub fn to_config(&self) -> anyhow::Result<ClientConfig> {
        let target = self.target.clone().unwrap_or_default();
        Ok(ClientConfig {
            transport: self.transport.transport(),
            wait: self.wait.wait(),
            cpus: self.cpus.as_deref().map(parse_cpu_list).transpose()?,
            payload: self.payload,
            warmup: self.warmup,
            length: match self.count {
                Some(n) => RunLength::Count(n),
                None => RunLength::Duration(self.duration),
            },
            rate: self.rate,
            timeout: self.timeout,
            ..ClientConfig::new(target)
        })
    }
}

impl ServeArgs {
    pub fn to_config(&self) -> anyhow::Result<ServerConfig> {
        Ok(ServerConfig {
            bind: self.bind.clone(),
            transport: self.transport.transport(),
            wait: self.wait.wait(),
            cpus: self.cpus.as_deref().map(parse_cpu_list).transpose()?,
        })
    }
}

impl DemoArgs {
    pub fn to_config(&self) -> anyhow::Result<DemoConfig> {
        nearnative_probe::rtt::check_payload(self.payload)?;
        Ok(DemoConfig {
            duration: self.duration,
            payload: self.payload,
            ..DemoConfig::default()
        })
    }
}

/// `1000` or `1000/s`. Zero is parsed here and refused by the probe with its reason.
fn parse_rate(text: &str) -> Result<u64, String> {
    let number = text.trim().trim_end_matches("/s");
    number
        .parse()
        .map_err(|_| format!("{text:?} is not a rate such as 1000 or 1000/s"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates() {
        assert_eq!(parse_rate("1000/s"), Ok(1000));
        assert_eq!(parse_rate("0"), Ok(0));
        assert!(parse_rate("fast").is_err());
    }
}
