//! What a stored series is: a pod's (or node's) byte counter per direction, class and service
//! ([`SeriesKey`]), or an agent's workload pair counter ([`PairSeriesKey`]). Keys are written to
//! the log as JSON, so their field names are part of the file format.

use netcost_core::aggregate::ExportedSeries;
use netcost_core::class::{Direction, TrafficClass};
use netcost_core::pairs::ExportedPair;
use netcost_core::topology::Topology;
use serde::{Deserialize, Serialize};

/// The identity of one stored counter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SeriesKey {
    /// Namespace (empty for node traffic).
    pub namespace: String,
    /// Pod name (`node/<name>` for node traffic).
    pub pod: String,
    /// Node.
    pub node: String,
    /// Region of the node.
    pub region: String,
    /// Owning workload kind and name, if known.
    pub workload: Option<(String, String)>,
    /// `egress` or `ingress`.
    pub direction: String,
    /// `in-zone`, `cross-zone`, `cross-region` or `internet`.
    pub class: String,
    /// Service label, empty for none.
    pub service: String,
    /// The far region of cross-region bytes, empty when not known. Logs written before it
    /// existed read as empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub remote_region: String,
    /// The bytes went through a NAT gateway. Logs written before it existed read as false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nat_gateway: bool,
}

impl SeriesKey {
    /// The key of an agent's exported counter on `node`, with the pod's workload and the node's
    /// region looked up in `topology`.
    pub fn of(series: &ExportedSeries, topology: &Topology, node: &str) -> SeriesKey {
        let region = topology
            .node(node)
            .and_then(|n| n.locality.region.as_deref().map(str::to_owned))
            .unwrap_or_default();
        let (namespace, pod, workload) = match &series.pod {
            Some(p) => {
                let owner = topology
                    .pod_by_uid(&p.uid)
                    .and_then(|info| info.owner.as_ref())
                    .map(|o| (o.kind.to_string(), o.name.to_string()));
                (p.namespace.to_string(), p.name.to_string(), owner)
            }
            None => (String::new(), format!("node/{node}"), None),
        };
        SeriesKey {
            namespace,
            pod,
            node: node.to_owned(),
            region,
            workload,
            direction: match series.direction {
                Direction::Egress => "egress".into(),
                Direction::Ingress => "ingress".into(),
            },
            class: series.class.as_str().into(),
            service: series.service.as_deref().unwrap_or_default().to_owned(),
            remote_region: series
                .remote_region
                .as_deref()
                .unwrap_or_default()
                .to_owned(),
            nat_gateway: series.nat_gateway,
        }
    }

    /// The direction, or `None` for a value this version does not know.
    pub fn direction(&self) -> Option<Direction> {
        match self.direction.as_str() {
            "egress" => Some(Direction::Egress),
            "ingress" => Some(Direction::Ingress),
            _ => None,
        }
    }

    /// The class, or `None` for a value this version does not know.
    pub fn class(&self) -> Option<TrafficClass> {
        TrafficClass::from_label(&self.class)
    }
}

/// The identity of one stored workload pair counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PairSeriesKey {
    /// The node of the agent that counted it.
    pub pair_node: String,
    /// The client workload.
    pub client: Workload,
    /// Its zone.
    pub client_zone: String,
    /// The server workload.
    pub server: Workload,
    /// Its zone.
    pub server_zone: String,
    /// `in-zone`, `cross-zone`, `cross-region` or `internet`.
    pub class: String,
}

impl PairSeriesKey {
    /// The key of an agent's exported pair counter on `node`.
    pub fn of(pair: &ExportedPair, node: &str) -> PairSeriesKey {
        let workload = |p: &netcost_core::pairs::Peer| Workload {
            namespace: p.namespace.to_string(),
            kind: p.kind.to_string(),
            name: p.name.to_string(),
        };
        PairSeriesKey {
            pair_node: node.to_owned(),
            client: workload(&pair.key.client),
            client_zone: pair.key.client.zone.to_string(),
            server: workload(&pair.key.server),
            server_zone: pair.key.server.zone.to_string(),
            class: pair.key.class.as_str().to_owned(),
        }
    }
}

/// Any stored series. Untagged, so logs written before pairs existed read as [`SeriesKey`]s.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StoredKey {
    /// A pod's or node's byte counter.
    Series(SeriesKey),
    /// A workload pair counter.
    Pair(PairSeriesKey),
}

impl From<SeriesKey> for StoredKey {
    fn from(key: SeriesKey) -> Self {
        StoredKey::Series(key)
    }
}

impl From<PairSeriesKey> for StoredKey {
    fn from(key: PairSeriesKey) -> Self {
        StoredKey::Pair(key)
    }
}

/// A workload as a pair counter names it: the same fields, and so the same JSON, as the cost
/// engine's workload, which the query side converts to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Workload {
    /// Namespace; empty for nodes and external ends.
    pub namespace: String,
    /// `Deployment`, `StatefulSet`, …, `Pod`, `Node` or `External`.
    pub kind: String,
    /// Name.
    pub name: String,
}
