//! The traffic log's tally: bytes per source (a local pod or the node) and destination address,
//! with at most `talkers_per_source` destinations per source and the rest summed apart.
//!
//! What it does not do: name anything or write the log; the pipeline turns the tally into
//! [`super::TalkerReport`]s with the topology's names, and the agent logs them.

use std::net::IpAddr;

use super::FastMap;
use crate::aggregate::Owner;
use crate::class::TrafficClass;

#[derive(Default)]
pub(super) struct Talkers {
    by_source: FastMap<Owner, FastMap<IpAddr, (u64, TrafficClass)>>,
    other: FastMap<Owner, u64>,
}

/// A destination's address, bytes both ways and class.
pub(super) type Destination = (IpAddr, (u64, TrafficClass));

impl Talkers {
    /// Adds `bytes` from `owner` to `remote`; a destination beyond the first `cap` of its source
    /// goes to the source's rest.
    pub(super) fn add(
        &mut self,
        owner: Owner,
        remote: IpAddr,
        bytes: u64,
        class: TrafficClass,
        cap: usize,
    ) {
        let destinations = self.by_source.entry(owner.clone()).or_default();
        let room = destinations.len() < cap;
        match destinations.get_mut(&remote) {
            Some(entry) => entry.0 = entry.0.saturating_add(bytes),
            None if room => {
                destinations.insert(remote, (bytes, class));
            }
            None => {
                let other = self.other.entry(owner).or_insert(0);
                *other = other.saturating_add(bytes);
            }
        }
    }

    /// Each source's top `n` destinations by bytes (ties by address).
    pub(super) fn top(self, n: usize) -> impl Iterator<Item = (Owner, Vec<Destination>)> {
        self.by_source
            .into_iter()
            .map(move |(owner, destinations)| {
                let mut top: Vec<(IpAddr, (u64, TrafficClass))> =
                    destinations.into_iter().collect();
                top.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(&b.0)));
                top.truncate(n);
                (owner, top)
            })
    }
}
