//! One reconcile round carried out: the host read once, the state directory read once, the
//! round decided ([`crate::reconcile::decide`]), and each action done through the engine,
//! with one log line per event and none for a condition that stands.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use nearnative_engine::{DriftMode, EngineError, RevertWhich};
use nearnative_host::{Host, InspectOptions};
use nearnative_plan::{AdmissionError, PlanError, WorkloadKey};
use nearnative_sys::lock::LockError;

use crate::book::{source_of, source_words, Unapplied};
use crate::daemon::DaemonError;
use crate::discover;
use crate::held::{self, Record};
use crate::log::line as log;
use crate::pending::pending_except;
use crate::policy::OnDrift;
use crate::readiness::{last_vcpu_start, since_boot, since_start, Readiness};
use crate::reconcile::{decide, Action, Held, RevertReason, Wanted};
use crate::runner::{Runner, BUSY_RETRY};
use crate::status::WorkloadState;

/// What an engine error means for the loop.
enum Outcome {
    /// The target vanished while it was planned or applied (the apply rolled back): the
    /// next round sees the host as it is.
    Gone,
    /// A CLI apply or revert holds the state lock: try again shortly.
    Busy,
    /// Shown in `status`, logged once, tried again when the ledger changes or on the sweep.
    Standing(WorkloadState),
}

fn outcome(err: &EngineError) -> Outcome {
    let reason = err.to_string();
    match err {
        EngineError::TargetExited { .. }
        | EngineError::Plan(
            PlanError::UnknownVm { .. }
            | PlanError::UnknownVmPid { .. }
            | PlanError::UnknownPid { .. }
            | PlanError::ProcessExited { .. }
            | PlanError::EmptyCgroup { .. },
        ) => Outcome::Gone,
        EngineError::Lock(LockError::Busy { .. }) => Outcome::Busy,
        EngineError::Plan(PlanError::Admission(
            AdmissionError::NotEnoughCores(_) | AdmissionError::NoSingleNode(_),
        )) => Outcome::Standing(WorkloadState::WaitingForCores { reason }),
        EngineError::Plan(_)
        | EngineError::NotPinned { .. }
        | EngineError::AlreadyApplied { .. }
        | EngineError::ThreadTaken { .. } => Outcome::Standing(WorkloadState::Refused { reason }),
        _ => Outcome::Standing(WorkloadState::Failed { reason }),
    }
}

/// The condition a workload's apply (or its refusal) is logged under.
const APPLY: &str = "apply";

/// A mark of the ledger as the round found it: the keys held.
fn ledger_mark(held: &[Held]) -> String {
    let keys: Vec<&str> = held.iter().map(|h| h.key.0.as_str()).collect();
    keys.join(",")
}

impl Runner {
    /// One round; `sweep` also retries refused workloads whose ledger did not change.
    pub(crate) fn round(&mut self, sweep: bool) -> Result<(), DaemonError> {
        self.due = None;
        let host = Host::read(&self.root, &InspectOptions::default());
        self.gate.forget_gone(&host);
        self.hierarchies = discover::Hierarchies::of(&host, self.config.scope.as_deref());
        let mut records = self.records()?;
        {
            let _turn = self.turn.lock().unwrap_or_else(|e| e.into_inner());
            held::find_died(self.engine.state(), &mut records)?;
        }
        let held: Vec<Held> = records.iter().map(Record::held).collect();
        let wanted = self.wanted(&host);
        let ledger = ledger_mark(&held);
        let confirmed = self.book.unwanted_before(self.loads);
        let actions = decide(&wanted, &held, &confirmed);
        self.note_unwanted(&actions);
        let mut changed = false;
        for action in actions {
            changed |= match action {
                Action::Revert { key, reason, .. } => self.revert(&key, reason),
                Action::Unwanted { .. } => false,
                Action::Apply { index } => self.try_apply(&host, &wanted[index], sweep, &ledger),
                Action::Keep { key, wanted: index } => {
                    let wanting = index.and_then(|i| wanted.get(i));
                    self.keep(&host, &key, wanting, &ledger)
                }
            };
        }
        let records = match changed {
            true => self.records()?,
            false => records,
        };
        self.forget_the_rest(&wanted, &records);
        self.pin_to_housekeeping(&host, &records)?;
        self.watch(&host, &records);
        self.publish(&host, &records);
        Ok(())
    }

    /// The plan records within the daemon's scope.
    fn records(&self) -> Result<Vec<Record>, DaemonError> {
        let scope = self.config.scope.as_deref();
        Ok(held::read(self.engine.state(), &self.root, scope)?)
    }

    /// Forgets what the loop remembers of workloads neither wanted nor held now, and the
    /// refusals of those held now: what it keeps is bounded by the live workloads.
    fn forget_the_rest(&mut self, wanted: &[Wanted], records: &[Record]) {
        let wanted: BTreeSet<&WorkloadKey> = wanted.iter().map(|w| &w.key).collect();
        let held: BTreeSet<&WorkloadKey> =
            records.iter().map(|r| &r.applied.plan.workload).collect();
        self.book.keep_unapplied(&wanted, &held);
        let live: BTreeSet<&WorkloadKey> = wanted.union(&held).copied().collect();
        self.book.prune(&live);
        self.sampler.retain(|key| live.iter().any(|k| k.0 == key));
    }

    /// The libvirt domains declared latency-sensitive, the started Kubernetes containers,
    /// then the instances the policies want on `host`: a domain's own switch and a pod's
    /// annotation win over a policy matching the same workload.
    fn wanted(&self, host: &Host) -> Vec<Wanted> {
        let exe = discover::exe_names(&self.root, host, &self.policies);
        let scope = self.config.scope.as_deref();
        let desired = discover::desired_with_exe(host, &self.policies, scope, &exe);
        let domains = self.domains.lock().unwrap_or_else(|e| e.into_inner());
        let containers = self.containers.lock().unwrap_or_else(|e| e.into_inner());
        let policies = desired.into_iter().map(|d| {
            let policy = &self.policies.policies[d.policy];
            Wanted {
                origin: format!("policy:{}:{}", policy.file.display(), policy.line),
                key: d.key,
                request: d.request,
                policy: Some(d.policy),
            }
        });
        domains
            .wanted()
            .into_iter()
            .chain(containers.wanted())
            .chain(policies)
            .collect()
    }

    /// Remembers which workloads no policy wants at this load; a first sighting has the
    /// policies read again soon, to confirm it before anything is reverted.
    fn note_unwanted(&mut self, actions: &[Action]) {
        let unwanted: BTreeSet<WorkloadKey> = actions
            .iter()
            .filter_map(|action| match action {
                Action::Unwanted { key }
                | Action::Revert {
                    key,
                    reason: RevertReason::PolicyGone,
                    ..
                } => Some(key.clone()),
                _ => None,
            })
            .collect();
        if self.book.note_unwanted(&unwanted, self.loads) {
            self.reload_at.confirm(Instant::now());
        }
    }

    pub(crate) fn due_at(&mut self, at: Instant) {
        self.due = Some(self.due.map_or(at, |due| due.min(at)));
    }

    fn revert(&mut self, key: &WorkloadKey, reason: RevertReason) -> bool {
        let result = {
            let _turn = self.turn.lock().unwrap_or_else(|e| e.into_inner());
            self.engine.revert(&RevertWhich::Target(key.0.clone()))
        };
        match result {
            Ok(reverted) => {
                // Released meanwhile by its source (the NRI plugin at the container's stop,
                // libvirt's release) while this round waited for its turn: not news.
                if !reverted.nothing_to_revert() {
                    log(&format!("{key} released ({})", reason.words()));
                    self.book.counters.reverts += 1;
                }
                self.sampler.forget(&key.0);
                self.book.forget(key);
                self.book.settled_about(key, APPLY);
                true
            }
            Err(err) => {
                self.standing_error(key, "cannot release it", &err);
                false
            }
        }
    }

    fn try_apply(&mut self, host: &Host, wanted: &Wanted, sweep: bool, ledger: &str) -> bool {
        if !self.book.should_try(&wanted.key, sweep, ledger) {
            return false;
        }
        let now = Instant::now();
        match self
            .gate
            .check(&self.root, host, &wanted.request.target, now)
        {
            Readiness::Ready => {}
            Readiness::NotYet { until } => {
                if let Some(until) = until {
                    self.due_at(until);
                }
                return false;
            }
        }
        let result = {
            let _turn = self.turn.lock().unwrap_or_else(|e| e.into_inner());
            if !self.still_declared(wanted) {
                return false;
            }
            let pending = pending_except(&self.domains, &self.containers, &wanted.key, now);
            self.engine
                .apply_pending(&wanted.request, &wanted.origin, &pending)
        };
        match result {
            Ok(applied) => {
                let took = now.elapsed();
                let after_vcpus = match last_vcpu_start(host, &wanted.request.target) {
                    Some(start) => self.since_last_vcpu(start),
                    None => String::new(),
                };
                log(&format!(
                    "{} applied on CPUs {} (source {}) in {} ms{after_vcpus}",
                    wanted.key,
                    applied.plan.allocation.exclusive_cpus,
                    wanted.origin,
                    took.as_millis()
                ));
                self.book.counters.applies += 1;
                self.metrics.observe_apply(took.as_secs_f64());
                if wanted.policy.is_none() {
                    let mut domains = self.domains.lock().unwrap_or_else(|e| e.into_inner());
                    domains.applied(&wanted.key);
                    let mut containers = self.containers.lock().unwrap_or_else(|e| e.into_inner());
                    containers.applied(&wanted.key);
                }
                self.book.forget(&wanted.key);
                self.book.settled_about(&wanted.key, APPLY);
                true
            }
            Err(err) => {
                self.not_applied(wanted, &err, ledger);
                false
            }
        }
    }

    /// Whether the domain or container `wanted` stands for is still declared by its source,
    /// asked under the turn: a release (libvirt's, the container's stop) forgets it before it
    /// takes the turn and reads the records, so an apply after that would be reverted by no one.
    fn still_declared(&self, wanted: &Wanted) -> bool {
        if wanted.policy.is_some() {
            return true;
        }
        let domains = self.domains.lock().unwrap_or_else(|e| e.into_inner());
        let containers = self.containers.lock().unwrap_or_else(|e| e.into_inner());
        domains.declares(&wanted.key) || containers.wants(&wanted.key)
    }

    /// `, 31 ms after its last vCPU thread started`, for the log line of a VM's apply: the
    /// latency from the VM's last vCPU thread's creation (which the benchmark measures).
    fn since_last_vcpu(&self, start_ticks: u64) -> String {
        let Some(now) = since_boot() else {
            return String::new();
        };
        let age = since_start(start_ticks, self.tick_ns, now);
        format!(
            ", {} ms after its last vCPU thread started",
            age.as_millis()
        )
    }

    fn not_applied(&mut self, wanted: &Wanted, err: &EngineError, ledger: &str) {
        if matches!(err, EngineError::AlreadyApplied { .. }) && self.holds_now(&wanted.key) {
            // Applied through the control socket between this round's read and its apply:
            // not a refusal. The socket's wake-up brings a round that sees it held.
            return;
        }
        let state = match outcome(err) {
            Outcome::Gone => return,
            Outcome::Busy => return self.due_at(Instant::now() + BUSY_RETRY),
            Outcome::Standing(state) => state,
        };
        let line = format!("{} {}: {err}", wanted.key, state.label().replace('_', " "));
        if self.book.is_news_about(&wanted.key, APPLY, &line) {
            log(&line);
            self.book.counters.refusals += 1;
        }
        let unapplied = Unapplied {
            target: wanted.request.target.to_string(),
            source: source_of(Some(&wanted.origin)),
            state,
            ledger: ledger.to_owned(),
        };
        self.book.unapplied.insert(wanted.key.clone(), unapplied);
    }

    /// Whether a plan record within the daemon's scope holds `key` now.
    fn holds_now(&self, key: &WorkloadKey) -> bool {
        self.records()
            .is_ok_and(|records| records.iter().any(|r| &r.applied.plan.workload == key))
    }

    /// Keeps an applied workload true: drift repaired (or reported), threads born since
    /// placed, and a re-plan when the engine says the plan no longer fits.
    fn keep(
        &mut self,
        host: &Host,
        key: &WorkloadKey,
        wanted: Option<&Wanted>,
        ledger: &str,
    ) -> bool {
        let policy = wanted.and_then(|w| w.policy);
        let on_drift = policy.map_or(OnDrift::Repair, |i| self.policies.policies[i].on_drift);
        let mode = match on_drift {
            OnDrift::Repair => DriftMode::Repair,
            OnDrift::Report => DriftMode::Report,
        };
        let result = {
            let _turn = self.turn.lock().unwrap_or_else(|e| e.into_inner());
            self.engine.reconcile(&key.0, mode)
        };
        let reconciled = match result {
            Ok(reconciled) => reconciled,
            Err(err) => {
                self.standing_error(key, "cannot keep it true", &err);
                return false;
            }
        };
        for knob in &reconciled.repaired {
            log(&format!("{key}: drift repaired: {knob}"));
        }
        self.book.counters.drift_repairs += reconciled.repaired.len() as u64;
        self.reported(key, reconciled.reported);
        if !reconciled.added.is_empty() {
            log(&format!(
                "{key}: placed {} new thread(s): {}",
                reconciled.added.len(),
                reconciled.added.join(", ")
            ));
        }
        self.unkept(key, &reconciled.failed);
        let Some(why) = reconciled.replan else {
            return false;
        };
        match wanted {
            Some(wanted) => {
                log(&format!("{key}: re-planning: {why}"));
                let reverted = self.revert(key, RevertReason::Replan);
                if reverted {
                    self.try_apply(host, wanted, true, ledger);
                }
                reverted
            }
            None => {
                let line = format!("{key}: {why}; revert it and apply it again to re-plan");
                if self.book.is_news_about(key, "replan", &line) {
                    log(&line);
                }
                false
            }
        }
    }

    /// Knobs the engine could not read or write back, logged once while the list stands.
    fn unkept(&mut self, key: &WorkloadKey, failed: &[String]) {
        if failed.is_empty() {
            return self.book.settled_about(key, "unkept");
        }
        let line = format!("{key}: cannot keep {}", failed.join(", "));
        if self.book.is_news_about(key, "unkept", &line) {
            log(&line);
        }
    }

    /// Drift left as it is under `on_drift = "report"`: logged and counted when it changes.
    fn reported(&mut self, key: &WorkloadKey, knobs: Vec<String>) {
        if knobs.is_empty() {
            self.book.drifted.remove(key);
            self.book.settled_about(key, "drift");
            return;
        }
        let line = format!("{key}: drifted, reported only: {}", knobs.join(", "));
        if self.book.is_news_about(key, "drift", &line) {
            log(&line);
            self.book.counters.drift_reports += knobs.len() as u64;
        }
        self.book.drifted.insert(key.clone(), knobs);
    }

    /// An engine error about an applied workload, logged once while it stands; a busy lock
    /// is only tried again shortly.
    fn standing_error(&mut self, key: &WorkloadKey, what: &str, err: &EngineError) {
        if matches!(err, EngineError::Lock(LockError::Busy { .. })) {
            return self.due_at(Instant::now() + BUSY_RETRY);
        }
        let line = format!("{key}: {what}: {err}");
        if self.book.is_news_about(key, what, &line) {
            log(&line);
        }
    }

    /// Reverts what this daemon's policies applied (`--revert-on-exit`); CLI applies stay.
    pub fn revert_own(&mut self) {
        let turn = Arc::clone(&self.turn);
        let _turn = turn.lock().unwrap_or_else(|e| e.into_inner());
        let records = match held::read(
            self.engine.state(),
            &self.root,
            self.config.scope.as_deref(),
        ) {
            Ok(records) => records,
            Err(err) => return log(&format!("cannot revert on exit: {err}")),
        };
        let mut own: Vec<&Record> = records
            .iter()
            .filter(|r| {
                matches!(
                    source_of(r.applied.origin.as_deref()),
                    crate::status::Source::Policy { .. }
                )
            })
            .collect();
        // Newest first, so no older journal is refused for a knob a newer one shares.
        own.sort_by_key(|r| std::cmp::Reverse(r.applied.applied_unix_ms));
        for record in own {
            let key = record.applied.plan.workload.clone();
            let source = source_words(&source_of(record.applied.origin.as_deref()));
            match self.engine.revert(&RevertWhich::Target(key.0.clone())) {
                Ok(_) => log(&format!("{key} reverted on exit (source {source})")),
                Err(err) => log(&format!("{key}: cannot revert on exit: {err}")),
            }
        }
    }
}
