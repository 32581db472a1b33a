//! The classification cache: the last class (and pair end, and NAT path) of each remote address,
//! so that most flows skip the classifier's trie walks and hash lookups.
//!
//! What it does not do: decide anything itself ([`Classifier`] and [`PeerNames`] do), or notice
//! that its inputs changed: the pipeline empties it whenever the topology or classifier is
//! replaced.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;

use crate::classify::{Classification, Classifier};
use crate::pairs::{Peer, PeerNames};
use crate::topology::{Locality, Topology};

/// The remote end of a flow as a pair end.
#[derive(Debug)]
pub(super) struct RemotePeer {
    pub(super) peer: Peer,
    /// True when an agent runs at the remote end and counts what it sends.
    pub(super) has_agent: bool,
}

/// What the cache knows of a remote address.
#[derive(Clone)]
pub(super) struct Remote {
    pub(super) classification: Classification,
    pub(super) peer: Arc<RemotePeer>,
    /// A connection to it from this node goes through a NAT gateway: the node is behind one, and
    /// this is an end outside the cluster at a public address, not on the config's bypass list.
    pub(super) through_nat: bool,
}

/// Slots of the classification cache: a power of two, direct-mapped, so its memory is fixed.
const CLASS_CACHE_SLOTS: usize = 4096;

/// The last classification of remote addresses, by address. A remote end's class depends only
/// on the address, the topology, the local node and the classifier, and the cache is emptied
/// whenever one of those is replaced. Most flows go to a few pods, Services and nodes, which
/// this turns from two or three trie walks and hash lookups into one comparison.
pub(super) struct ClassCache {
    slots: Vec<Option<(IpAddr, Remote)>>,
    /// One shared entry per distinct remote peer, so that the pair batch, keyed by the entry's
    /// address, holds one entry per (local pod, peer, class) however many addresses a peer has
    /// (every internet address is the peer `internet`). Bounded by workloads × zones plus the
    /// external names; emptied with the cache.
    peers: HashMap<Peer, Arc<RemotePeer>>,
}

impl ClassCache {
    pub(super) fn new() -> Self {
        ClassCache {
            slots: vec![None; CLASS_CACHE_SLOTS],
            peers: HashMap::new(),
        }
    }

    pub(super) fn clear(&mut self) {
        self.slots.fill(None);
        self.peers.clear();
    }

    /// `local_behind_nat`: whether the local node sends through a NAT gateway; only then is a
    /// remote end's path through one worth working out.
    pub(super) fn classify(
        &mut self,
        classifier: &Classifier,
        topology: &Topology,
        (local, local_behind_nat): (&Locality, bool),
        names: &PeerNames,
        remote: IpAddr,
    ) -> &Remote {
        // The top bits, which foldhash mixes best; a fixed seed, so a run is repeatable.
        let hash = foldhash::fast::FixedState::default().hash_one(remote);
        let slot = &mut self.slots[(hash >> 52) as usize % CLASS_CACHE_SLOTS];
        if !matches!(slot, Some((ip, _)) if *ip == remote) {
            *slot = None;
        }
        let peers = &mut self.peers;
        let (_, cached) = slot.get_or_insert_with(|| {
            let classification = classifier.classify(topology, local, remote);
            let (peer, has_agent) = names.remote(
                topology,
                classification.class,
                classification.service.as_ref(),
                remote,
            );
            let peer = peers
                .entry(peer)
                .or_insert_with_key(|peer| {
                    Arc::new(RemotePeer {
                        peer: peer.clone(),
                        has_agent,
                    })
                })
                .clone();
            let through_nat =
                local_behind_nat && !has_agent && classifier.config().through_nat_gateway(remote);
            (
                remote,
                Remote {
                    classification,
                    peer,
                    through_nat,
                },
            )
        });
        cached
    }
}
