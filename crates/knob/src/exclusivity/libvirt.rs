//! A libvirt domain's pinning: the CPUs of one of its vCPUs, of its emulator threads or of
//! one of its iothreads, as libvirt's child cgroup (`vcpuN`, `emulator`, `iothreadN`) holds
//! them. Read from that cgroup's `cpuset.cpus` (through its definition, so a captured tree
//! reads the same way); written through libvirt ([`Backend::libvirt_pin`]), which sets the
//! cgroup and its threads' affinity and keeps its own record of the pinning in step.

use serde::{Deserialize, Serialize};

use super::cgroup::Cgroup;
use crate::backend::{Backend, LibvirtPinCall};
use crate::error::{Described, KnobError, Object};
use crate::knob::{read_file, Knob};
use nearnative_host::kernel::KernelFile;
use nearnative_host::libvirt::LibvirtChild;
use nearnative_host::CpuSet;

/// One pinning of a running libvirt domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibvirtPin {
    /// libvirt's connection URI.
    pub uri: String,
    /// The domain's ID in this run, what virsh is given: a journal never pins a later run
    /// of a domain with the same name.
    pub domain_id: u32,
    /// The domain's name, for messages.
    pub domain: String,
    pub which: LibvirtChild,
    /// libvirt's child cgroup of `which`.
    pub cgroup: Cgroup,
}

impl LibvirtPin {
    fn what(&self) -> String {
        match self.which {
            LibvirtChild::Vcpu(n) => format!("vCPU {n}"),
            LibvirtChild::Emulator => "emulator threads".to_owned(),
            LibvirtChild::Iothread(n) => format!("iothread {n}"),
        }
    }

    /// A domain whose cgroup is gone has stopped (libvirt removes a stopped domain's
    /// cgroups): there is nothing left to pin or restore.
    fn gone(&self, reason: impl Into<String>) -> KnobError {
        KnobError::Gone {
            knob: self.describe(),
            reason: reason.into(),
        }
    }
}

impl Knob for LibvirtPin {
    type Value = CpuSet;

    fn describe(&self) -> Described {
        Described::new(
            format!(
                "libvirt pinning of the {} of domain {} (id {})",
                self.what(),
                self.domain,
                self.domain_id
            ),
            self.cgroup.at().cpus().path().display().to_string(),
        )
    }

    fn read(&self, backend: &dyn Backend) -> Result<CpuSet, KnobError> {
        if !backend.root().exists(self.cgroup.dir()) {
            return Err(self.gone("its cgroup is gone: the domain has stopped"));
        }
        read_file(backend, &self.cgroup.at().cpus())
    }

    fn write(&self, backend: &dyn Backend, cpus: &CpuSet) -> Result<(), KnobError> {
        let call = LibvirtPinCall {
            uri: &self.uri,
            domain_id: self.domain_id,
            which: self.which,
            cpus,
            cgroup_dir: self.cgroup.dir(),
        };
        backend.libvirt_pin(&call).map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => self.gone(err.to_string()),
            std::io::ErrorKind::Unsupported => KnobError::NotAvailable {
                knob: self.describe(),
                reason: err.to_string(),
            },
            _ => match err.raw_os_error() {
                Some(_) => KnobError::from_write(self.describe(), Object::File, err),
                None => KnobError::Io {
                    knob: self.describe(),
                    source: err,
                },
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::TreeBackend;
    use crate::values::{CgroupMount, CgroupPath};

    const DOMAIN: &str = "/machine/qemu-7-nn1.libvirt-qemu";

    fn pin(which: LibvirtChild) -> LibvirtPin {
        LibvirtPin {
            uri: "qemu:///system".into(),
            domain_id: 7,
            domain: "nn1".into(),
            which,
            cgroup: Cgroup {
                mount: CgroupMount::try_from("/sys/fs/cgroup/cpuset").unwrap(),
                path: CgroupPath::try_from(format!("{DOMAIN}/{}", which.dir_name())).unwrap(),
            },
        }
    }

    fn write(root: &std::path::Path, path: &str, text: &str) {
        let real = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(real.parent().unwrap()).unwrap();
        std::fs::write(real, text).unwrap();
    }

    #[test]
    fn a_tree_plays_libvirt_and_a_stopped_domain_is_gone() {
        let tree = tempfile::tempdir().unwrap();
        let vcpu0 = format!("/sys/fs/cgroup/cpuset{DOMAIN}/vcpu0");
        write(tree.path(), &format!("{vcpu0}/cpuset.cpus"), "0-3\n");
        write(tree.path(), &format!("{vcpu0}/tasks"), "4002\n");
        let status = "Name:\tCPU 0/KVM\nCpus_allowed:\tf\nCpus_allowed_list:\t0-3\n";
        write(tree.path(), "/proc/4000/task/4002/status", status);
        let backend = TreeBackend::new(tree.path());
        let knob = pin(LibvirtChild::Vcpu(0));
        assert_eq!(knob.read(&backend).unwrap(), CpuSet::from_ids([0, 1, 2, 3]));
        knob.write(&backend, &CpuSet::from_ids([2])).unwrap();
        assert!(knob.verify(&backend, &CpuSet::from_ids([2])).unwrap());
        let status = std::fs::read_to_string(tree.path().join("proc/4000/task/4002/status"));
        assert!(status.unwrap().contains("Cpus_allowed_list:\t2\n"));
        let stopped = pin(LibvirtChild::Emulator);
        assert!(stopped.read(&backend).unwrap_err().is_gone());
        let err = stopped.write(&backend, &CpuSet::from_ids([0])).unwrap_err();
        assert!(err.is_gone(), "{err}");
    }

    #[test]
    fn the_journal_names_the_domain_by_id_and_the_child_by_role() {
        let json = serde_json::to_value(pin(LibvirtChild::Iothread(1))).unwrap();
        assert_eq!(json["domain_id"], 7);
        assert_eq!(
            json["which"],
            serde_json::json!({"role": "iothread", "index": 1})
        );
        assert_eq!(
            json["cgroup"]["path"],
            "/machine/qemu-7-nn1.libvirt-qemu/iothread1"
        );
    }
}
