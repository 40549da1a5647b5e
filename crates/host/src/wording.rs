//! Shared wording for findings, so every part names CPUs the same way.

use crate::CpuSet;

/// "CPU 3" or "CPUs 0-2,5", as findings' evidence says it.
pub(crate) fn cpus_phrase(cpus: &CpuSet) -> String {
    match cpus.len() {
        1 => format!("CPU {cpus}"),
        _ => format!("CPUs {cpus}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn singular_and_plural() {
        assert_eq!(cpus_phrase(&CpuSet::from_ids([3])), "CPU 3");
        assert_eq!(cpus_phrase(&CpuSet::from_ids([0, 1, 2, 5])), "CPUs 0-2,5");
    }
}
