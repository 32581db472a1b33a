//! The refresh thread: every `--cloud-ranges-refresh` it re-reads the configured sources,
//! publishes the status and offers a new table when something changed. It sleeps on a channel
//! with a timeout, so it wakes for a refresh or at once when its [`Refresher`] is dropped.
//!
//! What it does not do: swap the table into the pipeline (the pipeline thread takes it, see
//! [`super::CloudShared::take_ranges`]).

use std::sync::Weak;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use super::CloudTables;

/// The running refresh thread. Dropping it stops the thread: at once while it waits, or after
/// the refresh under way (not waited for, so that stopping the agent never waits on a download).
#[derive(Debug)]
pub struct Refresher {
    /// Never sent on: dropping it disconnects the channel, which is the stop signal.
    _stop: mpsc::Sender<()>,
}

/// Starts the refresh thread for `tables`, every `refresh`; `None` when no source is configured
/// (the built-in table never changes). The thread also ends once the agent's shared state is
/// gone (`cloud` is held weakly).
pub fn spawn_refresher(
    mut tables: CloudTables,
    refresh: Duration,
    cloud: Weak<crate::Shared>,
) -> std::io::Result<Option<Refresher>> {
    if !tables.has_sources() {
        return Ok(None);
    }
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("netcost-cloud-ranges".into())
        .spawn(move || {
            loop {
                match stopped.recv_timeout(refresh) {
                    Err(RecvTimeoutError::Timeout) => {}
                    // Nothing is ever sent: any message, like a disconnect, means stop.
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
                let changed = tables.refresh();
                let ranges = changed.then(|| tables.ranges()).flatten();
                let Some(shared) = cloud.upgrade() else {
                    return;
                };
                shared.cloud.set_status(tables.status());
                if let Some(r) = ranges {
                    shared.cloud.offer_ranges(r);
                }
            }
        })?;
    Ok(Some(Refresher { _stop: stop }))
}
