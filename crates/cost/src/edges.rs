//! Workload edges that cross zones or regions: what each costs, and what would remove the cost.
//!
//! Input is the growth of the agents' workload pair counters over a window (one row per client
//! workload and zone, server workload and zone, and class). Rows are summed per (client, server,
//! class) into edges; only cross-zone and cross-region edges are priced and kept.
//!
//! Prices: a pair counter holds each byte once, on the side of the agent that counted it (the
//! sender's, or, for an end without an agent, the one end that has one), so a byte is priced
//! for both of its sides with [`PriceSheet::unit_price`], the function allocation prices the
//! pods' counters with: the sender's egress and the receiver's ingress. A cross-zone byte costs
//! the sheet's cross-zone egress plus ingress price (AWS bills both ends, $0.01/GB each); a
//! cross-region byte costs the price from the sender's region to the receiver's (the pair's
//! price where the sheet has one, else the source region's). The regions come from the zones
//! of the two ends and from the region of the agent that counted the bytes, which tells who
//! sent them; a backend that cannot tell leaves them empty, and then the client is taken as
//! the sender. Bytes to and from an end without an agent are priced as sent by the counting
//! end: both directions cost the same, since the far end's region is not known. A provider's
//! range in the region bills only the counting end's side ([`crate::pricing::is_provider_range`]),
//! and the counter does not split what it sent from what it received: the edge is priced at
//! the mean of the two, exact where egress and ingress cost the same (AWS, Azure).
//!
//! Recommendations, from the zones every workload was seen in (pairs of any class) and the
//! zones its callers sit in:
//! - **topology-aware routing**, when the server's callers sit in two or more zones and the
//!   server has pods in each of them: the Service can keep traffic in the caller's zone
//!   (`service.kubernetes.io/topology-mode: Auto`, or `trafficDistribution: PreferClose` on
//!   Kubernetes 1.31+), which saves up to the edge's whole cost;
//! - **co-location**, when the server has no pods in some of its callers' zones (a single
//!   replica, a StatefulSet pinned to one zone, or another region): move the client next to it
//!   (pod affinity) or run server replicas in those zones; saves up to the edge's whole cost.
//!
//! Savings are upper bounds: routing hints fall back to any zone when a zone's endpoints are
//! overloaded, and a replica costs compute. Edges with a node, an external end or `__other__`
//! get no recommendation.

use std::collections::{BTreeMap, BTreeSet};

use netcost_core::class::{Direction, TrafficClass};
use serde::Serialize;

use crate::allocate::HOURS_PER_MONTH;
use crate::pricing::{PriceSheet, Transfer};

/// A workload as a pair counter names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub struct Workload {
    /// Namespace; empty for nodes and external ends.
    pub namespace: String,
    /// `Deployment`, `StatefulSet`, …, `Pod`, `Node` or `External`.
    pub kind: String,
    /// Name.
    pub name: String,
}

impl Workload {
    /// True for a workload of pods (not the nodes, an external end or `__other__`).
    pub fn is_pods(&self) -> bool {
        !matches!(self.kind.as_str(), "Node" | "External" | "__other__")
    }

    /// True unless it is an end outside the cluster, which no agent runs on.
    pub fn has_agent(&self) -> bool {
        self.kind != "External"
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}", self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// Bytes of one pair counter over a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairUsage {
    /// The workload that opened the flows.
    pub client: Workload,
    /// Its zone (empty if unknown).
    pub client_zone: String,
    /// The workload that answered.
    pub server: Workload,
    /// Its zone (empty if unknown).
    pub server_zone: String,
    /// Billing class.
    pub class: TrafficClass,
    /// Bytes, both directions.
    pub bytes: u64,
    /// The client's region, if known (from its zone).
    pub client_region: Option<String>,
    /// The server's region, if known.
    pub server_region: Option<String>,
    /// The region of the node whose agent counted these bytes, if known: an agent counts what
    /// its own end sent, so this tells which end sent them.
    pub counted_in_region: Option<String>,
}

impl PairUsage {
    /// True when the client's agent counted these bytes: the client is the only end with an
    /// agent, or the counting agent's region is the client's (or not known to be the server's).
    fn counted_by_client(&self) -> bool {
        match (self.client.has_agent(), self.server.has_agent()) {
            (true, false) => true,
            (false, true) => false,
            _ => {
                let counted = self.counted_in_region.as_deref();
                !(counted.is_some()
                    && counted == self.server_region.as_deref()
                    && counted != self.client_region.as_deref())
            }
        }
    }
}

/// What would remove an edge's cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// `topology-aware-routing` or `co-location`.
    pub kind: &'static str,
    /// What to do, in a sentence or two.
    pub text: String,
    /// Estimated saving per month (USD), an upper bound.
    pub monthly_saving: f64,
}

/// One client → server edge of one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Edge {
    /// The client workload.
    pub client: Workload,
    /// The server workload.
    pub server: Workload,
    /// `cross-zone` or `cross-region` (also `in-zone` or `internet` from [`priced_edges`]).
    pub class: &'static str,
    /// Bytes over the window, both directions.
    pub bytes: u64,
    /// Cost over the window (USD).
    pub cost: f64,
    /// The cost projected to a month of 730 hours at the window's rate.
    pub monthly_cost: f64,
    /// Zone pairs the bytes crossed, `client zone → server zone`, heaviest first.
    pub zones: Vec<String>,
    /// What to do about it, where a rule applies.
    pub recommendation: Option<Recommendation>,
}

/// Prices pair usage and returns the cross-zone and cross-region edges, costliest first, with
/// recommendations. `window_seconds` scales the monthly projection.
pub fn cross_zone_edges(
    usages: &[PairUsage],
    sheet: &PriceSheet,
    window_seconds: i64,
) -> Vec<Edge> {
    priced_edges(usages, sheet, window_seconds, &|u| {
        matches!(u.class, TrafficClass::CrossZone | TrafficClass::CrossRegion)
    })
}

/// Prices the pair usage that `keep` accepts into edges (one per client, server and class),
/// costliest first. The recommendations look at every usage, kept or not: a server's zones and
/// its callers' zones come from its in-zone pairs too.
pub fn priced_edges(
    usages: &[PairUsage],
    sheet: &PriceSheet,
    window_seconds: i64,
    keep: &dyn Fn(&PairUsage) -> bool,
) -> Vec<Edge> {
    let mut zones_of: BTreeMap<&Workload, BTreeSet<&str>> = BTreeMap::new();
    let mut caller_zones: BTreeMap<&Workload, BTreeSet<&str>> = BTreeMap::new();
    for u in usages {
        for (w, z) in [(&u.client, &u.client_zone), (&u.server, &u.server_zone)] {
            if !z.is_empty() {
                zones_of.entry(w).or_default().insert(z);
            }
        }
        if !u.client_zone.is_empty() && u.client.is_pods() {
            caller_zones
                .entry(&u.server)
                .or_default()
                .insert(&u.client_zone);
        }
    }

    type EdgeKey<'a> = (&'a Workload, &'a Workload, TrafficClass);
    let mut edges: BTreeMap<EdgeKey<'_>, (u64, f64, BTreeMap<String, u64>)> = BTreeMap::new();
    for u in usages.iter().filter(|u| u.bytes > 0 && keep(u)) {
        let (bytes, cost, zones) = edges.entry((&u.client, &u.server, u.class)).or_default();
        *bytes += u.bytes;
        *cost += pair_cost(sheet, u);
        *zones
            .entry(format!(
                "{} → {}",
                zone_of(&u.client, &u.client_zone),
                zone_of(&u.server, &u.server_zone)
            ))
            .or_default() += u.bytes;
    }

    let months = window_seconds.max(1) as f64 / 3600.0 / HOURS_PER_MONTH;
    let mut out: Vec<Edge> = edges
        .into_iter()
        .map(|((client, server, class), (bytes, cost, zones))| {
            let monthly_cost = cost / months;
            let mut zones: Vec<(String, u64)> = zones.into_iter().collect();
            zones.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let recommendation = recommend(
                client,
                server,
                class,
                monthly_cost,
                zones_of.get(server),
                caller_zones.get(server),
            );
            Edge {
                client: client.clone(),
                server: server.clone(),
                class: class.as_str(),
                bytes,
                cost,
                monthly_cost,
                zones: zones.into_iter().map(|(z, _)| z).collect(),
                recommendation,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.cost
            .total_cmp(&a.cost)
            .then_with(|| b.bytes.cmp(&a.bytes))
            .then_with(|| (&a.client, &a.server).cmp(&(&b.client, &b.server)))
    });
    out
}

/// The cost of one pair counter's bytes: for each byte, its sender's side and its receiver's
/// (see the module docs for which end is taken as the sender).
pub fn pair_cost(sheet: &PriceSheet, usage: &PairUsage) -> f64 {
    let (sender, receiver) = if usage.counted_by_client() {
        (
            usage.client_region.as_deref(),
            usage.server_region.as_deref(),
        )
    } else {
        (
            usage.server_region.as_deref(),
            usage.client_region.as_deref(),
        )
    };
    // The counting agent runs on the sender's node.
    let sender = sender.or(usage.counted_in_region.as_deref());
    // An end outside the cluster is named by its service (or `internet`, `private`).
    let service = [&usage.client, &usage.server]
        .into_iter()
        .find(|w| !w.has_agent())
        .map(|w| w.name.as_str());
    let side = |direction, local_region, remote_region| {
        sheet.unit_price(&Transfer {
            class: usage.class,
            direction,
            local_region,
            remote_region,
            service,
            // Each side is priced here on its own, whether or not its end has an agent.
            remote_has_agent: true,
        })
    };
    let units = sheet.unit.of_bytes(usage.bytes);
    let external = !(usage.client.has_agent() && usage.server.has_agent());
    if external && !sheet.far_side_billed(usage.class, service) {
        // Only the counting end's side is billed, and the counter holds what it sent and what
        // it received in one number: the mean of its two sides, exact where they cost the same
        // (AWS, Azure; GCP bills the sender only).
        return units
            * (side(Direction::Egress, sender, receiver)
                + side(Direction::Ingress, sender, receiver))
            / 2.0;
    }
    units * (side(Direction::Egress, sender, receiver) + side(Direction::Ingress, receiver, sender))
}

/// A pair end's zone for display: `outside` for an external end, `?` when unknown.
fn zone_of<'a>(workload: &Workload, zone: &'a str) -> &'a str {
    match (workload.kind.as_str(), zone) {
        ("External", _) => "outside",
        (_, "") => "?",
        (_, zone) => zone,
    }
}

fn recommend(
    client: &Workload,
    server: &Workload,
    class: TrafficClass,
    monthly_cost: f64,
    server_zones: Option<&BTreeSet<&str>>,
    caller_zones: Option<&BTreeSet<&str>>,
) -> Option<Recommendation> {
    if !client.is_pods() || !server.is_pods() || monthly_cost <= 0.0 {
        return None;
    }
    let server_zones = server_zones?;
    let callers = caller_zones?;
    let list = |zones: &BTreeSet<&str>| zones.iter().copied().collect::<Vec<_>>().join(", ");
    let missing: BTreeSet<&str> = callers.difference(server_zones).copied().collect();
    if class == TrafficClass::CrossZone && callers.len() >= 2 && missing.is_empty() {
        return Some(Recommendation {
            kind: "topology-aware-routing",
            text: format!(
                "Callers of {server} run in zones {} and {server} has pods in each: turn on \
                 topology-aware routing on its Service (annotation \
                 service.kubernetes.io/topology-mode: Auto, or trafficDistribution: PreferClose \
                 on Kubernetes 1.31+) so {client} is served in its own zone.",
                list(callers)
            ),
            monthly_saving: monthly_cost,
        });
    }
    let text = if missing.is_empty() {
        format!(
            "{client} reaches {server} in another {}: co-locate them (pod affinity for {client} \
             towards {server}'s zone {}).",
            if class == TrafficClass::CrossRegion {
                "region"
            } else {
                "zone"
            },
            list(server_zones)
        )
    } else {
        format!(
            "{server} runs only in {} but is called from {}: run {server} replicas in {} \
             (topology spread constraints), or co-locate {client} with it (pod affinity).",
            list(server_zones),
            list(callers),
            list(&missing)
        )
    };
    Some(Recommendation {
        kind: "co-location",
        text,
        monthly_saving: monthly_cost,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pairs::pair as usage;

    const DAY: i64 = 86_400;

    #[test]
    fn cross_zone_bytes_cost_both_ends_on_aws_and_project_to_a_month() {
        let edges = cross_zone_edges(
            &[usage("web", "a", "db", "b", TrafficClass::CrossZone, 100)],
            &PriceSheet::aws(),
            DAY,
        );
        assert_eq!(edges.len(), 1);
        // 100 GB × ($0.01 out + $0.01 in) = $2 per day; 730 h = 30.4167 days.
        assert!((edges[0].cost - 2.0).abs() < 1e-9, "{}", edges[0].cost);
        assert!((edges[0].monthly_cost - 2.0 * 730.0 / 24.0).abs() < 1e-9);
        assert_eq!(edges[0].zones, vec!["a → b".to_owned()]);
    }

    #[test]
    fn a_server_with_pods_in_every_caller_zone_gets_topology_aware_routing() {
        let edges = cross_zone_edges(
            &[
                usage("web", "a", "api", "a", TrafficClass::InZone, 50),
                usage("web", "a", "api", "b", TrafficClass::CrossZone, 30),
                usage("web", "b", "api", "a", TrafficClass::CrossZone, 20),
                usage("web", "b", "api", "b", TrafficClass::InZone, 50),
            ],
            &PriceSheet::aws(),
            DAY,
        );
        assert_eq!(edges.len(), 1, "{edges:?}");
        let r = edges[0].recommendation.as_ref().map(|r| r.kind);
        assert_eq!(r, Some("topology-aware-routing"));
        assert_eq!(edges[0].bytes, 50 << 30);
    }

    #[test]
    fn a_server_in_one_zone_called_from_others_gets_co_location_with_the_missing_zones() {
        let edges = cross_zone_edges(
            &[
                usage("web", "a", "db", "c", TrafficClass::CrossZone, 10),
                usage("web", "b", "db", "c", TrafficClass::CrossZone, 10),
                usage("batch", "c", "db", "c", TrafficClass::InZone, 1),
            ],
            &PriceSheet::aws(),
            DAY,
        );
        let r = edges[0]
            .recommendation
            .as_ref()
            .unwrap_or_else(|| panic!("{edges:?}"));
        assert_eq!(r.kind, "co-location");
        assert!(r.text.contains("replicas in a, b"), "{}", r.text);
        assert!((r.monthly_saving - edges[0].monthly_cost).abs() < 1e-12);
    }

    #[test]
    fn external_ends_and_in_zone_traffic_are_left_out_or_unadvised() {
        let mut internet = usage("web", "a", "db", "", TrafficClass::CrossZone, 10);
        internet.server = Workload {
            namespace: String::new(),
            kind: "External".into(),
            name: "aws-s3".into(),
        };
        let edges = cross_zone_edges(
            &[
                internet,
                usage("web", "a", "db", "a", TrafficClass::InZone, 10),
            ],
            &PriceSheet::aws(),
            DAY,
        );
        assert_eq!(edges.len(), 1);
        assert_eq!(edges[0].recommendation, None);
        assert_eq!(edges[0].server.to_string(), "aws-s3");
    }
}
