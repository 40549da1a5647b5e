//! Memory knobs that disturb a latency-sensitive workload from outside: transparent huge
//! pages (enable and defrag), KSM and automatic NUMA balancing. The selector files show
//! `always [madvise] never`; the bare word is written.

use nearnative_host::knobs as kernel;

use crate::knob::{fixed_file_knob, FileValue};

impl FileValue for kernel::ThpEnabled {
    fn parse(text: &str) -> Result<Self, String> {
        kernel::ThpEnabled::parse(text)
    }
    fn format(&self) -> String {
        match self {
            kernel::ThpEnabled::Always => "always",
            kernel::ThpEnabled::Madvise => "madvise",
            kernel::ThpEnabled::Never => "never",
        }
        .to_owned()
    }
}

impl FileValue for kernel::ThpDefrag {
    fn parse(text: &str) -> Result<Self, String> {
        kernel::ThpDefrag::parse(text)
    }
    fn format(&self) -> String {
        match self {
            kernel::ThpDefrag::Always => "always",
            kernel::ThpDefrag::Defer => "defer",
            kernel::ThpDefrag::DeferMadvise => "defer+madvise",
            kernel::ThpDefrag::Madvise => "madvise",
            kernel::ThpDefrag::Never => "never",
        }
        .to_owned()
    }
}

impl FileValue for kernel::KsmRun {
    fn parse(text: &str) -> Result<Self, String> {
        kernel::KsmRun::parse(text)
    }
    fn format(&self) -> String {
        match self {
            kernel::KsmRun::Stopped => "0",
            kernel::KsmRun::Running => "1",
            kernel::KsmRun::Unmerge => "2",
        }
        .to_owned()
    }
}

impl FileValue for kernel::NumaBalancing {
    fn parse(text: &str) -> Result<Self, String> {
        kernel::NumaBalancing::parse(text)
    }
    fn format(&self) -> String {
        match self {
            kernel::NumaBalancing::Disabled => "0",
            kernel::NumaBalancing::Normal => "1",
            kernel::NumaBalancing::MemoryTiering => "2",
            kernel::NumaBalancing::NormalAndMemoryTiering => "3",
        }
        .to_owned()
    }
}

fixed_file_knob!(
    /// Transparent huge pages.
    ThpEnabled,
    kernel::ThpEnabled,
    "transparent huge pages",
    "/sys/kernel/mm/transparent_hugepage/enabled"
);

fixed_file_knob!(
    /// When THP allocation may stall to compact memory.
    ThpDefrag,
    kernel::ThpDefrag,
    "THP defrag",
    "/sys/kernel/mm/transparent_hugepage/defrag"
);

fixed_file_knob!(
    /// Kernel same-page merging.
    KsmRun,
    kernel::KsmRun,
    "KSM",
    "/sys/kernel/mm/ksm/run"
);

fixed_file_knob!(
    /// `kernel.numa_balancing`.
    NumaBalancing,
    kernel::NumaBalancing,
    "kernel.numa_balancing",
    "/proc/sys/kernel/numa_balancing"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_values_write_the_bare_word() {
        assert_eq!(
            <kernel::ThpEnabled as FileValue>::parse("always [madvise] never"),
            Ok(kernel::ThpEnabled::Madvise)
        );
        assert_eq!(kernel::ThpDefrag::DeferMadvise.format(), "defer+madvise");
        assert_eq!(
            <kernel::ThpDefrag as FileValue>::parse(&format!(
                "[{}] never",
                kernel::ThpDefrag::DeferMadvise.format()
            )),
            Ok(kernel::ThpDefrag::DeferMadvise)
        );
        assert_eq!(
            <kernel::NumaBalancing as FileValue>::parse(&kernel::NumaBalancing::Normal.format()),
            Ok(kernel::NumaBalancing::Normal)
        );
        assert_eq!(
            <kernel::KsmRun as FileValue>::parse(&kernel::KsmRun::Unmerge.format()),
            Ok(kernel::KsmRun::Unmerge)
        );
    }
}
