//! The indexes: IP → pod, node or Service, node name → node and uid → pod, with the rules of
//! [`Topology`] (newest pod wins a reused IP, node addresses win over pods).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::Topology;
use super::error::{TopologyError, parsed_ref};
use super::model::{NodeInfo, PodByUid, PodEntry, ServiceInfo};

/// What an IP of the index points at: the kind in the top two bits, the position in `pods`,
/// `nodes` or `services` below. Four bytes rather than an enum's eight, so that an IPv4 entry of
/// the index is 8 bytes plus the table's control byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Slot(u32);

/// Positions must fit in 30 bits; a billion objects is far beyond any cluster, and [`to_u32`]
/// already saturates.
pub(super) const SLOT_INDEX: u32 = (1 << 30) - 1;

pub(super) enum SlotKind {
    Pod,
    Node,
    Service,
}

impl Slot {
    pub(super) fn new(kind: SlotKind, index: u32) -> Slot {
        let tag = match kind {
            SlotKind::Pod => 0,
            SlotKind::Node => 1,
            SlotKind::Service => 2,
        };
        Slot(tag << 30 | index.min(SLOT_INDEX))
    }

    pub(super) fn kind(self) -> SlotKind {
        match self.0 >> 30 {
            0 => SlotKind::Pod,
            1 => SlotKind::Node,
            _ => SlotKind::Service,
        }
    }

    pub(super) fn index(self) -> usize {
        (self.0 & SLOT_INDEX) as usize
    }
}

/// IP → slot, IPv4 and IPv6 apart, so that the (much larger) IPv4 table has 8-byte entries
/// instead of the 28 bytes an `IpAddr` key and an enum slot take. Keys are canonical.
#[derive(Debug, Clone, Default)]
pub(super) struct IpIndex {
    v4: HashMap<Ipv4Addr, Slot>,
    v6: HashMap<Ipv6Addr, Slot>,
}

impl IpIndex {
    /// Room for `ips` without growing: growing by doubling would hold the old and the new table
    /// at once, and leave up to twice the buckets needed.
    pub(super) fn reserve<'a>(&mut self, ips: impl Iterator<Item = &'a IpAddr>) {
        let (mut v4, mut v6) = (0, 0);
        for ip in ips {
            match ip {
                IpAddr::V4(_) => v4 += 1,
                IpAddr::V6(_) => v6 += 1,
            }
        }
        self.v4.reserve(v4);
        self.v6.reserve(v6);
    }

    /// Points `ip` at `slot`, replacing what it pointed at.
    pub(super) fn insert(&mut self, ip: IpAddr, slot: Slot) {
        match ip {
            IpAddr::V4(v4) => self.v4.insert(v4, slot),
            IpAddr::V6(v6) => self.v6.insert(v6, slot),
        };
    }

    pub(super) fn get(&self, ip: IpAddr) -> Option<Slot> {
        match ip {
            IpAddr::V4(v4) => self.v4.get(&v4).copied(),
            IpAddr::V6(v6) => self.v6.get(&v6).copied(),
        }
    }
}

impl Topology {
    /// Indexes parsed objects. Fails on a node name or pod uid used twice; the error's
    /// [`ObjectRef::index`](super::ObjectRef::index) is the position in `nodes` or `pods`.
    pub fn from_parts(
        nodes: Vec<Arc<NodeInfo>>,
        pods: Vec<Arc<PodEntry>>,
        services: Vec<ServiceInfo>,
    ) -> Result<Topology, TopologyError> {
        let mut topo = Topology {
            node_by_name: HashMap::with_capacity(nodes.len()),
            pod_by_uid: HashSet::with_capacity(pods.len()),
            ..Topology::default()
        };
        for (index, info) in nodes.iter().enumerate() {
            if let Some(&earlier) = topo.node_by_name.get(&info.name) {
                return Err(TopologyError::Duplicate {
                    object: parsed_ref("Node", None, &info.name, index),
                    field: "metadata.name".into(),
                    value: info.name.to_string(),
                    other: parsed_ref("Node", None, &info.name, earlier as usize),
                });
            }
            topo.node_by_name.insert(info.name.clone(), to_u32(index));
        }
        for (index, entry) in pods.iter().enumerate() {
            let info = &entry.info;
            if let Some(other) = topo.pod_by_uid.get(&*info.uid) {
                // Only on this error path is the earlier pod's position needed.
                let earlier = pods
                    .iter()
                    .position(|p| Arc::ptr_eq(p, &other.0))
                    .unwrap_or(index);
                let other = &other.0.info;
                return Err(TopologyError::Duplicate {
                    object: parsed_ref("Pod", Some(&info.namespace), &info.name, index),
                    field: "metadata.uid".into(),
                    value: info.uid.to_string(),
                    other: parsed_ref("Pod", Some(&other.namespace), &other.name, earlier),
                });
            }
            topo.pod_by_uid.insert(PodByUid(entry.clone()));
        }
        topo.nodes = nodes;
        topo.pods = pods;
        topo.services = services;
        topo.build_index();
        Ok(topo)
    }

    /// Fills the IP index, lowest priority first: Services, then pods (newest wins), then nodes.
    fn build_index(&mut self) {
        let by_ip = &mut self.by_ip;
        by_ip.reserve(
            self.services
                .iter()
                .flat_map(|s| s.cluster_ips.iter())
                .chain(self.pods.iter().flat_map(|p| p.info.ips.iter()))
                .chain(self.pods.iter().flat_map(|p| p.node_ips.iter()))
                .chain(self.nodes.iter().flat_map(|n| n.addresses.iter())),
        );
        for (id, service) in self.services.iter().enumerate() {
            for ip in &service.cluster_ips {
                by_ip.insert(*ip, Slot::new(SlotKind::Service, to_u32(id)));
            }
        }
        for (id, entry) in self.pods.iter().enumerate() {
            if !entry.live {
                continue;
            }
            for ip in entry.info.ips.iter() {
                let newer = match by_ip.get(*ip) {
                    Some(slot) if matches!(slot.kind(), SlotKind::Pod) => {
                        // `>=`: on equal (or both missing) timestamps the later object wins, so
                        // that the result does not depend on hash order.
                        entry.created >= self.pods[slot.index()].created
                    }
                    _ => true,
                };
                if newer {
                    by_ip.insert(*ip, Slot::new(SlotKind::Pod, to_u32(id)));
                }
            }
        }
        // hostNetwork pods' IPs are their node's. Indexed before the node's own addresses only
        // so that those, being authoritative, are written last.
        for entry in &self.pods {
            if !entry.live {
                continue;
            }
            let Some(&node_id) = entry
                .info
                .node_name
                .as_ref()
                .and_then(|n| self.node_by_name.get(n))
            else {
                continue;
            };
            for ip in entry.node_ips.iter() {
                by_ip.insert(*ip, Slot::new(SlotKind::Node, node_id));
            }
        }
        for (id, node) in self.nodes.iter().enumerate() {
            for ip in &node.addresses {
                by_ip.insert(*ip, Slot::new(SlotKind::Node, to_u32(id)));
            }
        }
    }
}

/// Object counts stay far below `u32::MAX`; saturate rather than panic if they ever did not.
pub(super) fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
