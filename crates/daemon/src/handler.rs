//! The daemon's answers on the control socket. `apply`, `revert` and `verify` run through an
//! engine of their own on the connection's thread (the engine is not shared across threads).
//! `apply` and `revert` take the daemon's turn so the loop and a request never meet at the
//! state lock; `verify` only reads, and its sample may last seconds, so it does not hold the
//! loop up. `status` is the loop's last published view. After a change the loop is woken to see it at once.
//!
//! A libvirt hook's event is answered by [`crate::libvirt`]: admission at once, the rest by
//! the loop, woken.
//!
//! A CLI apply records origin `cli`: the loop keeps it true (drift, new threads) and releases
//! it when its target exits, but no policy reverts it.

use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use nearnative_engine::{Engine, RevertWhich};
use nearnative_plan::{Allocation, PlanRequest, WorkloadKey};

use crate::control::{Handler, Request, Response};
use crate::daemon::DaemonConfig;
use crate::events::Wake;
use crate::kubernetes::Containers;
use crate::libvirt::answer::LibvirtSide;
use crate::libvirt::Domains;
use crate::pending::pending_except;
use crate::status::DaemonStatus;

/// The origin of applies made through the control socket.
pub const CLI_ORIGIN: &str = "cli";

pub struct ControlHandler {
    state_dir: std::path::PathBuf,
    status: Arc<Mutex<DaemonStatus>>,
    turn: Arc<Mutex<()>>,
    loop_tx: Sender<Wake>,
    libvirt: LibvirtSide,
}

impl ControlHandler {
    pub fn new(
        config: &DaemonConfig,
        status: Arc<Mutex<DaemonStatus>>,
        turn: Arc<Mutex<()>>,
        loop_tx: Sender<Wake>,
        domains: Arc<Mutex<Domains>>,
        containers: Arc<Mutex<Containers>>,
    ) -> ControlHandler {
        ControlHandler {
            state_dir: config.state_dir.clone(),
            status,
            turn,
            loop_tx,
            libvirt: LibvirtSide {
                domains,
                containers,
                scope: config.scope.clone(),
                libvirt_uri: config.libvirt_uri.clone(),
                root: nearnative_host::Root::default(),
            },
        }
    }

    /// The admissions not applied yet of every workload but `request`'s.
    fn pending_except(&self, request: &PlanRequest) -> Vec<Allocation> {
        let key = WorkloadKey(request.target.to_string());
        let (domains, containers) = (&self.libvirt.domains, &self.libvirt.containers);
        pending_except(domains, containers, &key, Instant::now())
    }

    /// Wakes the loop for a sweep: the ledger changed under it.
    fn wake_loop(&self) {
        // The loop is gone only when the daemon is on its way out.
        let _ = self.loop_tx.send(Wake::Control);
    }
}

impl Handler for ControlHandler {
    fn handle(&self, request: Request) -> Response {
        let engine = Engine::live(&self.state_dir);
        let response = match request {
            Request::Status => {
                let status = self.status.lock().unwrap_or_else(|e| e.into_inner());
                return Response::Status(status.clone());
            }
            Request::Verify { target, options } => {
                let never = AtomicBool::new(false);
                return match engine.verify(&target, &options.options(), &never) {
                    Ok(report) => Response::Verified(Box::new(report)),
                    Err(err) => Response::error(&err),
                };
            }
            Request::Libvirt { event } => {
                return self
                    .libvirt
                    .answer(event, &engine, &self.turn, &self.loop_tx);
            }
            Request::Apply { request } => {
                let _turn = self.turn.lock().unwrap_or_else(|e| e.into_inner());
                let pending = self.pending_except(&request);
                match engine.apply_pending(&request, CLI_ORIGIN, &pending) {
                    Ok(applied) => Response::Applied(Box::new(applied)),
                    Err(err) => Response::error(&err),
                }
            }
            Request::Revert { which } => {
                let _turn = self.turn.lock().unwrap_or_else(|e| e.into_inner());
                match engine.revert(&RevertWhich::from(which)) {
                    Ok(reverted) => Response::Reverted(Box::new(reverted)),
                    Err(err) => Response::error(&err),
                }
            }
        };
        self.wake_loop();
        response
    }
}
