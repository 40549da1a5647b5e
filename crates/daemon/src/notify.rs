//! systemd's notify protocol: READY=1 once the daemon has adopted its state, WATCHDOG=1 from
//! the loop. Owned by the packaging work package.
