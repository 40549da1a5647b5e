//! libvirt's cgroups of a QEMU domain, recognised by their paths: which domain a cgroup
//! belongs to (its directory, numeric ID and name) and which of the domain's children it is.
//!
//! libvirt puts a domain's threads in children of the domain's cgroup, one per role:
//! `emulator` (the main thread, the main loop, the monitor's iothread), `vcpuN` (vCPU N) and
//! `iothreadN` (iothread N). The domain's cgroup is named two ways:
//! - without systemd-machined, `<partition>/qemu-ID-NAME.libvirt-qemu`;
//! - with it, `<slice>/machine-qemu\x2dID\x2dNAME.scope/libvirt`, where systemd escapes the
//!   unit name (`-` as `\x2d`).
//!
//! The ID changes on every start of the domain, so it tells a running domain from an earlier
//! run of one with the same name.

use serde::{Deserialize, Serialize};

/// Which child of a domain's cgroup, as libvirt names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "role", content = "index")]
pub enum LibvirtChild {
    Emulator,
    Vcpu(u32),
    Iothread(u32),
}

impl LibvirtChild {
    /// The child's directory name: `emulator`, `vcpu0`, `iothread1`.
    pub fn dir_name(self) -> String {
        match self {
            LibvirtChild::Emulator => "emulator".to_owned(),
            LibvirtChild::Vcpu(n) => format!("vcpu{n}"),
            LibvirtChild::Iothread(n) => format!("iothread{n}"),
        }
    }

    fn parse(name: &str) -> Option<Self> {
        let index = |rest: &str| {
            let digits = !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit());
            digits.then(|| rest.parse().ok()).flatten()
        };
        match name {
            "emulator" => Some(LibvirtChild::Emulator),
            _ => {
                if let Some(n) = name.strip_prefix("vcpu").and_then(index) {
                    Some(LibvirtChild::Vcpu(n))
                } else {
                    name.strip_prefix("iothread")
                        .and_then(index)
                        .map(LibvirtChild::Iothread)
                }
            }
        }
    }
}

/// A libvirt domain's cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LibvirtDomain {
    /// The domain's cgroup path, the parent of its children (`/machine/qemu-2-nn1.libvirt-qemu`,
    /// or `.../machine-qemu\x2d2\x2dnn1.scope/libvirt`).
    pub dir: String,
    /// libvirt's numeric domain ID of this run.
    pub id: u32,
    pub name: String,
}

impl LibvirtDomain {
    /// The path of `child` of the domain's cgroup.
    pub fn child_path(&self, child: LibvirtChild) -> String {
        format!("{}/{}", self.dir, child.dir_name())
    }

    /// The domain a cgroup path is the domain directory of, without systemd or with it.
    pub fn from_dir(dir: &str) -> Option<LibvirtDomain> {
        let (parent, last) = dir.rsplit_once('/')?;
        let (id, name) = match last {
            "libvirt" => {
                let unit = parent.rsplit('/').next()?;
                let escaped = unit
                    .strip_prefix("machine-qemu\\x2d")?
                    .strip_suffix(".scope")?;
                let (id, name) = escaped.split_once("\\x2d")?;
                (id, unescape(name)?)
            }
            _ => {
                let (id, name) = last
                    .strip_prefix("qemu-")?
                    .strip_suffix(".libvirt-qemu")?
                    .split_once('-')?;
                (id, name.to_owned())
            }
        };
        let id = id
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| id.parse().ok())??;
        (!name.is_empty()).then(|| LibvirtDomain {
            dir: dir.to_owned(),
            id,
            name,
        })
    }
}

/// Recognises the cgroup `path` of a thread as a child of a libvirt domain's cgroup.
pub fn libvirt_child(path: &str) -> Option<(LibvirtDomain, LibvirtChild)> {
    let (dir, name) = path.rsplit_once('/')?;
    let child = LibvirtChild::parse(name)?;
    Some((LibvirtDomain::from_dir(dir)?, child))
}

/// Undoes systemd's unit-name escaping (`\xNN`); `None` for a malformed escape.
fn unescape(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        match (first, tail) {
            (b'\\', [b'x', hi, lo, more @ ..]) => {
                let hex = std::str::from_utf8(&[*hi, *lo]).ok()?.to_owned();
                bytes.push(u8::from_str_radix(&hex, 16).ok()?);
                rest = more;
            }
            (b'\\', _) => return None,
            _ => {
                bytes.push(first);
                rest = tail;
            }
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(dir: &str, id: u32, name: &str) -> LibvirtDomain {
        LibvirtDomain {
            dir: dir.to_owned(),
            id,
            name: name.to_owned(),
        }
    }

    #[test]
    fn both_layouts_name_the_domain_and_the_child() {
        let plain = "/machine/qemu-2-nn1.libvirt-qemu";
        let systemd = "/machine.slice/machine-qemu\\x2d14\\x2dweb\\x2d1.scope/libvirt";
        let cases = [
            (
                "vcpu, no systemd",
                format!("{plain}/vcpu0"),
                Some((domain(plain, 2, "nn1"), LibvirtChild::Vcpu(0))),
            ),
            (
                "emulator, no systemd",
                format!("{plain}/emulator"),
                Some((domain(plain, 2, "nn1"), LibvirtChild::Emulator)),
            ),
            (
                "iothread, systemd, a dash in the name",
                format!("{systemd}/iothread1"),
                Some((domain(systemd, 14, "web-1"), LibvirtChild::Iothread(1))),
            ),
            (
                "a name with dashes, no systemd",
                "/machine/qemu-3-a-b.libvirt-qemu/vcpu12".to_owned(),
                Some((
                    domain("/machine/qemu-3-a-b.libvirt-qemu", 3, "a-b"),
                    LibvirtChild::Vcpu(12),
                )),
            ),
            ("the domain dir itself", plain.to_owned(), None),
            ("an unknown child", format!("{plain}/vcpux"), None),
            ("a sign in the index", format!("{plain}/vcpu+1"), None),
            ("not libvirt", "/kubepods.slice/x/emulator".to_owned(), None),
            (
                "no id",
                "/machine/qemu-nn1.libvirt-qemu/vcpu0".to_owned(),
                None,
            ),
            (
                "bad escape",
                "/m/machine-qemu\\x2d1\\x2da\\xZZ.scope/libvirt/vcpu0".to_owned(),
                None,
            ),
        ];
        for (what, path, expected) in cases {
            assert_eq!(libvirt_child(&path), expected, "{what}");
        }
    }

    #[test]
    fn children_name_their_directories() {
        let d = domain("/machine/qemu-2-nn1.libvirt-qemu", 2, "nn1");
        assert_eq!(
            d.child_path(LibvirtChild::Iothread(1)),
            "/machine/qemu-2-nn1.libvirt-qemu/iothread1"
        );
        assert_eq!(LibvirtChild::Vcpu(3).dir_name(), "vcpu3");
    }
}
