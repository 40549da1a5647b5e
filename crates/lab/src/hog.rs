//! CPU hogs: one spinning thread per CPU, at normal priority, each pinned to its CPU, so
//! every CPU the probe could run on has a runnable competitor (the noisy neighbour's CPU
//! side). A hog stops at its deadline or when its flag is raised, whichever comes first.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Instant;

use nearnative_sys::pin::{pin_current_thread, PinError};

/// Iterations between two looks at the clock and the stop flag (a few microseconds).
const CHECK_EVERY: u32 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum HogError {
    #[error("cannot start thread {name}")]
    Spawn {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("hog on CPU {cpu} cannot pin itself")]
    Pin {
        cpu: u32,
        #[source]
        source: PinError,
    },
}

/// The name of the hog on `cpu`.
pub fn hog_thread_name(cpu: u32) -> String {
    format!("nn-hog-{cpu}")
}

/// Starts a hog pinned to `cpu`, spinning until `deadline` or `stop`, and returns once it is
/// pinned (so whoever moves threads next, such as the lab's apply, finds it settled). Its
/// result is the number of spin rounds it did.
pub fn start_hog(
    cpu: u32,
    deadline: Instant,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<Result<u64, HogError>>, HogError> {
    let name = hog_thread_name(cpu);
    let (pinned_sender, pinned) = mpsc::sync_channel(1);
    let hog = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let pin = pin_current_thread(cpu);
            let _ = pinned_sender.send(());
            pin.map_err(|source| HogError::Pin { cpu, source })?;
            Ok(spin(deadline, &stop))
        })
        .map_err(|source| HogError::Spawn { name, source })?;
    // A failed pin is reported when the hog is joined; either way it has settled.
    let _ = pinned.recv();
    Ok(hog)
}

fn spin(deadline: Instant, stop: &AtomicBool) -> u64 {
    let mut rounds = 0u64;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        for _ in 0..CHECK_EVERY {
            state = black_box(state.rotate_left(7) ^ state.wrapping_mul(3));
        }
        rounds += 1;
    }
    rounds
}
