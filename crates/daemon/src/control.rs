//! The control socket (`/run/nearnative/control.sock`, 0600, root peers only by
//! SO_PEERCRED): while the daemon runs, `nearnative apply|revert|status|verify` go through it
//! so the ledger has one owner. Owned by the control work package.
