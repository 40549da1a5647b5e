//! The loop: wait for a wake-up (an event, a deadline of the readiness gate, or the sweep),
//! drain every wake-up queued behind it, and run one reconcile round for them all. Between
//! rounds the daemon sleeps in one `recv_timeout`: it costs nothing while the host is quiet.
//!
//! Not every event is worth a round. The proc connector reports every exec on the host (a
//! build runs thousands a second), so an exec counts only when its process could be a
//! workload a policy wants: a VMM for a `vm:` policy, a `comm` a `process:` policy matches,
//! a process in a cgroup a `cgroup:` policy matches (or below one); all within the scope.
//! Threads, forks and exits arrive only for the processes the loop watches (applied
//! workloads, VMs still starting), and all count. The watchdog is fed on its own deadline,
//! without a round; a policy edit is read once the directory has been quiet for [`QUIET`].

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nearnative_engine::Engine;
use nearnative_host::tasks::{parse_cgroup, ProcessCgroup};
use nearnative_host::workloads::VmmKind;
use nearnative_host::{CpuSet, Root};

use crate::book::Book;
use crate::daemon::{DaemonConfig, DaemonError};
use crate::discover::{cgroup_could_match, cgroup_in_scope, Hierarchies};
use crate::events::{Events, Wake};
use crate::kubernetes::Containers;
use crate::libvirt::{self, Domains};
use crate::metrics::{InterferenceSampler, Metrics};
use crate::notify::Notifier;
use crate::policy::{self, PolicySet, TargetPattern};
use crate::readiness::Gate;
use crate::status::DaemonStatus;

/// How soon a round is tried again when a CLI apply or revert holds the state lock.
pub const BUSY_RETRY: Duration = Duration::from_millis(100);

/// How long the policy directory must stay quiet before it is read again: an editor saving
/// a file renames it away, creates it empty, then writes it, and a read in between would
/// find the policy missing.
pub const QUIET: Duration = Duration::from_millis(300);

/// How soon the policies are read again after a load found an applied workload no policy
/// wants: it is reverted only if the second load says so too.
pub const CONFIRM: Duration = Duration::from_secs(1);

/// When the policy directory is read next, if a change or a doubt asks for it.
#[derive(Debug, Default)]
pub(crate) struct ReloadAt(Option<Instant>);

impl ReloadAt {
    /// The directory changed: read it once it has been quiet for [`QUIET`].
    fn changed(&mut self, now: Instant) {
        self.0 = Some(now + QUIET);
    }

    /// A load found a workload unwanted: read again within [`CONFIRM`].
    pub(crate) fn confirm(&mut self, now: Instant) {
        self.0.get_or_insert(now + CONFIRM);
    }

    /// True, once, when the reload is due at `now`.
    fn take_due(&mut self, now: Instant) -> bool {
        let due = self.0.is_some_and(|at| now >= at);
        if due {
            self.0 = None;
        }
        due
    }
}

/// systemd's watchdog, fed on its own deadline: a ping is not worth a round.
struct Watchdog<'n> {
    notifier: &'n Notifier,
    every: Option<Duration>,
    next: Option<Instant>,
}

impl<'n> Watchdog<'n> {
    fn new(notifier: &'n Notifier) -> Self {
        let every = notifier.watchdog_interval();
        Watchdog {
            notifier,
            every,
            next: every.map(|_| Instant::now()),
        }
    }

    fn feed_if_due(&mut self, now: Instant) {
        let (Some(every), Some(next)) = (self.every, self.next) else {
            return;
        };
        if now >= next {
            crate::daemon::tell_systemd(self.notifier.watchdog());
            self.next = Some(now + every);
        }
    }
}

/// What ended a wait.
enum Waited {
    Round,
    /// A round that also retries refusals: policies reloaded, events lost, or the ledger
    /// changed through the control socket.
    Sweep,
    Stop,
}

pub struct Runner {
    pub(crate) config: DaemonConfig,
    pub(crate) engine: Engine,
    pub(crate) root: Root,
    pub(crate) policies: PolicySet,
    pub(crate) book: Book,
    pub(crate) gate: Gate,
    pub(crate) status: Arc<Mutex<DaemonStatus>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) sampler: InterferenceSampler,
    /// Held while the engine writes, by the loop and by control requests alike, so the
    /// state lock is never found busy by one of the daemon's own.
    pub(crate) turn: Arc<Mutex<()>>,
    /// The earliest moment a round is due before the sweep (a VM settling, a busy lock).
    pub(crate) due: Option<Instant>,
    /// The processes whose threads, forks and exits wake the loop.
    pub(crate) watched: BTreeSet<u32>,
    /// The cgroup v2 directories whose `cgroup.events` wake the loop.
    pub(crate) cgroups: Vec<PathBuf>,
    /// Standing remarks from the event sources, for `status`.
    pub(crate) notes: Vec<String>,
    /// When the policies are read again.
    pub(crate) reload_at: ReloadAt,
    /// How many times the policies were read: a workload is unwanted for good only when two
    /// loads say so.
    pub(crate) loads: u64,
    /// The housekeeping CPUs the daemon last pinned itself to.
    pub(crate) pinned: Option<CpuSet>,
    /// The host's cgroup hierarchies, as the last round read them, for judging an exec.
    pub(crate) hierarchies: Hierarchies,
    /// Nanoseconds per clock tick, the unit of thread start times.
    pub(crate) tick_ns: u64,
    /// Why the last round stopped short (an unreadable state file, say), said once.
    pub(crate) round_failure: Option<String>,
    /// The libvirt domains the hook declared latency-sensitive, and their admissions.
    pub(crate) domains: Arc<Mutex<Domains>>,
    /// The Kubernetes containers the NRI plugin admitted, and those started.
    pub(crate) containers: Arc<Mutex<Containers>>,
    /// Said in `status` for as long as the daemon runs (kubelet's CPU manager fighting the
    /// plugin's fence).
    pub(crate) standing_notes: Vec<String>,
}

impl Runner {
    pub fn new(
        config: DaemonConfig,
        engine: Engine,
        status: Arc<Mutex<DaemonStatus>>,
        metrics: Arc<Metrics>,
        turn: Arc<Mutex<()>>,
        domains: Arc<Mutex<Domains>>,
        containers: Arc<Mutex<Containers>>,
    ) -> Runner {
        let root = Root::default();
        let mut runner = Runner {
            sampler: InterferenceSampler::new(root.clone()),
            root,
            engine,
            policies: PolicySet::default(),
            book: Book::default(),
            gate: Gate::default(),
            status,
            metrics,
            turn,
            due: None,
            watched: BTreeSet::new(),
            cgroups: Vec::new(),
            notes: Vec::new(),
            reload_at: ReloadAt::default(),
            loads: 0,
            pinned: None,
            hierarchies: Hierarchies::default(),
            tick_ns: nearnative_verify::cpu_busy::tick_ns(),
            round_failure: None,
            domains,
            containers,
            standing_notes: Vec::new(),
            config,
        };
        runner.reload();
        runner
    }

    /// Loads the policy directory again; a rejected file is logged once per reason, and the
    /// count only when the set changed.
    pub(crate) fn reload(&mut self) {
        let mut policies = policy::load_dir(&self.config.policy_dir);
        policies.confine(self.config.scope.as_deref());
        let policies = policies.with_last_good(&self.policies);
        self.loads += 1;
        for error in &policies.errors {
            let line = format!("policy rejected: {error}");
            if self
                .book
                .is_news(&format!("policy {}", error.file.display()), &line)
            {
                crate::log::line(&line);
            }
        }
        if self.loads > 1 && policies == self.policies {
            return;
        }
        crate::log::line(&format!(
            "{} polic{} loaded from {}",
            policies.policies.len(),
            if policies.policies.len() == 1 {
                "y"
            } else {
                "ies"
            },
            self.config.policy_dir.display()
        ));
        self.policies = policies;
    }

    /// Declares the libvirt domains that run with a switch, from libvirt's status XML: a
    /// daemon restarted (or killed) while they run keeps them applied.
    pub(crate) fn adopt_domains(&mut self) {
        let (running, problems) =
            libvirt::running_with_switch(&self.root, &self.config.libvirt_status_dir);
        for problem in problems {
            crate::log::line(&problem);
        }
        let mut domains = self.domains.lock().unwrap_or_else(|e| e.into_inner());
        for domain in running {
            let Some(switch) = &domain.switch else {
                continue;
            };
            let scope = self.config.scope.as_deref();
            let uri = self.config.libvirt_uri.as_deref();
            domains.declare(&domain.name, switch.request(&domain.name, scope, uri));
            crate::log::line(&format!(
                "vm:{}: adopted from libvirt's status",
                domain.name
            ));
        }
    }

    /// Rounds until SIGTERM (or SIGINT), or until the event sources are gone.
    pub fn run(
        &mut self,
        rx: &Receiver<Wake>,
        events: &Events,
        notifier: &Notifier,
    ) -> Result<(), DaemonError> {
        let mut next_sweep = Instant::now();
        let mut watchdog = Watchdog::new(notifier);
        loop {
            let now = Instant::now();
            let sweep = now >= next_sweep;
            if sweep {
                next_sweep = now + self.config.sweep;
            }
            self.notes = events.notes();
            self.notes.extend(self.standing_notes.iter().cloned());
            self.notes.extend(self.round_failure.clone());
            match self.round(sweep) {
                Ok(()) => self.round_failure = None,
                Err(err) => self.round_failed(&err),
            }
            events.watch_processes(&self.watched);
            events.watch_cgroups(&self.cgroups);
            match self.wait(rx, next_sweep, &mut watchdog) {
                Waited::Round => {}
                Waited::Sweep => next_sweep = Instant::now(),
                Waited::Stop => return Ok(()),
            }
        }
    }

    /// A daemon that stopped at the first bad state file would leave every other workload
    /// unwatched: the failure is logged once and shown in `status`, and the next wake-up or
    /// sweep tries again.
    fn round_failed(&mut self, err: &DaemonError) {
        let message = format!("a round stopped short: {err}; the next event or sweep tries again");
        if self.round_failure.as_ref() != Some(&message) {
            crate::log::line(&message);
            let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
            status.notes.push(message.clone());
        }
        self.round_failure = Some(message);
    }

    /// Sleeps until a wake-up that counts, a deadline (a VM settling, the sweep, a policy
    /// reload), or a stop. The watchdog is fed on its own deadline, without a round.
    fn wait(
        &mut self,
        rx: &Receiver<Wake>,
        next_sweep: Instant,
        watchdog: &mut Watchdog,
    ) -> Waited {
        loop {
            let now = Instant::now();
            watchdog.feed_if_due(now);
            if self.reload_at.take_due(now) {
                self.reload();
                return Waited::Sweep;
            }
            let round_at = self.due.map_or(next_sweep, |due| due.min(next_sweep));
            if now >= round_at {
                return Waited::Round;
            }
            let deadlines = [Some(round_at), self.reload_at.0, watchdog.next];
            let wake_at = deadlines.into_iter().flatten().min().unwrap_or(round_at);
            let first = match rx.recv_timeout(wake_at.saturating_duration_since(now)) {
                Ok(wake) => wake,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return Waited::Stop,
            };
            let wakes: Vec<Wake> = std::iter::once(first).chain(rx.try_iter()).collect();
            if wakes.contains(&Wake::Terminate) {
                crate::log::line("stopping on SIGTERM; applied workloads stay applied");
                return Waited::Stop;
            }
            if wakes.contains(&Wake::Hangup) {
                self.reload_at = ReloadAt::default();
                self.reload();
                return Waited::Sweep;
            }
            if wakes.contains(&Wake::PolicyDir) {
                self.reload_at.changed(Instant::now());
            }
            if wakes
                .iter()
                .any(|w| matches!(w, Wake::Overrun | Wake::Control))
            {
                return Waited::Sweep;
            }
            if wakes.iter().any(|w| self.counts(w)) {
                return Waited::Round;
            }
        }
    }

    /// Whether `wake` is worth a round (see the module doc).
    fn counts(&self, wake: &Wake) -> bool {
        match wake {
            Wake::Exec { pid } => self.could_be_wanted(*pid),
            Wake::Thread { tgid, .. } => self.watched.contains(tgid),
            Wake::Fork { parent_tgid, .. } => self.watched.contains(parent_tgid),
            Wake::Exit { pid } => self.watched.contains(pid),
            // A policy edit counts once the directory is quiet (`ReloadAt`).
            Wake::PolicyDir => false,
            Wake::CgroupEvents { .. }
            | Wake::Hangup
            | Wake::Overrun
            | Wake::Control
            | Wake::Terminate => true,
        }
    }

    /// Whether process `pid`, just exec'd, could be an instance of some policy: a read of
    /// its `comm`, and of its cgroups when a scope or a `cgroup:` pattern asks; not a round.
    fn could_be_wanted(&self, pid: u32) -> bool {
        let Ok(comm) = self.root.read_trimmed(format!("/proc/{pid}/comm")) else {
            return false;
        };
        let needs_cgroup = self.config.scope.is_some()
            || self
                .policies
                .policies
                .iter()
                .any(|p| matches!(p.target, TargetPattern::Cgroup(_)));
        let cgroup = match needs_cgroup {
            true => match self.root.read_to_string(format!("/proc/{pid}/cgroup")) {
                Ok(text) => parse_cgroup(&text).ok(),
                Err(_) => return false,
            },
            false => None,
        };
        exec_could_matter(
            &self.policies,
            self.config.scope.as_deref(),
            self.hierarchies,
            &comm,
            cgroup.as_ref(),
        )
    }
}

/// Whether a process just exec'd as `comm`, in cgroups `cgroup` (read when the daemon has a
/// scope or a `cgroup:` policy), could be an instance of one of `policies`.
fn exec_could_matter(
    policies: &PolicySet,
    scope: Option<&str>,
    hierarchies: Hierarchies,
    comm: &str,
    cgroup: Option<&ProcessCgroup>,
) -> bool {
    let in_scope = match (scope, cgroup) {
        (None, _) => true,
        (Some(scope), Some(cgroup)) => cgroup_in_scope(cgroup, hierarchies.scope, scope),
        (Some(_), None) => false,
    };
    in_scope
        && policies.policies.iter().any(|p| match &p.target {
            TargetPattern::Vm(_) => VmmKind::detect(comm, &[]).is_some(),
            TargetPattern::Process(glob) => glob.matches(comm),
            TargetPattern::Cgroup(glob) => {
                cgroup.is_some_and(|c| cgroup_could_match(c, hierarchies.targets, glob))
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_edit_is_read_once_the_directory_is_quiet() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut reload = ReloadAt::default();
        assert!(!reload.take_due(ms(1000)), "nothing changed");
        reload.changed(t0);
        reload.changed(ms(200));
        assert!(!reload.take_due(ms(400)), "200 ms after the last change");
        assert!(reload.take_due(ms(500)));
        assert!(!reload.take_due(ms(600)), "once");
    }

    #[test]
    fn a_doubt_is_confirmed_by_a_later_read_without_delaying_one_due() {
        let t0 = Instant::now();
        let mut reload = ReloadAt::default();
        reload.confirm(t0);
        assert!(!reload.take_due(t0 + QUIET));
        assert!(reload.take_due(t0 + CONFIRM));
        reload.changed(t0);
        reload.confirm(t0);
        assert!(
            reload.take_due(t0 + QUIET),
            "the edit's reload confirms too"
        );
    }

    fn policies(text: &str) -> PolicySet {
        PolicySet {
            policies: policy::parse_file(std::path::Path::new("/p/a.toml"), text).unwrap(),
            errors: Vec::new(),
        }
    }

    fn unified(path: &str) -> ProcessCgroup {
        ProcessCgroup {
            cpuset_v1: None,
            unified: Some(path.to_owned()),
        }
    }

    #[test]
    fn an_exec_counts_only_when_its_process_could_be_wanted() {
        let cgroups = policies("[[workload]]\ntarget = \"cgroup:/machine/*\"\n");
        let any = Hierarchies::default();
        let matters = |scope, cgroup: &str| {
            exec_could_matter(&cgroups, scope, any, "bash", Some(&unified(cgroup)))
        };
        assert!(matters(None, "/machine/vm1"));
        assert!(
            matters(None, "/machine/vm1/nearnative-x-t0"),
            "a plan's own cgroup"
        );
        assert!(!matters(None, "/user.slice/build"), "a build's exec");
        assert!(!matters(None, "/machine"));
        assert!(
            !matters(Some("/other"), "/machine/vm1"),
            "outside the scope"
        );
        assert!(!exec_could_matter(&cgroups, None, any, "bash", None));

        let named = policies("[[workload]]\ntarget = \"process:redis*\"\n");
        let exec = |comm, scope, cgroup: &str| {
            exec_could_matter(&named, scope, any, comm, Some(&unified(cgroup)))
        };
        assert!(exec("redis-server", None, "/x"));
        assert!(!exec("bash", None, "/x"));
        assert!(exec("redis-server", Some("/s"), "/s/a"));
        assert!(!exec("redis-server", Some("/s"), "/t"));
    }
}
