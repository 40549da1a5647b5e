//! The hand-built plan the tree tests apply: one step (or more) of every file-based knob
//! kind, in the order a planner would emit them. `from` holds a deliberately wrong guess:
//! the executor must journal what it reads, not what the plan says.

use nearnative_host::knobs as kernel;
use nearnative_host::power::ResumeLatency;
use nearnative_host::CpuSet;
use nearnative_knob::bypass::power::{CpufreqGovernor, Governor, PmQosResumeLatency};
use nearnative_knob::bypass::sysctl::{BusyPoll, BusyRead, KvmHaltPollNs};
use nearnative_knob::exclusivity::cgroup::{
    Cgroup, CgroupDir, Controller, CpusetCpuExclusive, CpusetCpus, CpusetMems, CpusetPartition,
    Hierarchy, Partition, Presence, TaskCgroup,
};
use nearnative_knob::exclusivity::housekeeping::{
    TimerMigration, WatchdogCpumask, WorkqueueCpumask,
};
use nearnative_knob::exclusivity::irq::{DefaultSmpAffinity, IrqAffinity};
use nearnative_knob::exclusivity::sched::{Policy, SchedPolicy};
use nearnative_knob::exclusivity::task::ThreadAffinity;
use nearnative_knob::memory::{KsmRun, NumaBalancing, ThpDefrag, ThpEnabled};
use nearnative_knob::{CgroupMount, CgroupPath, Change, Knob, Step};

use crate::tree::{Cpus, IRQS, PID, START_TIME, TIDS, V2_MOUNT};

pub const CPUSET_MOUNT: &str = "/sys/fs/cgroup/cpuset";

/// A change whose `from` is the target too: a plan's guess that the executor must ignore.
pub fn change<K: Knob>(knob: K, to: K::Value) -> Step
where
    Step: From<Change<K>>,
{
    Step::from(Change {
        knob,
        from: to.clone(),
        to,
    })
}

pub fn v1_cgroup(path: &str) -> Cgroup {
    Cgroup {
        mount: CgroupMount::try_from(CPUSET_MOUNT).unwrap(),
        path: CgroupPath::try_from(path).unwrap(),
    }
}

pub fn cpuset_hierarchy() -> Hierarchy {
    Hierarchy::V1 {
        mount: CgroupMount::try_from(CPUSET_MOUNT).unwrap(),
        controller: Controller::try_from("cpuset".to_owned()).unwrap(),
    }
}

/// Every file-based knob kind, the exclusive CPU being `cpus.second`.
pub fn every_file_knob(cpus: &Cpus) -> Vec<Step> {
    let exclusive = CpuSet::from_ids([cpus.second]);
    let housekeeping = CpuSet::from_ids([cpus.first]);
    let worker = TIDS[1];
    let nn = v1_cgroup("/nearnative-vm1");
    vec![
        change(CgroupDir { cgroup: nn.clone() }, Presence::Present),
        change(CpusetCpus { cgroup: nn.clone() }, exclusive.clone()),
        change(CpusetMems { cgroup: nn.clone() }, CpuSet::from_ids([0])),
        change(CpusetCpuExclusive { cgroup: nn.clone() }, true),
        change(
            TaskCgroup {
                pid: PID,
                tid: worker,
                start_time: START_TIME,
                hierarchy: cpuset_hierarchy(),
            },
            nn.path.clone(),
        ),
        change(
            ThreadAffinity {
                pid: PID,
                tid: worker,
                start_time: START_TIME,
            },
            exclusive.clone(),
        ),
        change(
            SchedPolicy {
                pid: PID,
                tid: worker,
                start_time: START_TIME,
            },
            Policy::Fifo { priority: 10 },
        ),
        change(
            CpusetPartition {
                cgroup: Cgroup {
                    mount: CgroupMount::try_from(V2_MOUNT).unwrap(),
                    path: CgroupPath::try_from("/nn").unwrap(),
                },
            },
            Partition::Isolated,
        ),
        change(IrqAffinity { irq: IRQS[0] }, housekeeping.clone()),
        change(IrqAffinity { irq: IRQS[1] }, housekeeping.clone()),
        change(DefaultSmpAffinity, housekeeping.clone()),
        change(WorkqueueCpumask, housekeeping.clone()),
        change(WatchdogCpumask, housekeeping),
        change(TimerMigration, false),
        change(
            PmQosResumeLatency { cpu: cpus.second },
            ResumeLatency::ZeroLatency,
        ),
        change(
            CpufreqGovernor { cpu: cpus.second },
            Governor::try_from("performance".to_owned()).unwrap(),
        ),
        change(KvmHaltPollNs, 0),
        change(BusyPoll, 50),
        change(BusyRead, 50),
        change(ThpEnabled, kernel::ThpEnabled::Never),
        change(ThpDefrag, kernel::ThpDefrag::Never),
        change(KsmRun, kernel::KsmRun::Stopped),
        change(NumaBalancing, kernel::NumaBalancing::Disabled),
    ]
}
