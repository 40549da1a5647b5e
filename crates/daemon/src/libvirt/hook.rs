//! `nearnative libvirt hook GUEST OP SUBOP EXTRA`, run by libvirtd as a qemu hook with the
//! domain's XML on stdin. It never calls libvirt (libvirtd waits for its hook: that
//! deadlocks); it tells the daemon on its control socket and exits:
//! - `prepare begin` with a switch: the daemon admits the domain's cores or refuses; a
//!   refusal (or an invalid switch) exits 1 with one line, which `virsh start` shows, and
//!   the domain does not start;
//! - `started begin`: the daemon applies it after the hook has returned. A domain without a
//!   switch is reported too, so the daemon fences the new bystander at once;
//! - `release end`: the daemon reverts it and releases its cores (nothing, if nothing is held);
//! - `reconnect begin`: the daemon adopts the running domain;
//! - anything else: nothing.
//!
//! A daemon that is not there (no socket, nobody listening) or does not answer within
//! [`LIBVIRT_TIMEOUT`] never blocks a start: the hook warns in one line and exits 0.

use std::io::Read;
use std::path::Path;

use nearnative_libvirt::metadata::{Domain, NAMESPACE};

use crate::control::{
    request, LibvirtAnswer, LibvirtEvent, LibvirtOp, Request, Response, LIBVIRT_TIMEOUT,
};

/// What the hook does for one call, decided from its arguments and the XML alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookStep {
    /// An operation the daemon does not act on.
    Nothing,
    /// Refuse the start, with this line.
    Refuse(String),
    /// Tell the daemon; `warning` is said first (a switch the hook could not read).
    Tell {
        event: Box<LibvirtEvent>,
        warning: Option<String>,
    },
}

/// How the hook ends: libvirt fails the operation on a non-zero exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookExit {
    pub refused: bool,
    /// One line for stderr, if any.
    pub line: Option<String>,
}

impl HookExit {
    fn quiet() -> HookExit {
        HookExit {
            refused: false,
            line: None,
        }
    }

    fn warning(line: String) -> HookExit {
        HookExit {
            refused: false,
            line: Some(line),
        }
    }
}

/// The operations the daemon acts on, by libvirt's OP and SUBOP.
fn operation(op: &str, subop: &str) -> Option<LibvirtOp> {
    match (op, subop) {
        ("prepare", "begin") => Some(LibvirtOp::Prepare),
        ("started", "begin") => Some(LibvirtOp::Started),
        ("release", "end") => Some(LibvirtOp::Release),
        ("reconnect", "begin") => Some(LibvirtOp::Reconnect),
        _ => None,
    }
}

/// The step for domain `guest`'s `op` `subop`, its XML being `xml`.
pub fn decide(guest: &str, op: &str, subop: &str, xml: &str) -> HookStep {
    let Some(op) = operation(op, subop) else {
        return HookStep::Nothing;
    };
    let event = |request, vcpus| {
        Box::new(LibvirtEvent {
            op,
            domain: guest.to_owned(),
            request,
            vcpus,
        })
    };
    if op == LibvirtOp::Release {
        // Released by name: the XML matters no more, and a domain whose XML could not be
        // read must still give its cores back.
        return HookStep::Tell {
            event: event(None, 0),
            warning: None,
        };
    }
    match (op, Domain::parse(xml)) {
        // Only the switch may stop a start: XML nearnative cannot read is its own limit.
        (LibvirtOp::Prepare, Err(err)) if xml.contains(NAMESPACE) => {
            HookStep::Refuse(err.to_string())
        }
        (LibvirtOp::Prepare, Ok(domain)) if domain.switch.is_none() => HookStep::Nothing,
        (_, Err(err)) => HookStep::Tell {
            event: event(None, 0),
            warning: Some(format!(
                "{err}; domain {guest} runs without latency sensitivity"
            )),
        },
        (_, Ok(domain)) => {
            let request = domain.switch.map(|s| s.request(guest, None, None));
            HookStep::Tell {
                event: event(request, domain.vcpus),
                warning: None,
            }
        }
    }
}

/// The hook, whole: `args` are libvirt's GUEST OP SUBOP EXTRA, `stdin` the domain XML, read
/// to its end whatever the operation (libvirt writes it all), and `socket` the daemon's.
pub fn run(socket: &Path, args: &[String], stdin: &mut dyn Read) -> HookExit {
    let mut xml = Vec::new();
    let unread = stdin.read_to_end(&mut xml).err();
    let [guest, op, subop, ..] = args else {
        return HookExit::warning(format!(
            "libvirt hook: expected GUEST OP SUBOP EXTRA, got {} argument(s); nothing done",
            args.len()
        ));
    };
    let xml = String::from_utf8_lossy(&xml);
    let step = match unread {
        Some(err) if operation(op, subop).is_some_and(|o| o != LibvirtOp::Release) => {
            return HookExit::warning(format!(
                "domain {guest}: cannot read its XML on stdin: {err}; it runs without latency \
                 sensitivity"
            ));
        }
        _ => decide(guest, op, subop, &xml),
    };
    match step {
        HookStep::Nothing => HookExit::quiet(),
        HookStep::Refuse(line) => HookExit {
            refused: true,
            line: Some(line),
        },
        HookStep::Tell { event, warning } => {
            let exit = tell(socket, *event);
            match (warning, exit.line) {
                (Some(warning), Some(line)) => HookExit {
                    line: Some(format!("{warning}; {line}")),
                    ..exit
                },
                (warning, line) => HookExit {
                    line: warning.or(line),
                    ..exit
                },
            }
        }
    }
}

/// Sends `event` and turns the daemon's answer (or its absence) into the hook's exit.
fn tell(socket: &Path, event: LibvirtEvent) -> HookExit {
    let domain = event.domain.clone();
    let absent = |why: String| {
        let what = match event.op {
            LibvirtOp::Release => format!("domain {domain}: nothing released"),
            _ => format!("domain {domain} runs without latency sensitivity"),
        };
        HookExit::warning(format!("{why}; {what}"))
    };
    let request_line = Request::Libvirt {
        event: event.clone(),
    };
    match request(socket, &request_line, LIBVIRT_TIMEOUT) {
        Ok(None) => absent(format!(
            "no nearnative daemon listens on {}",
            socket.display()
        )),
        Err(err) => absent(err.to_string()),
        Ok(Some(Response::Libvirt(LibvirtAnswer::Refused { reason }))) => HookExit {
            refused: true,
            line: Some(reason),
        },
        Ok(Some(Response::Libvirt(_))) => HookExit::quiet(),
        Ok(Some(Response::Error { message })) => absent(format!("the daemon: {message}")),
        Ok(Some(other)) => absent(format!(
            "the daemon answered `{}` to a libvirt event",
            other.name()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nearnative_plan::{Level, Target};

    fn xml(metadata: &str) -> String {
        format!(
            "<domain type='kvm'><name>nn1</name><vcpu placement='static' current='1'>2</vcpu>\
             <metadata>{metadata}</metadata></domain>"
        )
    }

    const SWITCH: &str = r#"<nn:latency xmlns:nn="urn:nearnative:latency:1" level="high"/>"#;
    const BAD: &str = r#"<nn:latency xmlns:nn="urn:nearnative:latency:1" level="medium"/>"#;

    fn told(step: HookStep) -> (LibvirtEvent, Option<String>) {
        match step {
            HookStep::Tell { event, warning } => (*event, warning),
            other => panic!("not told: {other:?}"),
        }
    }

    #[test]
    fn prepare_with_a_switch_asks_for_admission_of_its_starting_vcpus() {
        let (event, warning) = told(decide("nn1", "prepare", "begin", &xml(SWITCH)));
        assert_eq!(event.op, LibvirtOp::Prepare);
        assert_eq!(event.vcpus, 1);
        let request = event.request.unwrap();
        assert_eq!(request.target, Target::Vm("nn1".to_owned()));
        assert_eq!(request.level, Level::High);
        assert_eq!(warning, None);
    }

    #[test]
    fn an_invalid_switch_refuses_the_start_and_only_the_start() {
        assert_eq!(
            decide("nn1", "prepare", "begin", &xml(BAD)),
            HookStep::Refuse(
                r#"domain nn1: <nn:latency level="medium">: level "medium" is not one of: high, high-ht"#
                    .to_owned()
            )
        );
        let (event, warning) = told(decide("nn1", "started", "begin", &xml(BAD)));
        assert_eq!(event.request, None, "still told, to fence the bystander");
        assert!(warning
            .unwrap()
            .contains("runs without latency sensitivity"));
    }

    #[test]
    fn domains_without_a_switch_are_told_only_when_they_start() {
        assert_eq!(
            decide("web", "prepare", "begin", &xml("")),
            HookStep::Nothing
        );
        let (event, _) = told(decide("web", "started", "begin", &xml("")));
        assert_eq!((event.op, event.request), (LibvirtOp::Started, None));
        let (event, _) = told(decide("web", "reconnect", "begin", &xml(SWITCH)));
        assert!(event.request.is_some());
    }

    #[test]
    fn xml_nearnative_cannot_read_stops_no_start_without_the_switch() {
        let odd = "<domain type='kvm'><name>web</name><vcpu>many</vcpu></domain>";
        let (event, warning) = told(decide("web", "prepare", "begin", odd));
        assert_eq!(event.request, None);
        assert!(warning
            .unwrap()
            .contains("runs without latency sensitivity"));
        let with_switch = odd.replace(
            "</domain>",
            &format!("<metadata>{SWITCH}</metadata></domain>"),
        );
        assert!(matches!(
            decide("web", "prepare", "begin", &with_switch),
            HookStep::Refuse(_)
        ));
    }

    #[test]
    fn release_goes_by_name_whatever_the_xml() {
        let (event, warning) = told(decide("nn1", "release", "end", "not xml"));
        assert_eq!(event.op, LibvirtOp::Release);
        assert_eq!(event.domain, "nn1");
        assert_eq!(warning, None);
    }

    #[test]
    fn other_operations_do_nothing() {
        for (op, subop) in [
            ("start", "begin"),
            ("stopped", "end"),
            ("migrate", "begin"),
            ("prepare", "end"),
            ("restore", "begin"),
        ] {
            assert_eq!(
                decide("nn1", op, subop, &xml(SWITCH)),
                HookStep::Nothing,
                "{op}"
            );
        }
    }

    #[test]
    fn no_daemon_warns_and_lets_the_domain_start() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("control.sock");
        let args: Vec<String> = ["nn1", "prepare", "begin", "-"].map(String::from).to_vec();
        let exit = run(&socket, &args, &mut xml(SWITCH).as_bytes());
        assert!(!exit.refused);
        let line = exit.line.unwrap();
        assert!(line.contains("no nearnative daemon listens on"), "{line}");
        assert!(
            line.ends_with("domain nn1 runs without latency sensitivity"),
            "{line}"
        );
        let refused = run(&socket, &args, &mut xml(BAD).as_bytes());
        assert!(
            refused.refused,
            "an invalid switch refuses without a daemon too"
        );
    }
}
