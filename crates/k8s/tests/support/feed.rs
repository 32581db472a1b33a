//! Waiting on a [`TopologyFeed`] for the topology a test expects.

use std::sync::Arc;
use std::time::Duration;

use netcost_core::topology::Topology;
use netcost_k8s::TopologyFeed;

/// The first published topology (the current one included) that satisfies `ok`, within
/// `within`; `None` if none did, or the watchers stopped.
pub fn wait_for(
    feed: &mut TopologyFeed,
    waiter: &tokio::runtime::Runtime,
    within: Duration,
    ok: impl Fn(&Topology) -> bool,
) -> Option<Arc<Topology>> {
    let updates = &mut feed.updates;
    waiter
        .block_on(async {
            tokio::time::timeout(within, async {
                loop {
                    let current = updates.borrow_and_update().clone();
                    if ok(&current) {
                        return Some(current);
                    }
                    if updates.changed().await.is_err() {
                        return None;
                    }
                }
            })
            .await
        })
        .ok()
        .flatten()
}
