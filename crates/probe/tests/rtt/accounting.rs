//! A real server and client on loopback: counts and percentiles agree, for UDP and TCP, in
//! closed-loop and fixed-rate mode, and the JSON carries the documented keys.

use std::time::Duration;

use nearnative_probe::rtt::{
    percentile_csv, run_client, ClientConfig, Mode, RunLength, Server, ServerConfig, Transport,
    Wait,
};

use super::{assert_consistent, assert_server_answered_all};

struct Case {
    what: &'static str,
    transport: Transport,
    rate: Option<u64>,
    wait: Wait,
}

const REQUESTS: u64 = 2000;

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for transport in [Transport::Udp, Transport::Tcp] {
        for rate in [None, Some(5000)] {
            cases.push(Case {
                what: match (transport, rate) {
                    (Transport::Udp, None) => "udp closed loop",
                    (Transport::Udp, Some(_)) => "udp fixed rate",
                    (Transport::Tcp, None) => "tcp closed loop",
                    (Transport::Tcp, Some(_)) => "tcp fixed rate",
                },
                transport,
                rate,
                wait: Wait::Block,
            });
        }
    }
    cases.push(Case {
        what: "udp closed loop, busy-poll wait",
        transport: Transport::Udp,
        rate: None,
        wait: Wait::BusyPoll { budget_us: 0 },
    });
    cases
}

#[test]
fn counts_and_percentiles_agree_over_loopback() {
    for case in cases() {
        let server = Server::bind(ServerConfig {
            transport: case.transport,
            wait: case.wait,
            ..ServerConfig::new("127.0.0.1:0")
        })
        .unwrap()
        .spawn()
        .unwrap();
        let config = ClientConfig {
            transport: case.transport,
            wait: case.wait,
            warmup: Duration::from_millis(50),
            length: RunLength::Count(REQUESTS),
            rate: case.rate,
            timeout: Duration::from_secs(2),
            ..ClientConfig::new(server.local_addr().to_string())
        };
        let report = run_client(&config).unwrap();
        let stats = server.stop().unwrap();
        let what = case.what;
        assert_eq!(report.sent, REQUESTS, "{what}");
        assert_consistent(what, &report);
        assert_server_answered_all(what, &report, &stats);
        assert!(report.count >= REQUESTS * 99 / 100, "{what}: {report:?}");
        assert_eq!(report.stale, 0, "{what}");
        match case.rate {
            None => {
                assert_eq!(report.mode, Mode::ClosedLoop, "{what}");
                assert!(report.service_ns.is_none(), "{what}");
            }
            Some(rate) => {
                assert_eq!(report.mode, Mode::FixedRate, "{what}");
                let service = report.service_ns.expect("service time in fixed-rate mode");
                // Each sample's corrected latency is at least its service time, so every
                // order statistic is too.
                assert!(service.p50 <= report.rtt_ns.p50, "{what}");
                assert!(service.max <= report.rtt_ns.max, "{what}");
                let achieved = report.rate.achieved;
                assert!(
                    (rate as f64 * 0.9..rate as f64 * 1.1).contains(&achieved),
                    "{what}: achieved {achieved}/s for a target of {rate}/s"
                );
            }
        }
    }
}

#[test]
fn duration_mode_stops_on_time_and_json_has_the_documented_keys() {
    let server = Server::bind(ServerConfig::new("127.0.0.1:0"))
        .unwrap()
        .spawn()
        .unwrap();
    let config = ClientConfig {
        warmup: Duration::from_millis(20),
        length: RunLength::Duration(Duration::from_millis(300)),
        rate: Some(2000),
        ..ClientConfig::new(server.local_addr().to_string())
    };
    let report = run_client(&config).unwrap();
    server.stop().unwrap();
    assert_consistent("duration mode", &report);
    assert_eq!(report.sent, 600, "300 ms at 2000/s");
    let json: serde_json::Value = serde_json::to_value(&report).unwrap();
    for key in [
        "min", "mean", "stddev", "p50", "p90", "p99", "p99_9", "p99_99", "p99_999", "max",
    ] {
        assert!(json["rtt_ns"][key].is_number(), "rtt_ns.{key} in {json}");
        assert!(json["service_ns"][key].is_number(), "service_ns.{key}");
    }
    for key in ["count", "lost", "sent", "payload"] {
        assert!(json[key].is_u64(), "{key} in {json}");
    }
    assert_eq!(json["mode"], "fixed-rate");
    assert_eq!(json["transport"], "udp");
    assert_eq!(json["wait"], "block");
    assert_eq!(json["rate"]["target"], 2000);
    assert!(json["rate"]["achieved"].as_f64().unwrap() > 1000.0);

    let csv = percentile_csv(report.histograms.as_ref().unwrap());
    let last_rtt = csv.lines().rfind(|l| l.starts_with("rtt,")).unwrap();
    assert_eq!(
        last_rtt.split(',').nth(3),
        Some(report.count.to_string().as_str()),
        "the spectrum ends at the sample count"
    );
    assert!(csv.lines().any(|l| l.starts_with("service,")));
}
