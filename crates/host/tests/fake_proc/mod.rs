//! A synthetic `/proc` in a temporary directory: processes with a command line, a cgroup, and
//! threads with comm, stat and status, written the way the kernel formats them.

use std::fs;
use std::path::PathBuf;

use nearnative_host::Root;

pub const PF_KTHREAD: u64 = 0x0020_0000;
pub const PF_NO_SETAFFINITY: u64 = 0x0400_0000;

/// The parts of a thread that detection looks at.
#[derive(Debug, Clone)]
pub struct ThreadSpec<'a> {
    pub comm: &'a str,
    pub affinity: &'a str,
    pub state: char,
    pub flags: u64,
    pub policy: u32,
    pub rt_priority: u32,
    pub last_cpu: u32,
}

impl<'a> ThreadSpec<'a> {
    pub fn user(comm: &'a str, affinity: &'a str) -> Self {
        ThreadSpec {
            comm,
            affinity,
            state: 'S',
            flags: 0x40_0040,
            policy: 0,
            rt_priority: 0,
            last_cpu: 0,
        }
    }

    pub fn kernel(comm: &'a str, affinity: &'a str, flags: u64) -> Self {
        ThreadSpec {
            flags: PF_KTHREAD | flags,
            ..ThreadSpec::user(comm, affinity)
        }
    }

    /// Exited, not yet reaped.
    pub fn zombie(self) -> Self {
        ThreadSpec { state: 'Z', ..self }
    }

    pub fn fifo(self, rt_priority: u32) -> Self {
        ThreadSpec {
            policy: 1,
            rt_priority,
            ..self
        }
    }
}

pub struct FakeProc {
    dir: tempfile::TempDir,
}

impl FakeProc {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("proc")).unwrap();
        FakeProc { dir }
    }

    pub fn root(&self) -> Root {
        Root::new(self.dir.path())
    }

    /// The real location of a host path such as `/proc/1/stat`.
    pub fn path(&self, host_path: &str) -> PathBuf {
        self.root().path(host_path)
    }

    /// A process with its command line (arguments joined by NULs, as the kernel shows them)
    /// and a hybrid cgroup v1 + v2 membership.
    pub fn process(&self, pid: u32, argv: &[&str], cpuset: &str) -> &Self {
        let dir = self.path(&format!("/proc/{pid}"));
        fs::create_dir_all(dir.join("task")).unwrap();
        let cmdline: String = argv.iter().map(|a| format!("{a}\0")).collect();
        fs::write(dir.join("cmdline"), cmdline).unwrap();
        let cgroup = format!("4:memory:/\n3:cpuset:{cpuset}\n0::/\n");
        fs::write(dir.join("cgroup"), cgroup).unwrap();
        self
    }

    pub fn thread(&self, pid: u32, tid: u32, spec: &ThreadSpec) -> &Self {
        let dir = self.path(&format!("/proc/{pid}/task/{tid}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("comm"), format!("{}\n", spec.comm)).unwrap();
        fs::write(dir.join("stat"), stat_line(pid, tid, spec)).unwrap();
        let status = format!(
            "Name:\t{}\nTgid:\t{pid}\nPid:\t{tid}\nCpus_allowed:\t3\nCpus_allowed_list:\t{}\n",
            spec.comm, spec.affinity
        );
        fs::write(dir.join("status"), status).unwrap();
        self
    }

    /// A kernel thread: a process of its own under kthreadd, with an empty command line.
    pub fn kernel_thread(&self, pid: u32, spec: &ThreadSpec) -> &Self {
        self.process(pid, &[], "/").thread(pid, pid, spec)
    }
}

/// A stat line with every field proc(5) lists, in place.
fn stat_line(pid: u32, tid: u32, spec: &ThreadSpec) -> String {
    let ppid = if spec.flags & PF_KTHREAD != 0 { 2 } else { 1 };
    format!(
        "{tid} ({comm}) {state} {ppid} {pid} {pid} 0 -1 {flags} 10 0 0 0 5 3 0 0 20 0 1 0 100 \
         1000 50 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 {cpu} {rt} {policy} 0 0 0 0 0 \
         0 0 0 0 0 0\n",
        comm = spec.comm,
        state = spec.state,
        flags = spec.flags,
        cpu = spec.last_cpu,
        rt = spec.rt_priority,
        policy = spec.policy,
    )
}
