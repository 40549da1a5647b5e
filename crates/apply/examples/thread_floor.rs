//! The floor `bench/apply-threads.sh` compares apply and revert with: the bare system calls
//! for the same threads, no reads, no journal. "apply" gives every thread of PID the
//! affinity HK_CPUS and writes its tid to TO/tasks; "revert" writes each tid to BACK/tasks
//! and gives it ALL_CPUS again. Each `tasks` file is opened once. Prints both times in ms.
//!
//! Usage: thread_floor PID TO_CGROUP_DIR BACK_CGROUP_DIR HK_CPUS ALL_CPUS

use std::error::Error;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::Instant;

use nearnative_host::CpuSet;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [pid, to, back, hk, all] = args.as_slice() else {
        return Err(
            "usage: thread_floor PID TO_CGROUP_DIR BACK_CGROUP_DIR HK_CPUS ALL_CPUS".into(),
        );
    };
    let tids = threads_of(pid)?;
    let (hk, all) = (CpuSet::parse_list(hk)?, CpuSet::parse_list(all)?);
    let start = Instant::now();
    set_affinity(&tids, &hk)?;
    move_to(&tids, Path::new(to))?;
    let apply = start.elapsed();
    let start = Instant::now();
    move_to(&tids, Path::new(back))?;
    set_affinity(&tids, &all)?;
    let revert = start.elapsed();
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    println!("{:.2} {:.2} {}", ms(apply), ms(revert), tids.len());
    Ok(())
}

fn threads_of(pid: &str) -> io::Result<Vec<i32>> {
    let mut tids = Vec::new();
    for entry in fs::read_dir(format!("/proc/{pid}/task"))? {
        if let Some(tid) = entry?.file_name().to_str().and_then(|t| t.parse().ok()) {
            tids.push(tid);
        }
    }
    Ok(tids)
}

fn set_affinity(tids: &[i32], cpus: &CpuSet) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; all zeros is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for cpu in cpus.iter() {
        // SAFETY: CPU_SET writes bit `cpu` of the set we own; ids past its size are ignored.
        unsafe { libc::CPU_SET(cpu as usize, &mut set) };
    }
    for &tid in tids {
        // SAFETY: the kernel reads `size_of::<cpu_set_t>()` bytes from the set we pass.
        let rc = unsafe { libc::sched_setaffinity(tid, std::mem::size_of_val(&set), &set) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn move_to(tids: &[i32], cgroup: &Path) -> io::Result<()> {
    let mut tasks = OpenOptions::new().write(true).open(cgroup.join("tasks"))?;
    for tid in tids {
        tasks.write_all(tid.to_string().as_bytes())?;
    }
    Ok(())
}
