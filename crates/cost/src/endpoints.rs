//! VPC endpoint advice: what a workload's traffic to a cloud service pays the NAT gateway, and
//! what it would pay through an endpoint instead.
//!
//! Input is the pods' counters over a window ([`Usage`]): bytes marked `nat_gateway="true"`
//! whose remote end is tagged as a cloud service in the node's own region (in-zone or
//! cross-zone; an endpoint only reaches its own region's service). Per workload and service the
//! window's bytes, both directions, are projected to a month ([`HOURS_PER_MONTH`]) and priced:
//! - **through the NAT gateway**: the sheet's NAT processing price per unit
//!   ([`PriceSheet::nat_gateway`]), both directions;
//! - **gateway endpoint** (AWS S3 and DynamoDB): free. AWS charges nothing for gateway
//!   endpoints, and transfer to S3 and DynamoDB in the same region is free either way
//!   (docs.aws.amazon.com/vpc/latest/privatelink/gateway-endpoints.html, read 2026-12-01);
//! - **service endpoint** (Azure Storage, SQL, Cosmos DB, Key Vault, Event Hubs, Service Bus):
//!   free (learn.microsoft.com/azure/virtual-network/virtual-network-service-endpoints-overview,
//!   read 2026-12-01);
//! - **interface endpoint** (AWS PrivateLink, for the AWS services with their own published
//!   ranges that offer one): the sheet's processing price per unit
//!   ([`PriceSheet::interface_endpoint_processing`]) plus $0.01 per endpoint per zone-hour
//!   ([`INTERFACE_ENDPOINT_PER_ZONE_HOUR`]), one endpoint per service and region in every zone
//!   the cluster has nodes in. That hourly part is shared among the service's workloads in the
//!   region by bytes.
//!
//! The saving is the NAT cost minus the endpoint's cost; advice with no saving is left out and
//! said in a note. It is an estimate: the window's rate is assumed to hold for the month, and
//! the gateway's hourly charge, which other traffic still needs, is not counted as saved.
//!
//! What it does not do: Google Cloud (its published `cloud.json` ranges are customers'
//! addresses, not Google APIs, so no tag says "Private Google Access would carry this"),
//! services reached only through a provider's catch-all range (`aws-amazon`: STS, ECR, SQS and
//! most AWS APIs share it, so no single endpoint can be named), or traffic already going through
//! an endpoint (it does not pass the NAT gateway, so it is not marked).

use std::collections::{BTreeMap, HashMap};

use netcost_core::class::TrafficClass;
use serde::Serialize;

use crate::allocate::{HOURS_PER_MONTH, SegmentUsage, Usage};
use crate::edges::Workload;
use crate::pricing::PriceSheet;

/// AWS interface endpoint price per endpoint and zone-hour, us-east-1
/// (aws.amazon.com/privatelink/pricing, read 2026-12-01).
pub const INTERFACE_ENDPOINT_PER_ZONE_HOUR: f64 = 0.01;

/// Zones assumed for an interface endpoint when the counters do not say which zones the
/// cluster's nodes are in: three, as most production VPCs span.
pub const DEFAULT_ENDPOINT_ZONES: usize = 3;

/// The kind of endpoint that would carry a service's traffic instead of the NAT gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndpointKind {
    /// An AWS gateway endpoint (S3, DynamoDB): free.
    Gateway,
    /// An AWS interface endpoint (PrivateLink): per GB and per zone-hour.
    Interface,
    /// An Azure virtual network service endpoint: free.
    ServiceEndpoint,
}

impl EndpointKind {
    /// The endpoint that serves `service` (a netcost service tag), if one does.
    pub fn for_service(service: &str) -> Option<EndpointKind> {
        match service {
            "aws-s3" | "aws-dynamodb" => Some(EndpointKind::Gateway),
            // AWS services with ranges of their own in ip-ranges.json that offer interface
            // endpoints (docs.aws.amazon.com/vpc/latest/privatelink/aws-services-privatelink-support.html).
            "aws-api-gateway"
            | "aws-codebuild"
            | "aws-ebs"
            | "aws-kinesis-video-streams"
            | "aws-amazon-appflow" => Some(EndpointKind::Interface),
            "azure-storage" | "azure-sql" | "azure-cosmosdb" | "azure-keyvault"
            | "azure-eventhub" | "azure-servicebus" => Some(EndpointKind::ServiceEndpoint),
            _ => None,
        }
    }

    /// `gateway endpoint`, `interface endpoint` or `service endpoint`.
    pub fn label(self) -> &'static str {
        match self {
            EndpointKind::Gateway => "gateway endpoint",
            EndpointKind::Interface => "interface endpoint",
            EndpointKind::ServiceEndpoint => "service endpoint",
        }
    }

    fn describe(self) -> String {
        let article = if self == EndpointKind::Interface {
            "an"
        } else {
            "a"
        };
        format!("{article} {}", self.label())
    }
}

/// What an endpoint would save one workload on its traffic to one service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointAdvice {
    /// The workload's namespace (empty for a node's own traffic).
    pub namespace: String,
    /// The workload.
    pub workload: Workload,
    /// The service tag of the remote end.
    pub service: String,
    /// The region the traffic leaves from (the node's), empty if not known.
    pub region: String,
    /// The endpoint that would carry it.
    pub endpoint: EndpointKind,
    /// Bytes a month through the NAT gateway, both directions, at the window's rate.
    pub monthly_bytes: u64,
    /// What the NAT gateway charges for them a month.
    pub nat_cost_per_month: f64,
    /// What the endpoint would charge for them a month (its share of the hourly charge
    /// included).
    pub endpoint_cost_per_month: f64,
    /// `nat_cost_per_month - endpoint_cost_per_month`.
    pub saving_per_month: f64,
    /// The arithmetic and the change, in a sentence or two.
    pub explanation: String,
}

/// Endpoint advice over a window, costliest saving first, with notes on what was left out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EndpointAdviceSet {
    /// Advice with a saving, largest first.
    pub advice: Vec<EndpointAdvice>,
    /// What the advice does not cover and why.
    pub notes: Vec<String>,
}

/// Advice from `usage` (the month segments of a window of `window_seconds`), priced with
/// `sheet`. `zones_by_region` gives the zones the cluster has nodes in per region, for the
/// hourly charge of interface endpoints; a region it does not list is assumed to have
/// [`DEFAULT_ENDPOINT_ZONES`].
pub fn endpoint_advice(
    usage: &[SegmentUsage],
    sheet: &PriceSheet,
    window_seconds: i64,
    zones_by_region: &HashMap<String, usize>,
) -> EndpointAdviceSet {
    let mut notes = Vec::new();
    let Some(nat_price) = sheet.nat_gateway else {
        notes.push(format!(
            "The {} price sheet has no NAT gateway price, so no endpoint advice: set nat_gateway \
             in a pricing file.",
            sheet.provider
        ));
        return EndpointAdviceSet {
            advice: Vec::new(),
            notes,
        };
    };
    // Bytes per (namespace, workload, service, region), and of all workloads per
    // (service, region) for sharing an interface endpoint's hourly charge.
    let mut by_workload: BTreeMap<(String, Workload, String, String), u64> = BTreeMap::new();
    let mut by_endpoint: HashMap<(String, String), u64> = HashMap::new();
    let mut not_endpoint_services: BTreeMap<String, u64> = BTreeMap::new();
    for u in usage.iter().flat_map(|s| &s.usages) {
        let Some(service) = in_region_nat_service(u) else {
            continue;
        };
        if EndpointKind::for_service(service).is_none() {
            *not_endpoint_services.entry(service.to_owned()).or_default() += u.bytes;
            continue;
        }
        let region = u.pod.region.clone().unwrap_or_default();
        *by_workload
            .entry((
                u.pod.namespace.clone(),
                workload_of(u),
                service.to_owned(),
                region.clone(),
            ))
            .or_default() += u.bytes;
        *by_endpoint.entry((service.to_owned(), region)).or_default() += u.bytes;
    }
    let months = window_seconds.max(1) as f64 / 3_600.0 / HOURS_PER_MONTH;
    let mut unprofitable = Vec::new();
    let mut assumed_zones = false;
    let mut advice = Vec::new();
    for ((namespace, workload, service, region), bytes) in by_workload {
        let Some(kind) = EndpointKind::for_service(&service) else {
            continue;
        };
        let monthly_bytes = (bytes as f64 / months).round() as u64;
        let units = sheet.unit.of_bytes(monthly_bytes);
        let nat_cost = units * nat_price;
        let (endpoint_cost, how) = match kind {
            EndpointKind::Gateway | EndpointKind::ServiceEndpoint => {
                (0.0, format!("{} for {service} is free", kind.describe()))
            }
            EndpointKind::Interface => {
                let zones = zones_by_region.get(&region).copied().unwrap_or_else(|| {
                    assumed_zones = true;
                    DEFAULT_ENDPOINT_ZONES
                });
                let fixed = INTERFACE_ENDPOINT_PER_ZONE_HOUR * HOURS_PER_MONTH * zones as f64;
                let all = by_endpoint
                    .get(&(service.clone(), region.clone()))
                    .copied()
                    .unwrap_or(bytes)
                    .max(1);
                let share = bytes as f64 / all as f64;
                let processing = units * sheet.interface_endpoint_processing;
                (
                    processing + fixed * share,
                    format!(
                        "{} for {service} costs ${:.4}/{unit} (${processing:.2}) plus {:.0}% of \
                         ${fixed:.2} for {zones} zone(s) at ${INTERFACE_ENDPOINT_PER_ZONE_HOUR}/hour",
                        kind.describe(),
                        sheet.interface_endpoint_processing,
                        share * 100.0,
                        unit = sheet.unit.as_str(),
                    ),
                )
            }
        };
        let saving = nat_cost - endpoint_cost;
        let who = if namespace.is_empty() {
            workload.name.clone()
        } else {
            format!("{namespace}/{}", workload.name)
        };
        if saving <= 0.0 {
            unprofitable.push(format!("{who} → {service}"));
            continue;
        }
        let explanation = format!(
            "{who} moves {:.1} {unit} a month to {service} through the NAT gateway, at \
             ${nat_price}/{unit}: ${nat_cost:.2}. {how}: saves ${saving:.2} a month. {change}",
            units,
            unit = sheet.unit.as_str(),
            how = capitalise(&how),
            change = change_for(kind, &service, &region),
        );
        advice.push(EndpointAdvice {
            namespace,
            workload,
            service,
            region,
            endpoint: kind,
            monthly_bytes,
            nat_cost_per_month: nat_cost,
            endpoint_cost_per_month: endpoint_cost,
            saving_per_month: saving,
            explanation,
        });
    }
    advice.sort_by(|a, b| {
        b.saving_per_month
            .total_cmp(&a.saving_per_month)
            .then_with(|| (&a.namespace, &a.workload).cmp(&(&b.namespace, &b.workload)))
    });
    if assumed_zones {
        notes.push(format!(
            "The zones of some regions are not known from the workload pair counters; an \
             interface endpoint's hourly charge assumes {DEFAULT_ENDPOINT_ZONES} zones there."
        ));
    }
    if !unprofitable.is_empty() {
        notes.push(format!(
            "An interface endpoint would cost more than the NAT gateway charges for: {}.",
            unprofitable.join(", ")
        ));
    }
    if !not_endpoint_services.is_empty() {
        let list: Vec<String> = not_endpoint_services
            .iter()
            .map(|(s, b)| {
                format!(
                    "{s} ({:.1} {})",
                    sheet.unit.of_bytes(*b),
                    sheet.unit.as_str()
                )
            })
            .collect();
        notes.push(format!(
            "Traffic through the NAT gateway to services no single endpoint serves, in the \
             window: {}.",
            list.join(", ")
        ));
    }
    EndpointAdviceSet { advice, notes }
}

/// The service tag of a usage that went through the NAT gateway to a service in the node's
/// own region, if it is one.
fn in_region_nat_service(u: &Usage) -> Option<&str> {
    let in_region = matches!(u.class, TrafficClass::InZone | TrafficClass::CrossZone);
    if u.nat_gateway && in_region {
        u.service.as_deref()
    } else {
        None
    }
}

/// The workload a usage's pod belongs to: its controller, the pod itself, or its node.
fn workload_of(u: &Usage) -> Workload {
    let (kind, name) = match &u.pod.workload {
        Some((kind, name)) => (kind.clone(), name.clone()),
        None if u.pod.namespace.is_empty() => ("Node".to_owned(), u.pod.pod.clone()),
        None => ("Pod".to_owned(), u.pod.pod.clone()),
    };
    Workload {
        namespace: u.pod.namespace.clone(),
        kind,
        name,
    }
}

/// What to create, with the provider's name for the endpoint service.
fn change_for(kind: EndpointKind, service: &str, region: &str) -> String {
    let region = if region.is_empty() {
        "<region>"
    } else {
        region
    };
    let aws_name = match service {
        "aws-api-gateway" => "execute-api",
        "aws-kinesis-video-streams" => "kinesisvideo",
        "aws-amazon-appflow" => "appflow",
        other => other.trim_start_matches("aws-"),
    };
    match kind {
        EndpointKind::Gateway => format!(
            "Add a gateway endpoint for com.amazonaws.{region}.{aws_name} to the route tables of \
             the nodes' subnets."
        ),
        EndpointKind::Interface => format!(
            "Create an interface endpoint for com.amazonaws.{region}.{aws_name} with private DNS \
             in the nodes' subnets."
        ),
        EndpointKind::ServiceEndpoint => {
            let name = match service {
                "azure-storage" => "Storage",
                "azure-sql" => "Sql",
                "azure-cosmosdb" => "AzureCosmosDB",
                "azure-keyvault" => "KeyVault",
                "azure-eventhub" => "EventHub",
                _ => "ServiceBus",
            };
            format!("Enable the Microsoft.{name} service endpoint on the nodes' subnets.")
        }
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use netcost_core::class::Direction;

    use super::*;
    use crate::allocate::PodIdentity;

    /// 73 hours: a tenth of a 730-hour month, so monthly figures are ten times the window's.
    const WINDOW: i64 = 73 * 3_600;
    const GIB: u64 = 1 << 30;

    fn usage(
        workload: &str,
        direction: Direction,
        class: TrafficClass,
        service: Option<&str>,
        nat_gateway: bool,
        gib: u64,
    ) -> Usage {
        Usage {
            pod: PodIdentity {
                namespace: "shop".into(),
                pod: format!("{workload}-7d4f9-x2k8q"),
                node: Some("node-a".into()),
                region: Some("us-east-1".into()),
                workload: Some(("Deployment".into(), workload.into())),
                labels: Default::default(),
            },
            direction,
            class,
            service: service.map(str::to_owned),
            remote_region: None,
            remote_has_agent: false,
            nat_gateway,
            bytes: gib * GIB,
        }
    }

    fn window_of(usages: Vec<Usage>) -> Vec<SegmentUsage> {
        vec![SegmentUsage {
            usages,
            ..SegmentUsage::default()
        }]
    }

    #[test]
    fn a_gateway_endpoint_saves_the_whole_nat_charge_on_same_region_s3_traffic() {
        use Direction::{Egress, Ingress};
        use TrafficClass::{CrossRegion, InZone, Internet};
        let usage = window_of(vec![
            usage("catalog", Egress, InZone, Some("aws-s3"), true, 10),
            usage("catalog", Ingress, InZone, Some("aws-s3"), true, 90),
            // Not through the gateway, in another region, or not to an endpoint's service.
            usage("catalog", Ingress, InZone, Some("aws-s3"), false, 500),
            usage("catalog", Ingress, CrossRegion, Some("aws-s3"), true, 500),
            usage("catalog", Egress, Internet, None, true, 500),
            usage("catalog", Egress, InZone, Some("aws-amazon"), true, 7),
        ]);
        let set = endpoint_advice(&usage, &PriceSheet::aws(), WINDOW, &HashMap::new());
        assert_eq!(set.advice.len(), 1, "{set:?}");
        let a = &set.advice[0];
        assert_eq!(
            (
                a.namespace.as_str(),
                a.workload.name.as_str(),
                a.service.as_str()
            ),
            ("shop", "catalog", "aws-s3")
        );
        assert_eq!(a.endpoint, EndpointKind::Gateway);
        // 100 GiB in a tenth of a month: 1,000 GiB a month at AWS's $0.045/GB NAT processing.
        assert_eq!(a.monthly_bytes, 1_000 * GIB);
        assert!((a.nat_cost_per_month - 45.0).abs() < 1e-9, "{a:?}");
        assert_eq!(a.endpoint_cost_per_month, 0.0);
        assert!((a.saving_per_month - 45.0).abs() < 1e-9);
        assert!(
            a.explanation
                .contains("com.amazonaws.us-east-1.s3 to the route tables"),
            "{}",
            a.explanation
        );
        assert!(
            set.notes.iter().any(|n| n.contains("aws-amazon (7.0 GiB)")),
            "{:?}",
            set.notes
        );
    }

    #[test]
    fn an_interface_endpoint_shares_its_hourly_charge_by_bytes_and_is_left_out_when_dearer() {
        use Direction::Egress;
        use TrafficClass::CrossZone;
        let usage = window_of(vec![
            usage("api", Egress, CrossZone, Some("aws-api-gateway"), true, 300),
            usage("cart", Egress, CrossZone, Some("aws-api-gateway"), true, 10),
            usage("web", Egress, CrossZone, Some("aws-codebuild"), true, 1),
        ]);
        let zones = HashMap::from([("us-east-1".to_owned(), 3)]);
        let set = endpoint_advice(&usage, &PriceSheet::aws(), WINDOW, &zones);
        // One endpoint in 3 zones: $0.01 × 730 h × 3 = $21.90 a month, shared 3000 : 100.
        // api: NAT 3,000 GiB × $0.045 = $135; endpoint 3,000 × $0.01 + 21.90 × 30/31.
        // cart: NAT 100 × $0.045 = $4.50; endpoint 100 × $0.01 + 21.90 × 1/31.
        let fixed = 21.9;
        let expected = [
            ("api", 135.0, 30.0 + fixed * 30.0 / 31.0),
            ("cart", 4.5, 1.0 + fixed / 31.0),
        ];
        assert_eq!(set.advice.len(), 2, "{set:?}");
        for (a, (name, nat, endpoint)) in set.advice.iter().zip(expected) {
            assert_eq!(a.workload.name, name);
            assert_eq!(a.endpoint, EndpointKind::Interface);
            assert!((a.nat_cost_per_month - nat).abs() < 1e-9, "{a:?}");
            assert!((a.endpoint_cost_per_month - endpoint).abs() < 1e-9, "{a:?}");
            assert!((a.saving_per_month - (nat - endpoint)).abs() < 1e-9);
        }
        // web: 10 GiB a month saves $0.45 of NAT but its own endpoint costs $21.90 + $0.10.
        assert!(
            set.notes
                .iter()
                .any(|n| n.contains("cost more") && n.contains("shop/web → aws-codebuild")),
            "{:?}",
            set.notes
        );
    }

    #[test]
    fn unknown_zones_and_a_sheet_without_a_nat_price_are_said_in_notes() {
        let usage = window_of(vec![usage(
            "api",
            Direction::Egress,
            TrafficClass::CrossZone,
            Some("aws-api-gateway"),
            true,
            1_000,
        )]);
        let set = endpoint_advice(&usage, &PriceSheet::aws(), WINDOW, &HashMap::new());
        assert_eq!(set.advice.len(), 1);
        // 10,000 GiB a month: NAT $450; endpoint $100 + $21.90 for the assumed 3 zones.
        assert!((set.advice[0].saving_per_month - (450.0 - 121.9)).abs() < 1e-9);
        assert!(set.notes.iter().any(|n| n.contains("assumes 3 zones")));

        let mut no_nat = PriceSheet::aws();
        no_nat.nat_gateway = None;
        let set = endpoint_advice(&usage, &no_nat, WINDOW, &HashMap::new());
        assert!(set.advice.is_empty());
        assert!(
            set.notes[0].contains("no NAT gateway price"),
            "{:?}",
            set.notes
        );
    }
}
