//! Admission of a workload that does not exist yet, against the ledger in force: what the
//! daemon answers libvirt's `prepare` with.

use nearnative_plan::{admit, Allocation, PlanRequest};
use nearnative_sys::lock::StateLock;

use crate::engine::{with_pending, Engine};
use crate::error::EngineError;
use crate::ledger_file::load_ledger_file;

impl Engine {
    /// The allocation `request` would get for `threads` exclusive threads if it were applied
    /// now, with the allocations of `pending` (admitted, not applied yet) counted as held (unless
    /// applied or overtaken since), or the planner's refusal. The host and the ledger are read under the state lock, so no
    /// apply is half-recorded meanwhile; nothing is recorded.
    pub fn admit(
        &self,
        request: &PlanRequest,
        threads: u32,
        pending: &[Allocation],
    ) -> Result<Allocation, EngineError> {
        self.state.ensure()?;
        let _lock = StateLock::acquire(self.state.dir())?;
        let ledger = with_pending(&load_ledger_file(&self.state)?.ledger, pending);
        let host = self.read_host(&request.target);
        Ok(admit(&host, request, threads, &ledger)?)
    }
}
