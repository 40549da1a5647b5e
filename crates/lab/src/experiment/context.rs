//! The run's context for the report: the machine (online CPUs, CPU model, kernel) and when
//! the run started, in RFC 3339.

use std::time::{SystemTime, UNIX_EPOCH};

use nearnative_host::cpus::online_cpus;
use nearnative_host::Root;

use crate::report::HostLine;

/// The machine as `root` shows it; a value that cannot be read is `unknown`, never an error:
/// it only labels the report.
pub fn host_line(root: &Root) -> HostLine {
    let unknown = || "unknown".to_owned();
    HostLine {
        cpus_online: online_cpus(root).unwrap_or_default(),
        cpu_model: root
            .read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| cpu_model(&text))
            .unwrap_or_else(unknown),
        kernel: root
            .read_trimmed("/proc/sys/kernel/osrelease")
            .unwrap_or_else(|_| unknown()),
    }
}

/// The first `model name` of a `/proc/cpuinfo` (x86), else its `Hardware` or `cpu` line.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    ["model name", "Hardware", "cpu"].iter().find_map(|key| {
        cpuinfo.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            (name.trim() == *key && !value.trim().is_empty()).then(|| value.trim().to_owned())
        })
    })
}

/// Now, as RFC 3339 UTC to the second.
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

/// `unix_secs` as `YYYY-MM-DDThh:mm:ssZ` (proleptic Gregorian, Howard Hinnant's
/// civil-from-days).
pub fn rfc3339(unix_secs: u64) -> String {
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates_across_leap_years_and_centuries() {
        let cases = [
            ("epoch", 0, "1970-01-01T00:00:00Z"),
            ("leap day 2000", 951_782_400, "2000-02-29T00:00:00Z"),
            (
                "the lab's date",
                1_795_478_400 + 37_230,
                "2026-11-24T10:20:30Z",
            ),
            ("end of 2099", 4_102_444_799, "2099-12-31T23:59:59Z"),
        ];
        for (what, secs, want) in cases {
            assert_eq!(rfc3339(secs), want, "{what}");
        }
    }

    #[test]
    fn finds_the_cpu_model_on_each_architecture() {
        let cases = [
            (
                "x86",
                "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t: fpu\n",
                Some("AMD EPYC"),
            ),
            (
                "arm",
                "processor\t: 0\nHardware\t: BCM2835\n",
                Some("BCM2835"),
            ),
            ("power", "cpu\t\t: POWER9\n", Some("POWER9")),
            ("empty value", "model name\t:\n", None),
            ("nothing", "", None),
        ];
        for (what, text, want) in cases {
            assert_eq!(cpu_model(text).as_deref(), want, "{what}");
        }
    }
}
