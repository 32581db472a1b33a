//! Allocation: bytes per pod, direction, class and service over a window, priced and summed by
//! namespace, workload, pod, node or a pod label.
//!
//! Internet egress is priced for the whole cluster first, then shared out: its tiers depend on
//! the month's total volume, not on any one pod's. For each month segment of the window the
//! engine takes the cluster's internet egress before the segment (month to date) and during it,
//! prices the difference on the tier curve, and gives each pod its share by bytes.

use std::collections::BTreeMap;

use netcost_core::class::{Direction, TrafficClass};
use serde::Serialize;

use crate::pricing::{PriceSheet, Transfer};
use crate::window::Segment;

/// Whether the remote end of a counter with the `service` label `service` runs an agent, as
/// far as the counters tell: a service tag (a cloud provider's range or a `services` entry of the
/// classification config) marks an end outside the cluster; an untagged end is taken to be a pod
/// or node of the cluster. The counters do not say more: an untagged address outside the
/// cluster (say a database placed only by `direct-classification`) is priced as if its side
/// were counted, and gets its far side once it has a `services` entry.
pub fn remote_has_agent(service: Option<&str>) -> bool {
    service.is_none()
}

/// Who a pod is, as far as allocation needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodIdentity {
    /// Namespace (empty for the node's own traffic).
    pub namespace: String,
    /// Pod name (`node/<name>` for the node's own traffic).
    pub pod: String,
    /// The node it ran on, if known.
    pub node: Option<String>,
    /// The region of that node, if known: the source region of its cross-region egress.
    pub region: Option<String>,
    /// Owning workload as `(kind, name)`, if known.
    pub workload: Option<(String, String)>,
    /// Pod labels, for aggregation by label.
    pub labels: BTreeMap<String, String>,
}

/// Bytes one pod moved in one direction and class, to one service, during one month segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// The pod.
    pub pod: PodIdentity,
    /// Sent or received.
    pub direction: Direction,
    /// Billing class of the remote end.
    pub class: TrafficClass,
    /// Cloud or user service of the remote end.
    pub service: Option<String>,
    /// Region of the remote end, if the counters say: with the pod's region, it picks a
    /// region pair's price for cross-region egress.
    pub remote_region: Option<String>,
    /// True when the remote end has an agent that counts its own side (a pod or node of the
    /// cluster); false for an end outside the cluster, whose side is priced with the pod's
    /// (see [`remote_has_agent`]).
    pub remote_has_agent: bool,
    /// True when the bytes went through a NAT gateway (the counters' `nat_gateway="true"`):
    /// the gateway's processing price applies on top of the transfer.
    pub nat_gateway: bool,
    /// Bytes.
    pub bytes: u64,
}

/// The usage of one month segment, with the cluster's internet egress before it in that month.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SegmentUsage {
    /// Internet egress bytes of the whole cluster from the month's start to the segment's start.
    pub internet_egress_before: u64,
    /// What each pod did during the segment.
    pub usages: Vec<Usage>,
    /// The whole cluster's internet egress during the segment, when `usages` holds only part
    /// of the cluster (a filtered request): the tiers price the whole cluster's volume, and
    /// the part pays its share. `None`: `usages` is the whole cluster.
    pub cluster_internet_egress: Option<u64>,
    /// The segment these figures are of: where it lies in its month says how much of the rest
    /// of the account's internet egress ([`PriceSheet::account_other_internet_per_month`])
    /// came before and during it. `None` counts none of it.
    pub segment: Option<Segment>,
}

impl SegmentUsage {
    /// The internet egress bytes of the cluster during the segment.
    pub fn cluster_internet_egress(&self) -> u64 {
        self.cluster_internet_egress.unwrap_or_else(|| {
            self.usages
                .iter()
                .filter(|u| u.class == TrafficClass::Internet && u.direction == Direction::Egress)
                .map(|u| u.bytes)
                .sum()
        })
    }

    /// The account's internet egress (units) from the month's start to the segment's start
    /// and during the segment: the cluster's, plus the rest of the account's, accrued evenly.
    pub fn account_internet_egress(&self, sheet: &PriceSheet) -> (f64, f64) {
        let (other_before, other_during) = self
            .segment
            .map(|s| {
                let per_second =
                    sheet.account_other_internet_per_month / s.month_seconds().max(1) as f64;
                let before = (s.start.as_second() - s.month_start.as_second()) as f64;
                let during = (s.end.as_second() - s.start.as_second()) as f64;
                (per_second * before, per_second * during)
            })
            .unwrap_or((0.0, 0.0));
        (
            sheet.unit.of_bytes(self.internet_egress_before) + other_before,
            sheet.unit.of_bytes(self.cluster_internet_egress()) + other_during,
        )
    }
}

/// What to sum by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Aggregate {
    /// `namespace`.
    Namespace,
    /// `workload`: controller kind and name, within the namespace.
    Workload,
    /// `pod`, within the namespace.
    Pod,
    /// `node`.
    Node,
    /// `label:<key>`: a pod label's value.
    Label(String),
}

impl Aggregate {
    /// Parses `namespace`, `workload`, `pod`, `node` or `label:<key>`.
    pub fn parse(text: &str) -> Result<Aggregate, AggregateError> {
        match text {
            "namespace" => Ok(Aggregate::Namespace),
            "workload" => Ok(Aggregate::Workload),
            "pod" => Ok(Aggregate::Pod),
            "node" => Ok(Aggregate::Node),
            _ => match text.strip_prefix("label:") {
                Some(key) if !key.is_empty() => Ok(Aggregate::Label(key.to_owned())),
                _ => Err(AggregateError(text.to_owned())),
            },
        }
    }

    fn key_of(&self, pod: &PodIdentity) -> String {
        match self {
            Aggregate::Namespace => or_unallocated(&pod.namespace),
            Aggregate::Pod => format!("{}/{}", pod.namespace, pod.pod),
            Aggregate::Node => pod.node.clone().unwrap_or_else(|| UNALLOCATED.to_owned()),
            Aggregate::Workload => match &pod.workload {
                Some((kind, name)) => format!("{}/{}/{}", pod.namespace, kind, name),
                None => format!("{}/Pod/{}", pod.namespace, pod.pod),
            },
            Aggregate::Label(key) => pod
                .labels
                .get(key)
                .map(|v| format!("{key}={v}"))
                .unwrap_or_else(|| UNALLOCATED.to_owned()),
        }
    }
}

impl std::fmt::Display for Aggregate {
    /// The text [`Aggregate::parse`] reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Aggregate::Namespace => f.write_str("namespace"),
            Aggregate::Workload => f.write_str("workload"),
            Aggregate::Pod => f.write_str("pod"),
            Aggregate::Node => f.write_str("node"),
            Aggregate::Label(key) => write!(f, "label:{key}"),
        }
    }
}

/// An aggregate that is none of those [`Aggregate::parse`] reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown aggregate {0:?}: use namespace, workload, pod, node or label:<key>")]
pub struct AggregateError(pub String);

/// The name of the bucket for bytes that lack the aggregated property.
pub const UNALLOCATED: &str = "__unallocated__";

fn or_unallocated(s: &str) -> String {
    if s.is_empty() {
        UNALLOCATED.to_owned()
    } else {
        s.to_owned()
    }
}

/// Bytes and cost of one class.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct ClassCost {
    /// Bytes sent.
    pub egress_bytes: u64,
    /// Bytes received.
    pub ingress_bytes: u64,
    /// Cost of both directions, in the sheet's currency (USD).
    pub cost: f64,
}

impl ClassCost {
    fn add(&mut self, other: &ClassCost) {
        self.egress_bytes += other.egress_bytes;
        self.ingress_bytes += other.ingress_bytes;
        self.cost += other.cost;
    }
}

/// One row of an allocation.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Allocation {
    /// The aggregate's value (a namespace, `ns/Kind/name`, `ns/pod`, a node, `key=value`).
    pub name: String,
    /// In-zone traffic (free on every provider).
    pub in_zone: ClassCost,
    /// Cross-zone traffic.
    pub cross_zone: ClassCost,
    /// Cross-region traffic.
    pub cross_region: ClassCost,
    /// Internet traffic.
    pub internet: ClassCost,
    /// The part of the traffic above that went through a NAT gateway, and the gateway's
    /// processing charge on it. The charge is in the class costs (and the total) already; this
    /// says how much of them it is, as OpenCost's `networkNatGateway{Egress,Ingress}Cost` do.
    pub nat_gateway: ClassCost,
    /// Bytes and cost per cloud or user service.
    pub services: BTreeMap<String, ClassCost>,
    /// Total cost.
    pub total_cost: f64,
    /// Share of the window's total cost, 0 to 1.
    pub share: f64,
    /// Cost projected to a 730-hour month at this window's rate.
    pub monthly_rate: f64,
}

impl Allocation {
    fn class_mut(&mut self, class: TrafficClass) -> &mut ClassCost {
        match class {
            TrafficClass::InZone => &mut self.in_zone,
            TrafficClass::CrossZone => &mut self.cross_zone,
            TrafficClass::CrossRegion => &mut self.cross_region,
            TrafficClass::Internet => &mut self.internet,
        }
    }

    /// Bytes in both directions and every class.
    pub fn total_bytes(&self) -> u64 {
        [
            self.in_zone,
            self.cross_zone,
            self.cross_region,
            self.internet,
        ]
        .iter()
        .map(|c| c.egress_bytes + c.ingress_bytes)
        .sum()
    }
}

/// Hours in the month used for projections (365 × 24 / 12), as cloud price pages use.
pub const HOURS_PER_MONTH: f64 = 730.0;

/// Prices `segments` with `sheet` and sums by `aggregate`. `window_seconds` scales the monthly
/// projection. Rows are sorted by cost, highest first, then by name; the last element returned
/// is the total row, named `__total__`.
pub fn allocate(
    segments: &[SegmentUsage],
    sheet: &PriceSheet,
    aggregate: &Aggregate,
    window_seconds: i64,
) -> (Vec<Allocation>, Allocation) {
    let mut rows: BTreeMap<String, Allocation> = BTreeMap::new();
    for segment in segments {
        let internet_cost_per_byte = internet_cost_per_byte(segment, sheet);
        for usage in &segment.usages {
            let nat_cost = nat_gateway_cost(usage, sheet);
            let cost = usage_cost(usage, sheet, internet_cost_per_byte) + nat_cost;
            let class_cost = match usage.direction {
                Direction::Egress => ClassCost {
                    egress_bytes: usage.bytes,
                    ingress_bytes: 0,
                    cost,
                },
                Direction::Ingress => ClassCost {
                    egress_bytes: 0,
                    ingress_bytes: usage.bytes,
                    cost,
                },
            };
            let name = aggregate.key_of(&usage.pod);
            let row = rows.entry(name.clone()).or_insert_with(|| Allocation {
                name,
                ..Allocation::default()
            });
            row.class_mut(usage.class).add(&class_cost);
            if usage.nat_gateway {
                row.nat_gateway.add(&ClassCost {
                    cost: nat_cost,
                    ..class_cost
                });
            }
            if let Some(service) = &usage.service {
                row.services
                    .entry(service.clone())
                    .or_default()
                    .add(&class_cost);
            }
            row.total_cost += cost;
        }
    }
    let mut total = Allocation {
        name: "__total__".into(),
        ..Allocation::default()
    };
    for row in rows.values() {
        for class in TrafficClass::ALL {
            let c = match class {
                TrafficClass::InZone => row.in_zone,
                TrafficClass::CrossZone => row.cross_zone,
                TrafficClass::CrossRegion => row.cross_region,
                TrafficClass::Internet => row.internet,
            };
            total.class_mut(class).add(&c);
        }
        for (service, c) in &row.services {
            total.services.entry(service.clone()).or_default().add(c);
        }
        total.nat_gateway.add(&row.nat_gateway);
        total.total_cost += row.total_cost;
    }
    let hours = (window_seconds as f64 / 3_600.0).max(f64::MIN_POSITIVE);
    let mut rows: Vec<Allocation> = rows.into_values().collect();
    let grand_total = total.total_cost;
    for row in rows.iter_mut().chain(std::iter::once(&mut total)) {
        row.share = if grand_total > 0.0 {
            row.total_cost / grand_total
        } else {
            0.0
        };
        row.monthly_rate = row.total_cost / hours * HOURS_PER_MONTH;
    }
    rows.sort_by(|a, b| {
        b.total_cost
            .total_cmp(&a.total_cost)
            .then_with(|| a.name.cmp(&b.name))
    });
    (rows, total)
}

/// The segment's internet egress cost per byte: the tier curve priced over the account's
/// volume in the segment (the cluster's, and the rest of the account's if the sheet has it),
/// from where the month stood before it. The account's cost is shared by volume, so each byte
/// of the segment pays the same, the cluster's and the rest's alike.
fn internet_cost_per_byte(segment: &SegmentUsage, sheet: &PriceSheet) -> f64 {
    let (before, during) = segment.account_internet_egress(sheet);
    if during <= 0.0 || segment.cluster_internet_egress() == 0 {
        return 0.0;
    }
    let per_unit = sheet.internet_egress_cost(before, before + during) / during;
    per_unit / sheet.unit.bytes()
}

/// The NAT gateway's processing charge on `usage`: every byte through it, either way.
fn nat_gateway_cost(usage: &Usage, sheet: &PriceSheet) -> f64 {
    match sheet.nat_gateway {
        Some(price) if usage.nat_gateway => sheet.unit.of_bytes(usage.bytes) * price,
        _ => 0.0,
    }
}

/// The transfer cost of `usage`, without a NAT gateway's processing.
fn usage_cost(usage: &Usage, sheet: &PriceSheet, internet_cost_per_byte: f64) -> f64 {
    let units = sheet.unit.of_bytes(usage.bytes);
    match (usage.class, usage.direction) {
        (TrafficClass::Internet, Direction::Egress) => usage.bytes as f64 * internet_cost_per_byte,
        (TrafficClass::Internet, Direction::Ingress) => units * sheet.internet_ingress,
        (class, direction) => {
            units
                * sheet.unit_price(&Transfer {
                    class,
                    direction,
                    local_region: usage.pod.region.as_deref(),
                    remote_region: usage.remote_region.as_deref(),
                    service: usage.service.as_deref(),
                    remote_has_agent: usage.remote_has_agent,
                })
        }
    }
}
