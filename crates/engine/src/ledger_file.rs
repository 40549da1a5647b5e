//! `ledger.json` in the state directory: the admission ledger, stored durably.

use nearnative_apply::StateDir;
use nearnative_plan::Ledger;
use nearnative_sys::durable::{self, DurableError};

/// The ledger file's schema version.
pub const LEDGER_SCHEMA_VERSION: u32 = 1;

/// The ledger in force; empty when there is none yet.
pub fn load_ledger(state: &StateDir) -> Result<Ledger, DurableError> {
    Ok(durable::load(&state.ledger_path(), LEDGER_SCHEMA_VERSION)?.unwrap_or_default())
}

pub(crate) fn store_ledger(state: &StateDir, ledger: &Ledger) -> Result<(), DurableError> {
    durable::store(&state.ledger_path(), LEDGER_SCHEMA_VERSION, ledger)
}
