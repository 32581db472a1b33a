//! Single-host history: every published cycle of an agent goes into the embedded store, one
//! point per series per minute, which the cost API serves. `agent --history` records through
//! the agent's observer hook; the demo records its simulated minutes through the same call.

use anyhow::{Result, anyhow};
use netcost_agent::{CycleObserver, PublishedCycle};
use netcost_core::pipeline::Snapshot;
use netcost_core::topology::Topology;
use netcost_server::backend::AgentStatus;
use netcost_server::store::SharedStore;

/// Records cycles into a store.
pub struct HistoryRecorder {
    store: SharedStore,
}

impl HistoryRecorder {
    /// A recorder into `store`.
    pub fn new(store: SharedStore) -> Self {
        HistoryRecorder { store }
    }

    /// Records `snapshot`'s counters at `minute`, and the agent's status as of `unix_ms`. The
    /// store keeps one point per series per minute, so recording every cycle just keeps the
    /// current minute up to date.
    pub fn record(
        &self,
        minute: i64,
        snapshot: &Snapshot,
        topology: &Topology,
        (cycle_ms, cycle_failures): (f64, u64),
        unix_ms: i64,
    ) -> Result<()> {
        let mut store = self
            .store
            .0
            .lock()
            .map_err(|_| anyhow!("the history store's lock is poisoned"))?;
        store.record_snapshot(minute, snapshot, topology, &snapshot.node_name)?;
        store.set_agent(
            AgentStatus::of_snapshot(snapshot, cycle_ms, cycle_failures),
            Some(unix_ms),
        );
        Ok(())
    }
}

impl CycleObserver for HistoryRecorder {
    fn cycle_published(&mut self, cycle: &PublishedCycle<'_>) {
        let minute = (cycle.unix_ms / 60_000) as i64;
        let recorded = self.record(
            minute,
            cycle.snapshot,
            cycle.topology,
            (
                cycle.timing.cycle_seconds * 1000.0,
                cycle.timing.cycle_failures,
            ),
            cycle.unix_ms as i64,
        );
        if let Err(e) = recorded {
            tracing::error!(error = %e, "history not recorded");
        }
    }
}
