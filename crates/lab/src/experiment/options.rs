//! What a lab run is asked to do, and how long each of its measurements lasts.

use std::path::PathBuf;
use std::time::Duration;

use crate::cgroup::CgroupChoice;
use crate::path::Layer;
use crate::report::Config;

/// The shortest and longest `--duration` accepted: shorter gives too few samples for a
/// p99.99, longer would keep the noisy neighbour beyond its 600 s bound in one session.
pub const MIN_RUN: Duration = Duration::from_millis(100);
pub const MAX_RUN: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Options {
    /// The short profile, for CI.
    pub quick: bool,
    /// Every run's length, overriding the profile's.
    pub duration: Option<Duration>,
    /// The paths to measure, in the order given; each at most once.
    pub paths: Vec<Layer>,
    /// The configurations to measure (`--configs`), each at most once; measured in the order
    /// latency-sensitive, pinned, default whatever the order given, since the first apply
    /// decides the CPUs the others use.
    pub configs: Vec<Config>,
    /// The engine's state directory: the apply's journal and ledger.
    pub state_dir: PathBuf,
    /// Where the lab registries live (see [`crate::registry`]).
    pub run_dir: PathBuf,
    /// The hierarchy the lab's own cgroup goes in (`--cgroup`).
    pub cgroup: CgroupChoice,
}

#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error("--paths names no path (expected some of loopback, veth, bridge, tap)")]
    NoPaths,
    #[error("--paths lists {0} twice")]
    Duplicate(&'static str),
    #[error(
        "--configs names no configuration (expected some of default, pinned, latency-sensitive)"
    )]
    NoConfigs,
    #[error("--configs lists {0} twice")]
    DuplicateConfig(&'static str),
    #[error("--duration {given:?} is outside {MIN_RUN:?}..={MAX_RUN:?}")]
    Duration { given: Duration },
}

/// How long each measurement of a cell lasts. The same for every cell of a run, so the
/// configurations compare fairly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// The closed-loop run, measured part.
    pub closed_loop: Duration,
    /// The fixed-rate run, measured part.
    pub fixed_rate: Duration,
    /// The jitter run.
    pub jitter: Duration,
    /// Before each rtt run's measured part; nothing from it is reported.
    pub warmup: Duration,
}

impl Timing {
    /// `--quick`: 24 cells of about 2 s, under a minute in all with the set-up.
    pub const QUICK: Timing = Timing {
        closed_loop: Duration::from_millis(800),
        fixed_rate: Duration::from_millis(400),
        jitter: Duration::from_millis(400),
        warmup: Duration::from_millis(150),
    };
    /// The default: 24 cells of about 11 s, five to six minutes in all.
    pub const FULL: Timing = Timing {
        closed_loop: Duration::from_secs(5),
        fixed_rate: Duration::from_secs(3),
        jitter: Duration::from_secs(2),
        warmup: Duration::from_millis(500),
    };
    /// Slack per cell for binding, handshakes and joining threads.
    const CELL_SLACK: Duration = Duration::from_secs(2);
    /// Slack per session for the apply, the revert and starting the noise.
    const SESSION_SLACK: Duration = Duration::from_secs(30);

    /// The profile `quick` picks, every run set to `duration` when given.
    pub fn choose(quick: bool, duration: Option<Duration>) -> Result<Timing, OptionsError> {
        let profile = if quick { Timing::QUICK } else { Timing::FULL };
        let Some(run) = duration else {
            return Ok(profile);
        };
        if !(MIN_RUN..=MAX_RUN).contains(&run) {
            return Err(OptionsError::Duration { given: run });
        }
        Ok(Timing {
            closed_loop: run,
            fixed_rate: run,
            jitter: run,
            warmup: profile.warmup.min(run),
        })
    }

    /// How long one cell takes at most, slack included.
    pub fn cell(&self) -> Duration {
        self.closed_loop + self.fixed_rate + self.jitter + 2 * self.warmup + Timing::CELL_SLACK
    }

    /// How long the noise of one session (every path, one condition and configuration) must
    /// last; it stops earlier when the session ends.
    pub fn session(&self, paths: usize) -> Duration {
        self.cell() * u32::try_from(paths).unwrap_or(u32::MAX) + Timing::SESSION_SLACK
    }
}

impl Options {
    /// Checks the paths and returns the timing the options ask for.
    pub fn timing(&self) -> Result<Timing, OptionsError> {
        if self.paths.is_empty() {
            return Err(OptionsError::NoPaths);
        }
        for (i, layer) in self.paths.iter().enumerate() {
            if self.paths[..i].contains(layer) {
                return Err(OptionsError::Duplicate(layer.name()));
            }
        }
        if self.configs.is_empty() {
            return Err(OptionsError::NoConfigs);
        }
        for (i, config) in self.configs.iter().enumerate() {
            if self.configs[..i].contains(config) {
                return Err(OptionsError::DuplicateConfig(config.name()));
            }
        }
        Timing::choose(self.quick, self.duration)
    }

    /// The chosen configurations in the order a condition measures them: latency-sensitive
    /// first (its apply places the threads), then pinned, then default.
    pub fn session_order(&self) -> Vec<Config> {
        Config::ALL
            .into_iter()
            .rev()
            .filter(|config| self.configs.contains(config))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::MAX_NOISE_DURATION;

    fn options(paths: Vec<Layer>, duration: Option<Duration>) -> Options {
        Options {
            quick: true,
            duration,
            paths,
            configs: Config::ALL.to_vec(),
            state_dir: "/tmp/state".into(),
            run_dir: "/tmp/run".into(),
            cgroup: CgroupChoice::Auto,
        }
    }

    #[test]
    fn refuses_bad_paths_and_durations() {
        let cases = [
            ("no path", options(vec![], None), "--paths names no path"),
            (
                "a path twice",
                options(vec![Layer::Veth, Layer::Tap, Layer::Veth], None),
                "--paths lists veth twice",
            ),
            (
                "too long",
                options(Layer::ALL.to_vec(), Some(Duration::from_secs(31))),
                "--duration 31s is outside 100ms..=30s",
            ),
            (
                "too short",
                options(Layer::ALL.to_vec(), Some(Duration::from_millis(10))),
                "outside",
            ),
        ];
        for (what, options, message) in cases {
            let err = options.timing().unwrap_err().to_string();
            assert!(err.contains(message), "{what}: {err}");
        }
    }

    #[test]
    fn refuses_bad_configs_and_measures_latency_sensitive_first() {
        let with = |configs: Vec<Config>| Options {
            configs,
            ..options(Layer::ALL.to_vec(), None)
        };
        let none = with(vec![]).timing().unwrap_err().to_string();
        assert!(none.contains("--configs names no configuration"), "{none}");
        let twice = with(vec![Config::Pinned, Config::Pinned]).timing();
        assert_eq!(
            twice.unwrap_err().to_string(),
            "--configs lists pinned twice"
        );
        let order = with(vec![
            Config::Default,
            Config::LatencySensitive,
            Config::Pinned,
        ]);
        assert_eq!(
            order.session_order(),
            [Config::LatencySensitive, Config::Pinned, Config::Default]
        );
        assert_eq!(
            with(vec![Config::Default]).session_order(),
            [Config::Default]
        );
    }

    #[test]
    fn duration_overrides_every_run_and_noise_fits_its_bound() {
        let timing = Timing::choose(false, Some(Duration::from_secs(2))).unwrap();
        assert_eq!(timing.closed_loop, Duration::from_secs(2));
        assert_eq!(timing.fixed_rate, timing.jitter);
        assert_eq!(timing.warmup, Timing::FULL.warmup);
        let longest = Timing::choose(false, Some(MAX_RUN)).unwrap();
        assert!(longest.session(Layer::ALL.len()) <= MAX_NOISE_DURATION);
    }

    #[test]
    fn quick_measures_every_cell_in_under_a_minute() {
        let cells = 4 * 2 * 3;
        let measuring = (Timing::QUICK.cell() - Timing::CELL_SLACK) * cells;
        assert!(measuring < Duration::from_secs(50), "{measuring:?}");
    }
}
