//! `nearnative probe rtt`: the client (`rtt ADDR:PORT`), the server (`rtt serve`) and the
//! loopback demo (`rtt demo`). Parsing and printing only; the work is in
//! `nearnative_probe::rtt`.

mod args;
mod table;

use std::process::ExitCode;

use nearnative_probe::rtt::{self, Server};

pub use args::RttArgs;
use args::{ClientArgs, DemoArgs, RttCommand, ServeArgs};

use crate::output::{out, print_json};

pub fn run(args: RttArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(RttCommand::Serve(serve_args)) => serve(serve_args),
        Some(RttCommand::Demo(demo_args)) => demo(demo_args),
        None => client(*args.client),
    }
}

fn client(args: ClientArgs) -> anyhow::Result<ExitCode> {
    let config = args.to_config()?;
    let report = rtt::run_client(&config)?;
    if let (Some(path), Some(histograms)) = (&args.histogram_out, &report.histograms) {
        rtt::write_percentile_csv(histograms, path)?;
    }
    if args.json {
        print_json(&report)?;
    } else {
        out!("{}", table::client_report(&report));
    }
    Ok(ExitCode::SUCCESS)
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = args.to_config()?;
    let stop = nearnative_sys::signal::stop_on_signals()?;
    let server = Server::bind(config.clone())?;
    eprintln!(
        "nearnative: serving {} on {} (wait {}, cpus {}); Ctrl-C stops",
        args.transport.transport().name(),
        server.local_addr(),
        config.wait.name(),
        config.cpus.as_ref().map_or("any".into(), |c| c.to_list()),
    );
    let stats = server.run(stop)?;
    if args.json {
        print_json(&stats)?;
    } else {
        out!("{}", table::server_stats(&stats));
    }
    Ok(ExitCode::SUCCESS)
}

fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let rows = rtt::run_demo(&args.to_config()?)?;
    if args.json {
        print_json(&rows)?;
    } else {
        out!("{}", table::demo_table(&rows));
    }
    Ok(ExitCode::SUCCESS)
}
