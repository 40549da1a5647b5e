//! Linux resources (NRI v0.6.1 `pkg/api/api.proto`: `LinuxResources`, `LinuxMemory`,
//! `LinuxCPU`, `HugepageLimit`, `LinuxDeviceCgroup`) and the `Optional*` wrappers, which tell
//! "unset" from zero: a field left `None` is one the runtime leaves as it is.

use std::collections::HashMap;

/// `message LinuxResources`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxResources {
    #[prost(message, optional, tag = "1")]
    pub memory: Option<LinuxMemory>,
    #[prost(message, optional, tag = "2")]
    pub cpu: Option<LinuxCpu>,
    #[prost(message, repeated, tag = "3")]
    pub hugepage_limits: Vec<HugepageLimit>,
    #[prost(message, optional, tag = "4")]
    pub blockio_class: Option<OptionalString>,
    #[prost(message, optional, tag = "5")]
    pub rdt_class: Option<OptionalString>,
    /// cgroup v2 files by name.
    #[prost(map = "string, string", tag = "6")]
    pub unified: HashMap<String, String>,
    #[prost(message, repeated, tag = "7")]
    pub devices: Vec<LinuxDeviceCgroup>,
}

/// `message LinuxMemory`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxMemory {
    #[prost(message, optional, tag = "1")]
    pub limit: Option<OptionalInt64>,
    #[prost(message, optional, tag = "2")]
    pub reservation: Option<OptionalInt64>,
    #[prost(message, optional, tag = "3")]
    pub swap: Option<OptionalInt64>,
    #[prost(message, optional, tag = "4")]
    pub kernel: Option<OptionalInt64>,
    #[prost(message, optional, tag = "5")]
    pub kernel_tcp: Option<OptionalInt64>,
    #[prost(message, optional, tag = "6")]
    pub swappiness: Option<OptionalUInt64>,
    #[prost(message, optional, tag = "7")]
    pub disable_oom_killer: Option<OptionalBool>,
    #[prost(message, optional, tag = "8")]
    pub use_hierarchy: Option<OptionalBool>,
}

/// `message LinuxCPU`. `cpus` and `mems` are cpuset lists ("2-3,6"); empty leaves them be.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxCpu {
    #[prost(message, optional, tag = "1")]
    pub shares: Option<OptionalUInt64>,
    /// CFS quota in microseconds per period; -1 for none.
    #[prost(message, optional, tag = "2")]
    pub quota: Option<OptionalInt64>,
    /// CFS period in microseconds.
    #[prost(message, optional, tag = "3")]
    pub period: Option<OptionalUInt64>,
    #[prost(message, optional, tag = "4")]
    pub realtime_runtime: Option<OptionalInt64>,
    #[prost(message, optional, tag = "5")]
    pub realtime_period: Option<OptionalUInt64>,
    #[prost(string, tag = "6")]
    pub cpus: String,
    #[prost(string, tag = "7")]
    pub mems: String,
}

/// `message HugepageLimit`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HugepageLimit {
    #[prost(string, tag = "1")]
    pub page_size: String,
    #[prost(uint64, tag = "2")]
    pub limit: u64,
}

/// `message LinuxDeviceCgroup`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxDeviceCgroup {
    #[prost(bool, tag = "1")]
    pub allow: bool,
    #[prost(string, tag = "2")]
    pub r#type: String,
    #[prost(message, optional, tag = "3")]
    pub major: Option<OptionalInt64>,
    #[prost(message, optional, tag = "4")]
    pub minor: Option<OptionalInt64>,
    #[prost(string, tag = "5")]
    pub access: String,
}

/// `message OptionalString`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OptionalString {
    #[prost(string, tag = "1")]
    pub value: String,
}

/// `message OptionalInt`: an `int64`, despite its name.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct OptionalInt {
    #[prost(int64, tag = "1")]
    pub value: i64,
}

/// `message OptionalInt32`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct OptionalInt32 {
    #[prost(int32, tag = "1")]
    pub value: i32,
}

/// `message OptionalUInt32`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct OptionalUInt32 {
    #[prost(uint32, tag = "1")]
    pub value: u32,
}

/// `message OptionalInt64`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct OptionalInt64 {
    #[prost(int64, tag = "1")]
    pub value: i64,
}

/// `message OptionalUInt64`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct OptionalUInt64 {
    #[prost(uint64, tag = "1")]
    pub value: u64,
}

/// `message OptionalBool`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct OptionalBool {
    #[prost(bool, tag = "1")]
    pub value: bool,
}

/// `message OptionalFileMode`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct OptionalFileMode {
    #[prost(uint32, tag = "1")]
    pub value: u32,
}

impl LinuxResources {
    /// Resources that change only the cpuset (`cpus`) and, when given, its memory nodes.
    pub fn cpuset(cpus: &str, mems: Option<&str>) -> LinuxResources {
        LinuxResources {
            cpu: Some(LinuxCpu {
                cpus: cpus.to_owned(),
                mems: mems.unwrap_or_default().to_owned(),
                ..LinuxCpu::default()
            }),
            ..LinuxResources::default()
        }
    }
}
