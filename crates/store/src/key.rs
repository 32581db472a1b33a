//! What a stored series is: a pod's (or node's) byte counter per direction, class and service
//! ([`SeriesKey`]), or an agent's workload pair counter ([`PairSeriesKey`]). Keys are written to
//! the log as JSON, so their field names, and the text of directions (`egress`, `ingress`) and
//! classes (`in-zone`, …), are part of the file format. A direction or class this version does
//! not know is an error when the log is read, not a series silently left out.

use netcost_core::aggregate::ExportedSeries;
use netcost_core::class::{Direction, TrafficClass};
use netcost_core::pairs::ExportedPair;
use netcost_core::topology::Topology;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The identity of one stored counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// Sent or received; `egress` or `ingress` in the log.
    #[serde(with = "direction_text")]
    pub direction: Direction,
    /// The billing class; `in-zone`, `cross-zone`, `cross-region` or `internet` in the log.
    #[serde(with = "class_text")]
    pub class: TrafficClass,
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
            direction: series.direction,
            class: series.class,
            service: series.service.as_deref().unwrap_or_default().to_owned(),
            remote_region: series
                .remote_region
                .as_deref()
                .unwrap_or_default()
                .to_owned(),
            nat_gateway: series.nat_gateway,
        }
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
    /// The billing class; `in-zone`, `cross-zone`, `cross-region` or `internet` in the log.
    #[serde(with = "class_text")]
    pub class: TrafficClass,
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
            class: pair.key.class,
        }
    }
}

/// Any stored series. Written untagged, so logs written before pairs existed read as
/// [`SeriesKey`]s; read by its fields (a pair key has `pair_node`), so that a bad value in one
/// is reported as what it is, not as "matches no variant".
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum StoredKey {
    /// A pod's or node's byte counter.
    Series(SeriesKey),
    /// A workload pair counter.
    Pair(PairSeriesKey),
}

impl<'de> Deserialize<'de> for StoredKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let value = serde_json::Value::deserialize(deserializer)?;
        if value.get("pair_node").is_some() {
            PairSeriesKey::deserialize(value)
                .map(StoredKey::Pair)
                .map_err(|e| D::Error::custom(format!("pair key: {e}")))
        } else {
            SeriesKey::deserialize(value)
                .map(StoredKey::Series)
                .map_err(|e| D::Error::custom(format!("series key: {e}")))
        }
    }
}

/// `egress` and `ingress`, as the log spells directions.
mod direction_text {
    use super::*;

    pub(super) fn serialize<S: Serializer>(d: &Direction, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(d.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Direction, D::Error> {
        let text = String::deserialize(d)?;
        Direction::from_label(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("unknown direction {text:?}: use egress or ingress"))
        })
    }
}

/// Classes by their metric label text (`in-zone`, `cross-zone`, …).
mod class_text {
    use super::*;

    pub(super) fn serialize<S: Serializer>(c: &TrafficClass, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(c.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TrafficClass, D::Error> {
        let text = String::deserialize(d)?;
        TrafficClass::from_label(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown class {text:?}: use in-zone, cross-zone, cross-region or internet"
            ))
        })
    }
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
