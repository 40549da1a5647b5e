//! nearnative's plugin: pod annotations in, exclusive cores out, every other container
//! fenced off them.
//!
//! [`NriPlugin`] answers the runtime's calls from its view of the containers (built at
//! Synchronize, kept by the events) and an [`AdmissionBackend`]. The fence travels in the
//! answers where the call has room for updates (Synchronize, CreateContainer,
//! UpdateContainer, StopContainer). A removal arrives as StateChange, which has none: the
//! give-back then goes by UpdateContainers, which the [`Refencer`] sends from a thread of its
//! own once the answer is out, as the runtime holds its locks until it has the answer.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use nearnative_host::CpuSet;

use crate::admission::{AdmissionBackend, ContainerKey};
use crate::annotations::{self, Decision};
use crate::api::{
    ConfigureRequest, ConfigureResponse, Container, ContainerState, ContainerUpdate,
    CreateContainerRequest, CreateContainerResponse, Event, EventMask, PodSandbox,
    StateChangeEvent, StopContainerRequest, StopContainerResponse, SynchronizeRequest,
    SynchronizeResponse, UpdateContainerRequest, UpdateContainerResponse, UpdateContainersRequest,
};
use crate::fence::{self, Grant, NoSharedCpu};
use crate::{Error, Plugin, Refusal, RuntimeClient};

/// Where the plugin says what it did, one line each (the daemon's log).
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// The events the plugin acts on; the others are not worth the runtime's round trips.
/// PostStartContainer hands a latency-sensitive container to the backend once its process
/// runs its own program (before, runc's init is there, with threads of its own that go at
/// its exec).
pub const EVENTS: [Event; 5] = [
    Event::CreateContainer,
    Event::PostStartContainer,
    Event::UpdateContainer,
    Event::StopContainer,
    Event::RemoveContainer,
];

/// The plugin of one connection. A new connection (after the runtime restarted) gets a new
/// one: Synchronize rebuilds the view from the runtime and the backend.
pub struct NriPlugin {
    backend: Arc<dyn AdmissionBackend>,
    online: CpuSet,
    view: Arc<Mutex<View>>,
    /// Wakes the [`Refencer`]; dropped with the plugin, which ends it.
    refence: Sender<()>,
    log: Log,
}

/// Sends the fence the answers could not carry, by UpdateContainers, after the answer.
pub struct Refencer {
    view: Arc<Mutex<View>>,
    online: CpuSet,
    wakeups: Receiver<()>,
    log: Log,
}

/// What the plugin knows of the runtime's containers.
#[derive(Default)]
struct View {
    containers: BTreeMap<String, Tracked>,
    /// Bumped whenever the exclusive CPUs change, so a fence sent from an older view is
    /// followed by one from the newer.
    generation: u64,
    /// Set by a handler whose answer could not carry the fence; taken once it is answered.
    refence_after_answer: bool,
    /// Running containers Synchronize found or admitted holding cores, handed to the backend
    /// once the answer is out: the answer carries their pinning, and the backend applies
    /// them on it, so before the runtime has it the backend would find their cpusets wide.
    started_after_answer: Vec<ContainerKey>,
}

struct Tracked {
    key: ContainerKey,
    alive: bool,
    /// Its exclusive cores, while it is latency-sensitive and holds them.
    grant: Option<Grant>,
}

impl NriPlugin {
    /// A plugin admitting through `backend` on a node whose online CPUs are `online`; the
    /// [`Refencer`] must run beside it (see [`Refencer::run`]).
    pub fn new(
        backend: Arc<dyn AdmissionBackend>,
        online: CpuSet,
        log: Log,
    ) -> (NriPlugin, Refencer) {
        let view = Arc::new(Mutex::new(View::default()));
        let (refence, wakeups) = mpsc::channel();
        let refencer = Refencer {
            view: Arc::clone(&view),
            online: online.clone(),
            wakeups,
            log: Arc::clone(&log),
        };
        let plugin = NriPlugin {
            backend,
            online,
            view,
            refence,
            log,
        };
        (plugin, refencer)
    }

    /// The latency-sensitive containers and their cores, by id.
    pub fn latency_sensitive(&self) -> BTreeMap<String, (ContainerKey, Grant)> {
        lock(&self.view)
            .containers
            .iter()
            .filter_map(|(id, t)| Some((id.clone(), (t.key.clone(), t.grant.clone()?))))
            .collect()
    }

    fn say(&self, line: &str) {
        (self.log)(line);
    }

    /// A latency-sensitive container being created: its cores, checked against the fence.
    fn admit(
        &self,
        view: &View,
        key: &ContainerKey,
        level: nearnative_plan::Level,
        cores: u32,
    ) -> Result<Grant, Refusal> {
        if let Some(grant) = view.containers.get(&key.id).and_then(|t| t.grant.clone()) {
            return Ok(grant);
        }
        let refused = |reason: &dyn std::fmt::Display| {
            Refusal::new(format!(
                "{key}: not admitted ({} at {level}): {reason}",
                cores_phrase(cores)
            ))
        };
        let grant = self
            .backend
            .admit(key, level, cores)
            .map_err(|reason| refused(&reason))?;
        if let Err(err) = fence::shared_cpus(&self.online, &view.exclusive().union(&grant.cpus)) {
            self.release(key);
            return Err(refused(&err));
        }
        Ok(grant)
    }

    fn release(&self, key: &ContainerKey) -> bool {
        match self.backend.release(&key.id) {
            Ok(()) => {
                self.say(&format!("{key}: released its cores"));
                true
            }
            Err(reason) => {
                self.say(&format!("{key}: cannot release its cores: {reason}"));
                false
            }
        }
    }

    /// Container `id` started: one holding cores is handed to the backend.
    fn started(&self, id: &str) {
        let view = lock(&self.view);
        if let Some(tracked) = view.containers.get(id).filter(|t| t.grant.is_some()) {
            self.hand_over(&tracked.key);
        }
    }

    /// `key`, running on its cores, handed to the backend. Its failure is logged, not
    /// returned: the container runs already, on its cores.
    fn hand_over(&self, key: &ContainerKey) {
        if let Err(reason) = self.backend.started(key) {
            self.say(&format!(
                "{key}: cannot make it latency-sensitive: {reason}"
            ));
        }
    }

    /// The view of the containers found at Synchronize, those holding cores adopted;
    /// what the ledger holds for containers that are gone or stopped is released.
    fn adopt(
        &self,
        view: &mut View,
        request: &SynchronizeRequest,
        mut held: BTreeMap<String, Grant>,
    ) {
        let pods = pods_by_id(request);
        view.containers.clear();
        for container in &request.containers {
            let key = ContainerKey::of(
                container,
                pods.get(container.pod_sandbox_id.as_str()).copied(),
            );
            let alive = is_alive(container);
            // A stopped container's cores stay in `held`, to be released below.
            let grant = alive.then(|| held.remove(&key.id)).flatten();
            if let Some(grant) = &grant {
                self.say(&format!("{key}: adopted on CPUs {}", grant.cpus));
                // Its grant may be an admission its PostStartContainer never reached (the
                // plugin was away): a running one is handed to the backend again, which
                // applies it if it is not applied yet.
                match container.state() {
                    ContainerState::Running => view.started_after_answer.push(key.clone()),
                    _ => self.backend.reported(&key),
                }
            }
            view.containers
                .insert(key.id.clone(), Tracked { key, alive, grant });
        }
        for id in held.into_keys() {
            let key = view.containers.get(&id).map_or_else(
                || ContainerKey {
                    id: id.clone(),
                    ..ContainerKey::default()
                },
                |t| t.key.clone(),
            );
            self.release(&key);
        }
    }

    /// Admits the live latency-sensitive containers found at Synchronize without cores,
    /// after [`adopt`](Self::adopt) released what was stale, so they may have those.
    fn admit_all_late(&self, view: &mut View, request: &SynchronizeRequest) {
        let pods = pods_by_id(request);
        for container in &request.containers {
            let unpinned = view
                .containers
                .get(&container.id)
                .is_some_and(|t| t.alive && t.grant.is_none());
            if !unpinned {
                continue;
            }
            let pod = pods.get(container.pod_sandbox_id.as_str()).copied();
            let key = ContainerKey::of(container, pod);
            let grant = self.admit_late(view, &key, container, pod);
            if grant.is_some() {
                view.started_after_answer.push(key.clone());
            }
            if let Some(tracked) = view.containers.get_mut(&key.id) {
                tracked.grant = grant;
            }
        }
    }

    /// A latency-sensitive container that started while the plugin was away (NRI v0.6 cannot
    /// make a plugin required, so the runtime created it unpinned): admitted now if it fits,
    /// left among the others if not, as its creation can no longer fail.
    fn admit_late(
        &self,
        view: &View,
        key: &ContainerKey,
        container: &Container,
        pod: Option<&PodSandbox>,
    ) -> Option<Grant> {
        let empty = HashMap::new();
        let annotations = pod.map_or(&empty, |p| &p.annotations);
        let decision = annotations::decide(annotations, &container.name, resources(container));
        let outcome = match decision {
            Ok(Decision::Plain) => return None,
            Ok(Decision::LatencySensitive { level, cores }) => self.admit(view, key, level, cores),
            Err(err) => Err(Refusal::new(format!("{key}: {err}"))),
        };
        match outcome {
            Ok(grant) => {
                self.say(&format!(
                    "{key}: started while the plugin was away; admitted on CPUs {}",
                    grant.cpus
                ));
                Some(grant)
            }
            Err(Refusal(reason)) => {
                self.say(&format!(
                    "{reason}; it started while the plugin was away and stays unpinned"
                ));
                None
            }
        }
    }
}

impl Plugin for NriPlugin {
    fn configure(&self, request: ConfigureRequest) -> Result<ConfigureResponse, Refusal> {
        self.say(&format!(
            "NRI: configured by {} {}",
            request.runtime_name, request.runtime_version
        ));
        Ok(ConfigureResponse {
            events: EventMask::of(&EVENTS).bits(),
        })
    }

    fn synchronize(&self, request: SynchronizeRequest) -> Result<SynchronizeResponse, Refusal> {
        let held = self
            .backend
            .held()
            .map_err(|reason| Refusal::new(format!("cannot read the cores held: {reason}")))?;
        let mut view = lock(&self.view);
        self.adopt(&mut view, &request, held);
        self.admit_all_late(&mut view, &request);
        view.generation += 1;
        let update = view
            .pinning()
            .into_iter()
            .chain(
                view.fence(&self.online)
                    .map_err(|err| Refusal::new(err.to_string()))?,
            )
            .collect();
        Ok(SynchronizeResponse { update })
    }

    fn create_container(
        &self,
        request: CreateContainerRequest,
    ) -> Result<CreateContainerResponse, Refusal> {
        let container = request.container.unwrap_or_default();
        let pod = request.pod;
        let key = ContainerKey::of(&container, pod.as_ref());
        let empty = HashMap::new();
        let annotations = pod.as_ref().map_or(&empty, |p| &p.annotations);
        let decision = annotations::decide(annotations, &container.name, resources(&container))
            .map_err(|err| Refusal::new(format!("{key}: {err}")))?;
        let mut view = lock(&self.view);
        let response = match decision {
            Decision::Plain => {
                let exclusive = view.exclusive();
                let adjust = (!exclusive.is_empty())
                    .then(|| fence::shared_cpus(&self.online, &exclusive))
                    .transpose()
                    .map_err(|err| Refusal::new(format!("{key}: {err}")))?
                    .map(|shared| fence::shared_adjustment(&shared));
                view.track(key, None);
                CreateContainerResponse {
                    adjust,
                    ..CreateContainerResponse::default()
                }
            }
            Decision::LatencySensitive { level, cores } => {
                // The refusal goes to the pod's events through the runtime, and to our log.
                let grant = self
                    .admit(&view, &key, level, cores)
                    .inspect_err(|Refusal(reason)| self.say(reason))?;
                self.say(&format!(
                    "{key}: admitted on CPUs {} ({} at {level})",
                    grant.cpus,
                    cores_phrase(cores)
                ));
                let adjust = fence::exclusive_adjustment(&grant);
                view.track(key, Some(grant));
                view.generation += 1;
                // Checked by admit: the fence leaves the others somewhere to run.
                let update = view.fence(&self.online).unwrap_or_default();
                CreateContainerResponse {
                    adjust: Some(adjust),
                    update,
                    ..CreateContainerResponse::default()
                }
            }
        };
        Ok(response)
    }

    fn update_container(
        &self,
        request: UpdateContainerRequest,
    ) -> Result<UpdateContainerResponse, Refusal> {
        let id = request.container.unwrap_or_default().id;
        let view = lock(&self.view);
        // Whoever updates the container's resources (kubelet) may carry its own cpuset:
        // ours goes with the update, so the fence stays.
        let update = match view.containers.get(&id) {
            Some(Tracked {
                grant: Some(grant), ..
            }) => vec![fence::exclusive_update(&id, grant)],
            Some(_) if !view.exclusive().is_empty() => {
                let shared = fence::shared_cpus(&self.online, &view.exclusive())
                    .map_err(|err| Refusal::new(err.to_string()))?;
                fence::shared_updates([id.as_str()], &shared)
            }
            _ => Vec::new(),
        };
        Ok(UpdateContainerResponse {
            update,
            ..UpdateContainerResponse::default()
        })
    }

    fn stop_container(
        &self,
        request: StopContainerRequest,
    ) -> Result<StopContainerResponse, Refusal> {
        let id = request.container.unwrap_or_default().id;
        let mut view = lock(&self.view);
        let Some(tracked) = view.containers.get_mut(&id) else {
            return Ok(StopContainerResponse::default());
        };
        tracked.alive = false;
        // A release that fails keeps the cores fenced: the ledger still holds them.
        if tracked.grant.is_none() || !self.release(&tracked.key) {
            return Ok(StopContainerResponse::default());
        }
        tracked.grant = None;
        view.generation += 1;
        let update = view
            .fence(&self.online)
            .map_err(|err| Refusal::new(err.to_string()))?;
        Ok(StopContainerResponse { update })
    }

    fn state_change(&self, event: StateChangeEvent) -> Result<(), Refusal> {
        match event.event() {
            Event::PostStartContainer => {
                self.started(&event.container.unwrap_or_default().id);
                return Ok(());
            }
            Event::RemoveContainer => {}
            _ => return Ok(()),
        }
        let id = event.container.unwrap_or_default().id;
        let mut view = lock(&self.view);
        let Some(tracked) = view.containers.remove(&id) else {
            return Ok(());
        };
        // Removed without a stop (its creation failed after our answer, or it never ran).
        if tracked.grant.is_some() {
            self.release(&tracked.key);
            view.generation += 1;
            view.refence_after_answer = true;
        }
        Ok(())
    }

    fn shutdown(&self) {
        self.say("NRI: the runtime is shutting down");
    }

    fn answered(&self) {
        let (due, started) = {
            let mut view = lock(&self.view);
            let due = std::mem::take(&mut view.refence_after_answer);
            (due, std::mem::take(&mut view.started_after_answer))
        };
        for key in &started {
            self.hand_over(key);
        }
        if due {
            // The refencer has gone only if its connection has; nothing is left to fence then.
            let _ = self.refence.send(());
        }
    }
}

impl Refencer {
    /// Sends the fence each time the plugin asks, until the plugin is dropped or the
    /// connection closes. A fence sent while the exclusive CPUs changed is sent again from
    /// the newer view, as the runtime may apply the two in either order.
    pub fn run(self, client: &RuntimeClient) {
        while self.wakeups.recv().is_ok() {
            while self.wakeups.try_recv().is_ok() {}
            if !self.refence(client) {
                return;
            }
        }
    }

    /// False once the connection is closed.
    fn refence(&self, client: &RuntimeClient) -> bool {
        loop {
            let (generation, fence) = {
                let view = lock(&self.view);
                (view.generation, view.fence(&self.online))
            };
            let update = match fence {
                Ok(update) if update.is_empty() => return true,
                Ok(update) => update,
                Err(err) => {
                    (self.log)(&format!("NRI: cannot fence the other containers: {err}"));
                    return true;
                }
            };
            match client.update_containers(UpdateContainersRequest {
                update,
                evict: Vec::new(),
            }) {
                Ok(failed) => self.report_failed(&failed),
                Err(Error::Closed { .. }) => return false,
                Err(err) => (self.log)(&format!("NRI: cannot fence the other containers: {err}")),
            }
            if lock(&self.view).generation == generation {
                return true;
            }
        }
    }

    fn report_failed(&self, failed: &[ContainerUpdate]) {
        if !failed.is_empty() {
            let ids: Vec<&str> = failed.iter().map(|u| u.container_id.as_str()).collect();
            (self.log)(&format!(
                "NRI: the runtime could not update the cpuset of containers {}",
                ids.join(", ")
            ));
        }
    }
}

impl View {
    fn track(&mut self, key: ContainerKey, grant: Option<Grant>) {
        let id = key.id.clone();
        self.containers.insert(
            id,
            Tracked {
                key,
                alive: true,
                grant,
            },
        );
    }

    /// Every CPU the latency-sensitive containers hold.
    fn exclusive(&self) -> CpuSet {
        self.containers
            .values()
            .filter_map(|t| t.grant.as_ref())
            .fold(CpuSet::new(), |all, g| all.union(&g.cpus))
    }

    /// The live containers that are not latency-sensitive, onto what the others leave.
    fn fence(&self, online: &CpuSet) -> Result<Vec<ContainerUpdate>, NoSharedCpu> {
        let shared = fence::shared_cpus(online, &self.exclusive())?;
        let others = self
            .containers
            .iter()
            .filter(|(_, t)| t.alive && t.grant.is_none())
            .map(|(id, _)| id.as_str());
        Ok(fence::shared_updates(others, &shared))
    }

    /// The latency-sensitive containers onto their own cores, as the runtime may have
    /// forgotten (its own view lags after an adjustment). Sent at Synchronize, where one
    /// failed update would fail the whole registration, so each may fail alone.
    fn pinning(&self) -> Vec<ContainerUpdate> {
        self.containers
            .iter()
            .filter_map(|(id, t)| {
                Some(ContainerUpdate {
                    ignore_failure: true,
                    ..fence::exclusive_update(id, t.grant.as_ref()?)
                })
            })
            .collect()
    }
}

fn cores_phrase(cores: u32) -> String {
    match cores {
        1 => "1 core".to_owned(),
        n => format!("{n} cores"),
    }
}

fn pods_by_id(request: &SynchronizeRequest) -> HashMap<&str, &PodSandbox> {
    request.pods.iter().map(|p| (p.id.as_str(), p)).collect()
}

/// Anything but stopped: it has a cgroup to update. An unknown state counts as alive, as
/// releasing the cores of a container that still runs would be the worse mistake.
fn is_alive(container: &Container) -> bool {
    container.state() != ContainerState::Stopped
}

fn resources(container: &Container) -> Option<&crate::api::LinuxResources> {
    container.linux.as_ref().and_then(|l| l.resources.as_ref())
}

/// A poisoned lock only means a handler panicked; the view is still the best there is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
