//! The daemon's answers to the qemu hook's events, on the control socket's threads.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nearnative_engine::{Engine, EngineError, RevertWhich};
use nearnative_host::Root;
use nearnative_libvirt::metadata::exclusive_vcpus;
use nearnative_plan::PlanRequest;
use nearnative_sys::lock::LockError;

use super::{in_daemon, key_of, origin_of, Domains};
use crate::control::{error_line, LibvirtAnswer, LibvirtEvent, LibvirtOp, Response};
use crate::events::Wake;
use crate::held;
use crate::kubernetes::Containers;
use crate::log::line as log;
use crate::pending::pending_except;

/// How long admission tries again while a CLI apply or revert (not through the daemon)
/// holds the state lock: well within the hook's wait.
const BUSY_FOR: Duration = Duration::from_secs(2);
const BUSY_RETRY: Duration = Duration::from_millis(50);

/// What answering the hook needs of the daemon.
pub struct LibvirtSide {
    pub domains: Arc<Mutex<Domains>>,
    /// The Kubernetes containers admitted and not applied yet: their cores are taken too.
    pub containers: Arc<Mutex<Containers>>,
    /// The daemon's `--scope` (a cgroup path) and `--libvirt-uri`, for every domain's request.
    pub scope: Option<String>,
    pub libvirt_uri: Option<String>,
    pub root: Root,
}

impl LibvirtSide {
    fn domains(&self) -> std::sync::MutexGuard<'_, Domains> {
        self.domains.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn request(&self, request: PlanRequest) -> PlanRequest {
        in_daemon(request, self.scope.as_deref(), self.libvirt_uri.as_deref())
    }

    /// Answers `event`. `turn` is the daemon's turn at the engine, `wake` the loop's bell.
    pub fn answer(
        &self,
        event: LibvirtEvent,
        engine: &Engine,
        turn: &Mutex<()>,
        wake: &Sender<Wake>,
    ) -> Response {
        let answer = match (event.op, event.request) {
            (LibvirtOp::Prepare, Some(request)) => {
                let request = self.request(request);
                let _turn = turn.lock().unwrap_or_else(|e| e.into_inner());
                self.admit(&event.domain, &request, event.vcpus, engine)
            }
            // Started without the switch (it was removed since): an old declaration, left by
            // a release the hook could not deliver, must not apply it again.
            (LibvirtOp::Prepare, None) => {
                self.domains().forget(&event.domain);
                LibvirtAnswer::Noted
            }
            (LibvirtOp::Started | LibvirtOp::Reconnect, request) => {
                if let Some(request) = request {
                    if event.op == LibvirtOp::Reconnect {
                        let how = match self.domains().is_declared(&event.domain) {
                            true => "kept",
                            false => "adopted",
                        };
                        log(&format!(
                            "vm:{}: {how} at libvirt's reconnect",
                            event.domain
                        ));
                    }
                    self.domains().declare(&event.domain, self.request(request));
                } else {
                    self.domains().forget(&event.domain);
                }
                LibvirtAnswer::Noted
            }
            (LibvirtOp::Release, _) => {
                self.domains().forget(&event.domain);
                let _turn = turn.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(err) = self.release(&event.domain, engine) {
                    return Response::error(&err);
                }
                LibvirtAnswer::Noted
            }
        };
        // The loop is gone only when the daemon is on its way out.
        let _ = wake.send(Wake::Control);
        Response::Libvirt(answer)
    }

    /// Admits domain `name`'s cores, counting the admissions still pending, and holds them
    /// for it until it is applied.
    fn admit(
        &self,
        name: &str,
        request: &PlanRequest,
        vcpus: u32,
        engine: &Engine,
    ) -> LibvirtAnswer {
        let threads = exclusive_vcpus(request.vcpus.as_ref(), vcpus);
        let key = key_of(name);
        let now = Instant::now();
        let pending = pending_except(&self.domains, &self.containers, &key, now);
        let deadline = Instant::now() + BUSY_FOR;
        let admitted = loop {
            match engine.admit(request, threads, &pending) {
                Err(EngineError::Lock(LockError::Busy { .. })) if Instant::now() < deadline => {
                    std::thread::sleep(BUSY_RETRY);
                }
                other => break other,
            }
        };
        match admitted {
            Ok(allocation) => {
                let exclusive_cpus = allocation.exclusive_cpus.clone();
                log(&format!(
                    "{key} admitted at libvirt's prepare on CPUs {exclusive_cpus}"
                ));
                self.domains().admitted(allocation, Instant::now());
                LibvirtAnswer::Admitted { exclusive_cpus }
            }
            Err(err) => {
                let message = error_line(&err);
                log(&format!("{key} refused at libvirt's prepare: {message}"));
                LibvirtAnswer::Refused { reason: message }
            }
        }
    }

    /// Reverts domain `name`'s workload if this daemon holds it for libvirt: one applied
    /// otherwise (the CLI, a policy) is left to the loop, which releases it once its threads
    /// are gone. Nothing held is nothing to do.
    fn release(&self, name: &str, engine: &Engine) -> Result<(), EngineError> {
        let records = held::read(engine.state(), &self.root, self.scope.as_deref())?;
        let origin = origin_of(name);
        let ours = records
            .iter()
            .find(|r| r.applied.origin.as_deref() == Some(origin.as_str()));
        let Some(record) = ours else {
            return Ok(());
        };
        let key = record.applied.plan.workload.clone();
        engine.revert(&RevertWhich::Target(key.0.clone()))?;
        log(&format!("{key} released at libvirt's release"));
        Ok(())
    }
}
