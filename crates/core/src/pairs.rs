//! Who talks to whom: traffic per (client workload, server workload, class), the series behind
//! `netcost_workload_traffic_bytes_total`.
//!
//! A pair is oriented by who opened the flow, not by which way the bytes went: the client is the
//! original tuple's source, the server the (post-DNAT) responder. Both directions of a flow land
//! on the same pair, so a cross-zone edge reads as one row, and "which Service do these callers
//! reach across zones" is a question about the server side.
//!
//! Counting rule, so the sum over every agent counts each byte once:
//! - an agent adds the bytes its local end *sent* (a cross-node flow is seen by two agents, and
//!   each adds its own side);
//! - when the remote end has no agent (the internet, a cloud service, any address outside the
//!   cluster), the agent adds the bytes it received too.
//!
//! Cardinality: workloads rather than pods (the pods of a Deployment share one name), zones, and
//! a class. The aggregator caps the number of pairs; see [`crate::aggregate`].

use std::sync::Arc;

use crate::class::TrafficClass;
use crate::topology::{Endpoint, PodInfo, Topology};

/// The `kind` of a peer that is a node or a hostNetwork pod.
pub const KIND_NODE: &str = "Node";
/// The `kind` of a pod without an owner.
pub const KIND_POD: &str = "Pod";
/// The `kind` of an address outside the cluster.
pub const KIND_EXTERNAL: &str = "External";
/// The value of every label of the pair that lumps together pairs past the cap.
pub const OTHER: &str = "__other__";

/// One end of a pair: a workload, the nodes, or an external destination.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Peer {
    /// Namespace; empty for nodes and external ends.
    pub namespace: Arc<str>,
    /// `Deployment`, `StatefulSet`, … (after ReplicaSet → Deployment), or [`KIND_POD`],
    /// [`KIND_NODE`], [`KIND_EXTERNAL`].
    pub kind: Arc<str>,
    /// The workload's name; `node` for nodes; for external ends the cloud or user service
    /// (`aws-s3`), `internet`, or `private` (a private address outside the cluster).
    pub name: Arc<str>,
    /// Zone of the end, empty when unknown or external.
    pub zone: Arc<str>,
}

impl Peer {
    /// The peer every label of which reads [`OTHER`].
    pub fn other() -> Peer {
        let other: Arc<str> = Arc::from(OTHER);
        Peer {
            namespace: other.clone(),
            kind: other.clone(),
            name: other.clone(),
            zone: other,
        }
    }

    /// A peer from its four label values.
    pub fn new(namespace: &str, kind: &str, name: &str, zone: &str) -> Peer {
        Peer {
            namespace: namespace.into(),
            kind: kind.into(),
            name: name.into(),
            zone: zone.into(),
        }
    }
}

/// The shared strings peers are built from, so building one allocates nothing.
#[derive(Debug, Clone)]
pub struct PeerNames {
    empty: Arc<str>,
    node_kind: Arc<str>,
    node_name: Arc<str>,
    pod_kind: Arc<str>,
    external_kind: Arc<str>,
    internet: Arc<str>,
    private: Arc<str>,
}

impl Default for PeerNames {
    fn default() -> Self {
        PeerNames {
            empty: Arc::from(""),
            node_kind: Arc::from(KIND_NODE),
            node_name: Arc::from("node"),
            pod_kind: Arc::from(KIND_POD),
            external_kind: Arc::from(KIND_EXTERNAL),
            internet: Arc::from("internet"),
            private: Arc::from("private"),
        }
    }
}

impl PeerNames {
    /// The workload of `pod`, in `zone`: its owner, or the pod itself when it has none.
    pub fn pod(&self, pod: &PodInfo, zone: Option<&Arc<str>>) -> Peer {
        let (kind, name) = match &pod.owner {
            Some(owner) => (owner.kind.clone(), owner.name.clone()),
            None => (self.pod_kind.clone(), pod.name.clone()),
        };
        Peer {
            namespace: pod.namespace.clone(),
            kind,
            name,
            zone: zone.cloned().unwrap_or_else(|| self.empty.clone()),
        }
    }

    /// The nodes (and their hostNetwork pods) of `zone`, as one peer: per-node names would
    /// multiply the pairs by the node count.
    pub fn node(&self, zone: Option<&Arc<str>>) -> Peer {
        Peer {
            namespace: self.empty.clone(),
            kind: self.node_kind.clone(),
            name: self.node_name.clone(),
            zone: zone.cloned().unwrap_or_else(|| self.empty.clone()),
        }
    }

    /// An end outside the cluster: its service if it has one, else `internet` or `private`.
    pub fn external(&self, class: TrafficClass, service: Option<&Arc<str>>) -> Peer {
        let name = match service {
            Some(service) => service.clone(),
            None if class == TrafficClass::Internet => self.internet.clone(),
            None => self.private.clone(),
        };
        Peer {
            namespace: self.empty.clone(),
            kind: self.external_kind.clone(),
            name,
            zone: self.empty.clone(),
        }
    }

    /// The remote end at an address, as a peer. The flag is true when the remote end runs an
    /// agent of its own (a pod or a node of the cluster), which then counts what it sends.
    pub fn remote(
        &self,
        topology: &Topology,
        class: TrafficClass,
        service: Option<&Arc<str>>,
        ip: std::net::IpAddr,
    ) -> (Peer, bool) {
        let zone_of_node = |name: Option<&str>| {
            name.and_then(|n| topology.node(n))
                .and_then(|n| n.locality.zone.as_ref())
        };
        match topology.lookup(ip) {
            Some(Endpoint::Pod(pod)) => {
                let zone = zone_of_node(pod.node_name.as_deref());
                if pod.host_network {
                    (self.node(zone), true)
                } else {
                    (self.pod(pod, zone), true)
                }
            }
            Some(Endpoint::Node(node)) => (self.node(node.locality.zone.as_ref()), true),
            // Attribution never hands over a Service IP as the remote end (it is counted as
            // unattributed), so this is only reached through a topology change mid-read.
            Some(Endpoint::ServiceIp(_)) | None => (self.external(class, service), false),
        }
    }
}

/// The identity of one pair counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PairKey {
    /// The end that opened the flows.
    pub client: Peer,
    /// The end that answered them.
    pub server: Peer,
    /// Billing class of the traffic between them, seen from the agent's local end.
    pub class: TrafficClass,
}

/// One exported pair counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedPair {
    /// Which pair.
    pub key: PairKey,
    /// Bytes so far.
    pub value: u64,
}

/// A pair counter as saved in a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedPair {
    /// Which pair.
    pub key: PairKey,
    /// Its exported value.
    pub value: u64,
    /// Bytes still waiting for a scrape to see the series at zero.
    pub pending: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_ends_are_named_by_service_then_class() {
        let names = PeerNames::default();
        let s3: Arc<str> = Arc::from("aws-s3");
        assert_eq!(
            &*names.external(TrafficClass::CrossRegion, Some(&s3)).name,
            "aws-s3"
        );
        assert_eq!(
            &*names.external(TrafficClass::Internet, None).name,
            "internet"
        );
        assert_eq!(&*names.external(TrafficClass::InZone, None).name, "private");
        assert_eq!(
            &*names.external(TrafficClass::InZone, None).kind,
            KIND_EXTERNAL
        );
    }
}
