//! Where the cgroup hierarchies are mounted, from `/proc/self/mountinfo` or, in snapshots
//! that only have it, `/proc/mounts`.

use std::path::PathBuf;

use crate::{ReadError, Root};

/// One mounted filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mount_point: PathBuf,
    pub fs_type: String,
    /// Superblock options; a cgroup v1 mount lists its controllers here (`rw,cpuset`).
    pub options: Vec<String>,
}

impl Mount {
    pub fn is_cgroup1_with(&self, controller: &str) -> bool {
        self.fs_type == "cgroup" && self.options.iter().any(|o| o == controller)
    }

    pub fn is_cgroup2(&self) -> bool {
        self.fs_type == "cgroup2"
    }
}

/// The mount table under `root`: `/proc/self/mountinfo`, else `/proc/mounts`. A table with no
/// line that parses is an error, not "nothing mounted".
pub fn read_table(root: &Root) -> Result<Vec<Mount>, ReadError> {
    let (path, parse): (&str, fn(&str) -> Vec<Mount>) = if root.exists("/proc/self/mountinfo") {
        ("/proc/self/mountinfo", parse_mountinfo)
    } else {
        ("/proc/mounts", parse_mounts)
    };
    root.read_parsed(path, |text| {
        let mounts = parse(text);
        match mounts.is_empty() {
            true => Err("no mount line parses"),
            false => Ok(mounts),
        }
    })
}

/// Parses `/proc/PID/mountinfo`: `id parent major:minor root mount-point options
/// [optional fields] - fstype source super-options`. Malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let mut before = before.split_whitespace();
            let _ids = before.next()?.parse::<u64>().ok()?;
            let mount_point = before.nth(3).filter(|p| p.starts_with('/'))?;
            let mut after = after.split_whitespace();
            let fs_type = after.next()?;
            let _source = after.next()?;
            let options = after.next().unwrap_or("");
            Some(mount(mount_point, fs_type, options))
        })
        .collect()
}

/// Parses `/proc/mounts`: `source mount-point fstype options freq passno`.
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [_source, mount_point, fs_type, options, freq, passno] = fields[..] else {
                return None;
            };
            let numeric = |f: &str| f.parse::<u32>().is_ok();
            (mount_point.starts_with('/') && numeric(freq) && numeric(passno))
                .then(|| mount(mount_point, fs_type, options))
        })
        .collect()
}

fn mount(mount_point: &str, fs_type: &str, options: &str) -> Mount {
    Mount {
        mount_point: PathBuf::from(unescape(mount_point)),
        fs_type: fs_type.to_owned(),
        options: options.split(',').map(str::to_owned).collect(),
    }
}

/// The kernel writes space, tab, newline and backslash in paths as `\ooo` octal escapes.
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal.map(|d| d.iter().fold(0u32, |n, b| n * 8 + u32::from(b - b'0'))) {
            Some(value) if value <= 0xff => {
                out.push(value as u8);
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn mountinfo_lines_parse() {
        let text = "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n\
                    50 1 0:40 / /mnt/a\\040b rw - ext4 /dev/sda rw\n\
                    garbage\n";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 3);
        assert!(mounts[0].is_cgroup1_with("cpuset"));
        assert!(mounts[1].is_cgroup2());
        assert_eq!(mounts[2].mount_point, PathBuf::from("/mnt/a b"));
    }

    #[test]
    fn proc_mounts_lines_parse() {
        let text =
            "cgroup /sys/fs/cgroup/cpuset cgroup rw,nosuid,cpuset 0 0\nsysfs /sys sysfs rw 0 0\n";
        let mounts = parse_mounts(text);
        assert!(mounts[0].is_cgroup1_with("cpuset"));
        assert!(!mounts[1].is_cgroup2());
    }

    proptest! {
        #[test]
        fn parsers_never_panic(text in "\\PC{0,200}") {
            let _ = parse_mountinfo(&text);
            let _ = parse_mounts(&text);
        }
    }
}
