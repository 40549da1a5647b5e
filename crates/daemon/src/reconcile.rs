//! The reconcile loop: admits, applies, watches, repairs and releases through the engine.
//! Owned by the core work package.
