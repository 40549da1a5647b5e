//! Which boot of the kernel a state file was written in.
//!
//! A reboot resets every knob an apply wrote and ends every thread and cgroup it touched, so
//! a journal, plan record or ledger entry from another boot describes nothing on this host:
//! restoring its priors would write stale values over whatever this boot set. Each of them
//! records the kernel's `boot_id` (a random UUID drawn at every boot), which decides alone.
//!
//! One written before boots were recorded can only be judged by its time against this boot's
//! start (`btime`), and `btime` follows the wall clock: chrony stepping the clock forward after
//! an early-boot apply makes a live entry look older than the boot. Closing that entry would
//! leave its knobs set and give its cores away, so such an entry is from another boot only
//! when it is older than the boot by [`LEGACY_MARGIN_MS`] and none of its threads is alive;
//! otherwise the boot is unknown and the entry is left for revert.

use nearnative_host::Root;
use serde::Serialize;

/// A random UUID the kernel draws at boot.
pub const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// Where `btime`, the boot time in seconds since the epoch, is read.
const STAT: &str = "/proc/stat";

/// How much older than this boot's start an entry without a boot id must be to be judged from
/// another boot: more than a boot-time clock step (chrony's `makestep` on a host with a
/// working RTC) moves `btime`, less than a reboot of a server takes to come back.
pub const LEGACY_MARGIN_MS: u64 = 5 * 60 * 1000;

/// The boot a state file was written in, as far as it can be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Boot {
    This,
    /// Another boot: what the file describes was reset by the reboot.
    Other,
    /// Neither its boot id nor its time can be compared with this boot's.
    Unknown,
}

/// This boot, as the host (live or a tree) shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThisBoot {
    /// `None` when the host does not show one (a tree without the file).
    pub id: Option<String>,
    /// When the kernel booted, in milliseconds since the epoch.
    pub started_unix_ms: Option<u64>,
}

impl ThisBoot {
    pub fn read(root: &Root) -> ThisBoot {
        ThisBoot {
            id: boot_id(root),
            started_unix_ms: boot_time_s(root).ok().map(|s| s.saturating_mul(1000)),
        }
    }

    /// The boot of a file that recorded `boot_id` (`None`: written before boots were
    /// recorded) and was made at `made_unix_ms`. A file with a boot id is judged by it alone;
    /// one without, by its time and, only when that says another boot, by `any_thread_alive`
    /// (whether a thread it recorded still runs, same pid and start time): see the module doc.
    pub fn of(
        &self,
        boot_id: Option<&str>,
        made_unix_ms: u64,
        any_thread_alive: impl FnOnce() -> bool,
    ) -> Boot {
        match boot_id {
            Some(recorded) => self.of_id(recorded),
            None => self.of_legacy(made_unix_ms, any_thread_alive),
        }
    }

    /// The boot of a file that recorded the boot id `recorded`.
    pub fn of_id(&self, recorded: &str) -> Boot {
        match &self.id {
            Some(now) if now == recorded => Boot::This,
            Some(_) => Boot::Other,
            None => Boot::Unknown,
        }
    }

    fn of_legacy(&self, made_unix_ms: u64, any_thread_alive: impl FnOnce() -> bool) -> Boot {
        let Some(started) = self.started_unix_ms else {
            return Boot::Unknown;
        };
        if made_unix_ms >= started {
            return Boot::This;
        }
        let well_before = made_unix_ms.saturating_add(LEGACY_MARGIN_MS) < started;
        match well_before && !any_thread_alive() {
            true => Boot::Other,
            false => Boot::Unknown,
        }
    }
}

/// This boot's id, or `None` when the host does not show a well-formed one.
pub fn boot_id(root: &Root) -> Option<String> {
    let id = root.read_trimmed(BOOT_ID).ok()?;
    let well_formed =
        !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    well_formed.then_some(id)
}

/// The boot time, in seconds since the epoch (`btime` of `/proc/stat`).
pub fn boot_time_s(root: &Root) -> Result<u64, nearnative_host::ReadError> {
    root.read_parsed(STAT, parse_btime)
}

/// The `btime` line of `/proc/stat`: the boot time in seconds since the epoch.
fn parse_btime(stat: &str) -> Result<u64, String> {
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .ok_or("no btime line")?
        .trim()
        .parse()
        .map_err(|_| "btime is not a number".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_boot_id_decides_and_time_decides_only_without_one() {
        let started = 10 * LEGACY_MARGIN_MS;
        let now = ThisBoot {
            id: Some("aaaa".to_owned()),
            started_unix_ms: Some(started),
        };
        let well_before = started - LEGACY_MARGIN_MS - 1;
        let cases = [
            ("same id", Some("aaaa"), 0, true, Boot::This),
            ("same id, nothing alive", Some("aaaa"), 0, false, Boot::This),
            (
                "other id, made after the boot",
                Some("bbbb"),
                started,
                false,
                Boot::Other,
            ),
            (
                "legacy, made after the boot",
                None,
                started,
                false,
                Boot::This,
            ),
            (
                "legacy, well before, nothing alive",
                None,
                well_before,
                false,
                Boot::Other,
            ),
            (
                "legacy, well before, a thread alive",
                None,
                well_before,
                true,
                Boot::Unknown,
            ),
            (
                "legacy, within the margin",
                None,
                started - 1,
                false,
                Boot::Unknown,
            ),
        ];
        for (what, id, made, alive, expected) in cases {
            assert_eq!(now.of(id, made, || alive), expected, "{what}");
        }
        let unknown = ThisBoot::default();
        assert_eq!(unknown.of(Some("aaaa"), 0, || false), Boot::Unknown);
        assert_eq!(unknown.of(None, 0, || false), Boot::Unknown);
    }

    #[test]
    fn btime_is_read_from_proc_stat() {
        let stat = "cpu  1 2 3\nintr 5\nbtime 1764000000\nprocesses 9\n";
        assert_eq!(parse_btime(stat), Ok(1_764_000_000));
        assert!(parse_btime("cpu 1\n").is_err());
    }

    #[test]
    fn btime_and_boot_id_are_read_through_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let proc = dir.path().join("proc");
        std::fs::create_dir_all(proc.join("sys/kernel/random")).unwrap();
        std::fs::write(
            proc.join("stat"),
            "cpu  1 2 3\nbtime 1700000000\nprocesses 5\n",
        )
        .unwrap();
        let root = Root::new(dir.path());
        assert_eq!(ThisBoot::read(&root).id, None);
        let id = "0f6c3b1e-3d52-4bd6-9a57-2f2b0d1c9e11";
        std::fs::write(proc.join("sys/kernel/random/boot_id"), format!("{id}\n")).unwrap();
        let boot = ThisBoot::read(&root);
        assert_eq!(boot.id.as_deref(), Some(id));
        assert_eq!(boot.started_unix_ms, Some(1_700_000_000_000));
        std::fs::write(proc.join("sys/kernel/random/boot_id"), "../../x\n").unwrap();
        assert_eq!(boot_id(&root), None);
    }
}
