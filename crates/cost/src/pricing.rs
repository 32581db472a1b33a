//! Price sheets: what a provider charges per unit of traffic, by class and direction.
//!
//! Every built-in figure carries its source and the date it was read. Prices are per *billing
//! unit*, and the unit is part of the sheet. Every built-in sheet bills per 2^30 bytes: GCP says
//! "GiB", and AWS's and Azure's "GB" is read as binary too (see [`Unit::Gib`] for why).
//! Converting bytes to units happens in one place, [`Unit::of_bytes`].
//!
//! What is billed, by class and direction of a pod's counters:
//! - in-zone: free everywhere;
//! - cross-zone: egress at `cross_zone.egress`, ingress at `cross_zone.ingress` (AWS bills both
//!   sides, $0.01/GB each; GCP bills the sender only; Azure stopped billing it in 2024), except
//!   to and from the services the provider does not bill within a region
//!   ([`PriceSheet::free_in_region_services`]), which is free;
//! - cross-region: egress at the price of the region pair where the sheet has one, else of the
//!   source region; ingress is free, because the sending region's egress is what the provider
//!   bills;
//! - internet: egress by monthly volume tiers, after a monthly free allowance; ingress free;
//! - optionally, a NAT gateway processing charge on internet bytes in both directions;
//! - the user's load balancers and VPC endpoints, named in a pricing file, as their kind bills
//!   them ([`ServiceKind`]).
//!
//! Both ends of a transfer are billed, each for its own side: on AWS, cross-zone traffic is
//! billed out of the sender's zone and into the receiver's. AWS's Cost and Usage Report guide
//! says that for data transfer within a region "you're charged for both inbound and outbound
//! traffic" of a resource, so each transfer shows two `DataTransfer-Regional-Bytes` line items
//! (docs.aws.amazon.com/cur/latest/userguide/cur-data-transfers-charges.html). An agent counts
//! its own end's side. When the remote end is a pod or node of the cluster, its agent counts
//! the other side; when it is outside the cluster (a managed database, a cache, a load
//! balancer, a cloud service), nobody does, so [`PriceSheet::unit_price`] adds the far end's
//! side to the counted end's: its ingress for the bytes sent to it, its egress for the bytes it
//! sent. This assumes the far end is billed to the same account, as a database or load balancer
//! in the cluster's VPC is. One kind of end is left out: a cloud provider's published range in
//! the node's own region (classed cross-zone, [`is_provider_range`]). It is a public address,
//! an AWS service's endpoint or another account's instance, and the EC2 pricing page bills
//! traffic to public addresses in the region on the instance's side ($0.01/GB in each
//! direction); the far side, if anyone's, is not this cluster's account. Across regions the far
//! end's side is charged for every end without an agent: what it sends is data transferred out
//! of its region, paid by whoever owns the sender, taken to be this account (as for a bucket of
//! its own in another region).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use netcost_core::class::{Direction, TrafficClass};
use netcost_core::cloud::Provider;
use netcost_core::located;
use serde::Deserialize;

/// The byte size of one billing unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Unit {
    /// 10^9 bytes, for a pricing file whose prices are per decimal gigabyte (`unit: GB`).
    #[serde(rename = "GB")]
    Gb,
    /// 2^30 bytes, the unit of every built-in sheet.
    ///
    /// - GCP: "Egress pricing is per GiB delivered" (cloud.google.com/network-tiers/pricing),
    ///   and its billing SKUs are priced per gibibyte.
    /// - AWS: no data-transfer page says how many bytes its "GB" is. Its only definition is
    ///   binary ("1 GB is 2^30 bytes", aws.amazon.com/s3/pricing, for storage), and its only
    ///   worked data-transfer bill counts in binary ("62 TB * 1024 GB/TB", "10 TB Tier: 10,239
    ///   GB (10×1024 GB/TB – 1 (free))", the billing section of aws.amazon.com/s3/faqs). The
    ///   tier bounds (10 TB = 10,240 GB) are binary either way.
    /// - Azure: the bandwidth page noted "1 TB = 1,024 GB", and Microsoft's docs team answered
    ///   that "1 GB is 1,024 MB" (github.com/MicrosoftDocs/azure-docs/issues/41142).
    /// - OpenCost, which reads the same counters, divides bytes by 1024³ before pricing them,
    ///   so netcost and OpenCost agree on the same bytes.
    ///
    /// docs/pricing.md shows how to check the unit against a Cost and Usage Report line; a
    /// pricing file can switch to `GB`.
    #[serde(rename = "GiB")]
    Gib,
}

impl Unit {
    /// Bytes in one unit.
    pub fn bytes(self) -> f64 {
        match self {
            Unit::Gb => 1e9,
            Unit::Gib => 1_073_741_824.0,
        }
    }

    /// `bytes` expressed in this unit.
    pub fn of_bytes(self, bytes: u64) -> f64 {
        bytes as f64 / self.bytes()
    }

    /// The unit's name, as written in pricing files.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Gb => "GB",
            Unit::Gib => "GiB",
        }
    }
}

/// One step of a tiered price: the month's units from the previous tier's bound up to `up_to`
/// (cumulative monthly volume; `None` for no limit) cost `price` each.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Upper bound of the tier in units per month, cumulative; `None` for the last tier.
    #[serde(default)]
    pub up_to: Option<f64>,
    /// Price per unit inside the tier.
    pub price: f64,
}

/// Cross-region prices: by the sender's region, with overrides for region pairs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CrossRegion {
    /// Price per unit when no region-specific price applies.
    pub default: f64,
    /// Price per unit by source region.
    pub by_source_region: BTreeMap<String, f64>,
    /// Price per unit by `(source, destination)` region, where it differs from the source price.
    pub pairs: BTreeMap<(String, String), f64>,
}

impl CrossRegion {
    /// The price of one unit sent from `source` to `destination` (either may be unknown): the
    /// pair's price where the sheet has one, else the source region's, else the default.
    pub fn price(&self, source: Option<&str>, destination: Option<&str>) -> f64 {
        if let (Some(s), Some(d)) = (source, destination)
            && let Some(p) = self.pairs.get(&(s.to_owned(), d.to_owned()))
        {
            return *p;
        }
        source
            .and_then(|s| self.by_source_region.get(s))
            .copied()
            .unwrap_or(self.default)
    }
}

/// The prices of one provider.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceSheet {
    /// `aws`, `gcp`, `azure`, `opencost` or `custom`.
    pub provider: String,
    /// Where the figures come from, with the date they were read.
    pub source: String,
    /// The billing unit of every price in the sheet.
    pub unit: Unit,
    /// Cross-zone price per unit sent.
    pub cross_zone_egress: f64,
    /// Cross-zone price per unit received.
    pub cross_zone_ingress: f64,
    /// Cross-region egress prices.
    pub cross_region: CrossRegion,
    /// Internet egress units free each month before the tiers apply.
    pub internet_free_per_month: f64,
    /// Internet egress tiers, in order; the last has no upper bound.
    pub internet_egress_tiers: Vec<Tier>,
    /// The monthly volume (units) where the provider's published tiers end: AWS, GCP and Azure
    /// publish no price above 500 TB a month ("please contact us"), so the last tier's price
    /// is an extrapolation past it, which the API says when a month gets there. `None`: the
    /// tiers are all there is (OpenCost's flat price, a pricing file's own tiers).
    pub internet_published_up_to: Option<f64>,
    /// The rest of the account's internet egress per month (units): other clusters, buckets,
    /// CDNs, everything these counters do not see. The providers count the free allowance and
    /// the tiers over the whole account (AWS: "aggregated across all AWS Services and
    /// Regions"), so this moves the cluster's bytes up the tiers. Taken to accrue evenly
    /// through the month. Zero by default: the cluster is taken to be the whole account.
    pub account_other_internet_per_month: f64,
    /// Internet ingress price per unit (free on every major cloud).
    pub internet_ingress: f64,
    /// NAT gateway processing price per unit, both directions, on the bytes marked as having
    /// gone through one; `None` charges nothing for them.
    pub nat_gateway: Option<f64>,
    /// Services (netcost service names, such as `aws-sqs`) the provider does not bill for data
    /// transferred within a region: cross-zone traffic tagged with one is free, both ways.
    pub free_in_region_services: BTreeSet<String>,
    /// What the user's own services are, by name (the `service` of a `services` entry in the
    /// classification config): load balancers and VPC endpoints bill traffic differently from
    /// an instance at the same address. A service not named here is priced as an end outside
    /// the cluster whose side is billed too.
    pub service_kinds: BTreeMap<String, ServiceKind>,
    /// The data processing price per unit of an interface VPC endpoint, both directions.
    pub interface_endpoint_processing: f64,
}

/// What a service of the user's is, for pricing: named in a pricing file's `service_kinds`.
///
/// Sources (read 2026-12-01):
/// - `application-load-balancer`: "Data transferred "in" to and "out" from Amazon Classic and
///   Application Elastic Load Balancers using private IP addresses, between EC2 instances and
///   the load balancer in the same AWS VPC is free" (aws.amazon.com/ec2/pricing/on-demand,
///   "Data Transfer within the same AWS Region"); and "Since cross-zone load balancing is
///   always on with Application Load Balancer, you are not charged for this type of regional
///   data transfer" (aws.amazon.com/elasticloadbalancing/faqs).
/// - `network-load-balancer`: "you will be charged for regional data transfer between
///   Availability Zones with Network Load Balancer when cross-zone load balancing is enabled"
///   (the same FAQ): both sides of a cross-zone byte, as for any end outside the cluster.
/// - `interface-endpoint`: "Data processing charges apply for each Gigabyte processed through
///   the VPC endpoint regardless of the traffic's source or destination", $0.01/GB for the
///   first PB a month in a region (aws.amazon.com/privatelink/pricing); the hourly charge per
///   endpoint and zone is not traffic, and not counted. Data transfer between zones to an
///   endpoint has been free since April 2022 (AWS's announcement of that date for PrivateLink,
///   Transit Gateway and Client VPN, as summarised by third parties; not found on a stored AWS
///   page), so only the processing is billed.
/// - `gateway-endpoint`: "There is no additional charge for using gateway endpoints"
///   (docs.aws.amazon.com/vpc/latest/privatelink/gateway-endpoints.html), and S3 and DynamoDB
///   within the region are free already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceKind {
    /// An Application or Classic Load Balancer: free within the region, both ways.
    ApplicationLoadBalancer,
    /// A Network Load Balancer: both sides of a cross-zone byte, like any end outside the
    /// cluster. Naming it changes no figure; it says the choice was made.
    NetworkLoadBalancer,
    /// An interface VPC endpoint (PrivateLink): the processing price on every byte either way,
    /// no transfer charge within the region.
    InterfaceEndpoint,
    /// A gateway VPC endpoint (S3, DynamoDB): free.
    GatewayEndpoint,
}

impl ServiceKind {
    /// Whether traffic within the region is billed as the kind says, instead of as an
    /// ordinary end outside the cluster.
    fn prices_in_region_traffic(self) -> bool {
        !matches!(self, ServiceKind::NetworkLoadBalancer)
    }
}

/// Bytes one agent counted between its end and a remote end: what the pricer needs to know
/// about both ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer<'a> {
    /// Billing class of the remote end, seen from the counting end.
    pub class: TrafficClass,
    /// Sent (egress) or received (ingress) by the counting end.
    pub direction: Direction,
    /// The counting end's region, if known.
    pub local_region: Option<&'a str>,
    /// The remote end's region, if known.
    pub remote_region: Option<&'a str>,
    /// The remote end's cloud or user service, if tagged.
    pub service: Option<&'a str>,
    /// True when the remote end has an agent of its own (a pod or node of the cluster), which
    /// counts the remote side; false for an end outside the cluster, whose side is then priced
    /// here with the counted end's.
    pub remote_has_agent: bool,
}

/// True for a service name the agent gives a cloud provider's published ranges: `aws-…`,
/// `gcp-…` or `azure-…` (docs/cloud-services.md, "Service names"). A `services` entry of the
/// classification config with such a name is taken for one too.
pub fn is_provider_range(service: &str) -> bool {
    Provider::ALL.iter().any(|p| {
        service
            .strip_prefix(p.as_str())
            .is_some_and(|rest| rest.starts_with('-'))
    })
}

/// Why a pricing file was refused. The message names the file, the field and the reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PricingError {
    /// The file could not be read.
    #[error("{}: cannot read the pricing file: {error}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not valid YAML.
    #[error("{}: (document): not valid YAML: {reason}", file.display())]
    Parse {
        /// The file.
        file: PathBuf,
        /// What the parser said, with the position.
        reason: String,
    },
    /// A field has a value the pricing model cannot use.
    #[error("{}: {field}: {reason}", file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// The field path, e.g. `internet_egress.tiers[2].up_to`.
        field: String,
        /// Why.
        reason: String,
    },
}

impl PriceSheet {
    /// AWS, us-east-1 on-demand data transfer prices.
    ///
    /// Source: aws.amazon.com/ec2/pricing/on-demand ("Data Transfer" section) and
    /// aws.amazon.com/vpc/pricing (NAT gateway), read 2026-11-25:
    /// - across Availability Zones in one region: $0.01/GB in each direction;
    /// - to the internet: first 100 GB/month free (aggregated across services), then $0.09/GB up
    ///   to 10 TB, $0.085/GB for the next 40 TB, $0.07/GB for the next 100 TB, $0.05/GB above
    ///   150 TB;
    /// - between regions: $0.02/GB out of US regions (other source regions cost more; set them
    ///   in a pricing file), except between US East (N. Virginia) and US East (Ohio), $0.01/GB
    ///   each way (the "Data Transfer to other AWS regions" table of the same page; Price List
    ///   usage types `USE1-USE2-AWS-Out-Bytes` and `USE2-USE1-AWS-Out-Bytes`);
    /// - within a region, free between EC2 and S3, Glacier, DynamoDB, SES, SQS, Kinesis, ECR, SNS
    ///   and SimpleDB ("Data Transfer within the same AWS Region"):
    ///   [`PriceSheet::AWS_FREE_IN_REGION`];
    /// - NAT gateway data processing: $0.045/GB, both directions, on the bytes the agents mark
    ///   `nat_gateway="true"` (nodes the classification config's `nat-gateway` block names).
    pub fn aws() -> PriceSheet {
        PriceSheet {
            provider: "aws".into(),
            source: "aws.amazon.com/ec2/pricing/on-demand and aws.amazon.com/vpc/pricing, \
                     us-east-1, read 2026-11-25"
                .into(),
            unit: Unit::Gib,
            cross_zone_egress: 0.01,
            cross_zone_ingress: 0.01,
            cross_region: CrossRegion {
                default: 0.02,
                by_source_region: BTreeMap::new(),
                pairs: [
                    (("us-east-1", "us-east-2"), 0.01),
                    (("us-east-2", "us-east-1"), 0.01),
                ]
                .into_iter()
                .map(|((from, to), price)| ((from.to_owned(), to.to_owned()), price))
                .collect(),
            },
            internet_free_per_month: 100.0,
            internet_egress_tiers: vec![
                tier(Some(10_240.0), 0.09),
                tier(Some(51_200.0), 0.085),
                tier(Some(153_600.0), 0.07),
                tier(None, 0.05),
            ],
            internet_published_up_to: Some(512_000.0),
            account_other_internet_per_month: 0.0,
            internet_ingress: 0.0,
            nat_gateway: Some(PriceSheet::AWS_NAT_GATEWAY_PER_GB),
            free_in_region_services: PriceSheet::AWS_FREE_IN_REGION
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            service_kinds: BTreeMap::new(),
            interface_endpoint_processing: PriceSheet::AWS_INTERFACE_ENDPOINT_PER_GB,
        }
    }

    /// The services between which and EC2 AWS does not bill data transferred within a region:
    /// Amazon S3, Glacier, DynamoDB, SES, SQS, Kinesis, ECR, SNS and SimpleDB
    /// (aws.amazon.com/ec2/pricing/on-demand, "Data Transfer within the same AWS Region"), as
    /// netcost names them (docs/cloud-services.md: `<provider>-<service>`, lowercase).
    /// Of these, `ip-ranges.json` names only `S3` and `DYNAMODB` (which the agent already
    /// classes as in-zone within their region); the others reach netcost under these names
    /// only through the `services` list of the classification config.
    pub const AWS_FREE_IN_REGION: [&'static str; 9] = [
        "aws-s3",
        "aws-glacier",
        "aws-dynamodb",
        "aws-ses",
        "aws-sqs",
        "aws-kinesis",
        "aws-ecr",
        "aws-sns",
        "aws-simpledb",
    ];

    /// The AWS interface VPC endpoint processing charge, $0.01/GB for the first PB a month in a
    /// region (aws.amazon.com/privatelink/pricing, read 2026-12-01; $0.006 and $0.004 above).
    pub const AWS_INTERFACE_ENDPOINT_PER_GB: f64 = 0.01;

    /// The AWS NAT gateway processing charge, $0.045/GB (aws.amazon.com/vpc/pricing, us-east-1,
    /// read 2026-11-25), for clusters whose internet traffic goes through one.
    pub const AWS_NAT_GATEWAY_PER_GB: f64 = 0.045;

    /// GCP Premium Tier prices.
    ///
    /// Source: cloud.google.com/vpc/network-pricing and cloud.google.com/network-tiers/pricing,
    /// read 2026-11-25. Prices are per GiB:
    /// - between zones of one region: $0.01/GiB, billed to the sender;
    /// - between regions in North America: $0.02/GiB (other continents cost more);
    /// - to the internet (Premium Tier, from North America): the first GiB of the month free
    ///   ("0 gibibyte to 1 gibibyte $0.00", and the Free Tier's "1 GB network egress from North
    ///   America", cloud.google.com/free/docs/free-cloud-features), then $0.12/GiB up to 1 TiB,
    ///   $0.11/GiB up to 10 TiB, $0.08/GiB above; beyond 500 TiB Google prices by contract;
    /// - Cloud NAT data processing: $0.045/GiB, "inbound and outbound data transfer"
    ///   (cloud.google.com/nat/pricing).
    pub fn gcp() -> PriceSheet {
        PriceSheet {
            provider: "gcp".into(),
            source: "cloud.google.com/vpc/network-pricing and \
                     cloud.google.com/network-tiers/pricing, read 2026-11-25"
                .into(),
            unit: Unit::Gib,
            cross_zone_egress: 0.01,
            cross_zone_ingress: 0.0,
            cross_region: CrossRegion {
                default: 0.02,
                ..CrossRegion::default()
            },
            internet_free_per_month: 1.0,
            internet_egress_tiers: vec![
                tier(Some(1_024.0), 0.12),
                tier(Some(10_240.0), 0.11),
                tier(None, 0.08),
            ],
            internet_published_up_to: Some(512_000.0),
            account_other_internet_per_month: 0.0,
            internet_ingress: 0.0,
            nat_gateway: Some(0.045),
            free_in_region_services: BTreeSet::new(),
            service_kinds: BTreeMap::new(),
            interface_endpoint_processing: 0.0,
        }
    }

    /// Azure prices (Microsoft premium global network, Zone 1: North America and Europe).
    ///
    /// Source: azure.microsoft.com/pricing/details/bandwidth, read 2026-11-25:
    /// - between availability zones: free. Azure announced inter-AZ charges for 2021, began
    ///   billing them in April 2024 and withdrew them at Microsoft Build in May 2024 (as
    ///   summarised at blog.vjirovsky.cz/azure-may-2024-cost-storage);
    /// - between regions within North America or Europe: $0.02/GB;
    /// - to the internet: first 100 GB/month free, then $0.087/GB, $0.083/GB, $0.07/GB and
    ///   $0.05/GB. The page words the bands "next 10 TB", "next 40 TB", "next 100 TB"; the
    ///   bounds here are the bands' `tierMinimumUnits` in the Retail Prices API (10,335,
    ///   51,295 and 153,695 GB for the Standard Data Transfer Out meter), which is what the
    ///   invoice meters, 5 GB below "100 GB + 10 TB" and so on;
    /// - above 500 TB a month the page says to contact Microsoft: the last band's price is
    ///   used, and [`PriceSheet::internet_published_up_to`] marks where that starts;
    /// - NAT Gateway data processing: $0.045/GB (azure.microsoft.com/pricing/details/azure-nat-gateway,
    ///   as quoted by third parties; not re-read here).
    pub fn azure() -> PriceSheet {
        PriceSheet {
            provider: "azure".into(),
            source: "azure.microsoft.com/pricing/details/bandwidth and the Azure Retail Prices \
                     API (Bandwidth, Standard Data Transfer Out), Zone 1, read 2026-11-25; \
                     inter-AZ transfer free since May 2024"
                .into(),
            unit: Unit::Gib,
            cross_zone_egress: 0.0,
            cross_zone_ingress: 0.0,
            cross_region: CrossRegion {
                default: 0.02,
                ..CrossRegion::default()
            },
            internet_free_per_month: 100.0,
            internet_egress_tiers: vec![
                tier(Some(10_335.0), 0.087),
                tier(Some(51_295.0), 0.083),
                tier(Some(153_695.0), 0.07),
                tier(None, 0.05),
            ],
            internet_published_up_to: Some(512_000.0),
            account_other_internet_per_month: 0.0,
            internet_ingress: 0.0,
            nat_gateway: Some(0.045),
            free_in_region_services: BTreeSet::new(),
            service_kinds: BTreeMap::new(),
            interface_endpoint_processing: 0.0,
        }
    }

    /// OpenCost's defaults: $0.01/GiB across zones, $0.01/GiB across regions, $0.12/GiB to the
    /// internet, egress only, no tiers (OpenCost's default `network` pricing:
    /// `zoneNetworkEgress`, `regionNetworkEgress`, `internetNetworkEgress`), and $0.045/GiB
    /// each way through a NAT gateway (OpenCost's `DefaultNetworkNATGatewayEgressPricePerGiB`
    /// and `…IngressPricePerGiB`).
    pub fn opencost() -> PriceSheet {
        PriceSheet {
            provider: "opencost".into(),
            source: "OpenCost default network prices (zoneNetworkEgress 0.01, \
                     regionNetworkEgress 0.01, internetNetworkEgress 0.12 per GiB)"
                .into(),
            unit: Unit::Gib,
            cross_zone_egress: 0.01,
            cross_zone_ingress: 0.0,
            cross_region: CrossRegion {
                default: 0.01,
                ..CrossRegion::default()
            },
            internet_free_per_month: 0.0,
            internet_egress_tiers: vec![tier(None, 0.12)],
            internet_published_up_to: None,
            account_other_internet_per_month: 0.0,
            internet_ingress: 0.0,
            nat_gateway: Some(0.045),
            free_in_region_services: BTreeSet::new(),
            service_kinds: BTreeMap::new(),
            interface_endpoint_processing: 0.0,
        }
    }

    /// A sheet with every price zero, to be filled by a pricing file.
    pub fn custom() -> PriceSheet {
        PriceSheet {
            provider: "custom".into(),
            source: "pricing file".into(),
            unit: Unit::Gib,
            cross_zone_egress: 0.0,
            cross_zone_ingress: 0.0,
            cross_region: CrossRegion::default(),
            internet_free_per_month: 0.0,
            internet_egress_tiers: vec![tier(None, 0.0)],
            internet_published_up_to: None,
            account_other_internet_per_month: 0.0,
            internet_ingress: 0.0,
            nat_gateway: None,
            free_in_region_services: BTreeSet::new(),
            service_kinds: BTreeMap::new(),
            interface_endpoint_processing: 0.0,
        }
    }

    /// The built-in sheet called `name`.
    pub fn builtin(name: &str) -> Option<PriceSheet> {
        match name {
            "aws" => Some(PriceSheet::aws()),
            "gcp" => Some(PriceSheet::gcp()),
            "azure" => Some(PriceSheet::azure()),
            "opencost" => Some(PriceSheet::opencost()),
            "custom" => Some(PriceSheet::custom()),
            _ => None,
        }
    }

    /// The cost of internet egress for a month whose volume went from `before` to `after`
    /// units: the tiers and the free allowance apply to the month's running total, so the same
    /// units cost less late in a heavy month.
    pub fn internet_egress_cost(&self, before: f64, after: f64) -> f64 {
        self.cumulative_internet_cost(after) - self.cumulative_internet_cost(before)
    }

    /// The price of one unit of in-zone, cross-zone or cross-region traffic, as the counting
    /// end's agent counted it. Cross-region bytes are priced by the region pair (sender,
    /// receiver) where the sheet has one, else by the sender's region. Cross-zone bytes to or
    /// from a service in [`PriceSheet::free_in_region_services`] are free: the agent classes a
    /// cloud range of the node's own region as cross-zone, since it is in the region but not
    /// known to be in the zone.
    ///
    /// When the remote end has no agent, the price includes its side: for cross-zone bytes the
    /// remote end's ingress (bytes sent to it) or egress (bytes it sent), unless it is a
    /// provider's range ([`is_provider_range`]; see the module docs); for cross-region bytes it
    /// sent, the price from its region to the local one, or, when its region is not known, what
    /// the local region's egress would cost (so that a pair counter, which holds both
    /// directions of such an end in one number, is priced the same as the pods' counters).
    ///
    /// Internet traffic is not priced here: its egress tiers depend on the month's cluster-wide
    /// volume ([`PriceSheet::internet_egress_cost`]); this returns 0 for it.
    pub fn unit_price(&self, t: &Transfer<'_>) -> f64 {
        if t.class == TrafficClass::CrossZone
            && t.service
                .is_some_and(|s| self.free_in_region_services.contains(s))
        {
            return 0.0;
        }
        if matches!(t.class, TrafficClass::InZone | TrafficClass::CrossZone) {
            match self.service_kind(t.service) {
                Some(ServiceKind::ApplicationLoadBalancer | ServiceKind::GatewayEndpoint) => {
                    return 0.0;
                }
                Some(ServiceKind::InterfaceEndpoint) => return self.interface_endpoint_processing,
                Some(ServiceKind::NetworkLoadBalancer) | None => {}
            }
        }
        let own = self.own_side_price(t);
        if t.remote_has_agent || !self.far_side_billed(t.class, t.service) {
            return own;
        }
        let far = match (t.class, t.direction) {
            (TrafficClass::CrossZone, Direction::Egress) => self.cross_zone_ingress,
            (TrafficClass::CrossZone, Direction::Ingress) => self.cross_zone_egress,
            (TrafficClass::CrossRegion, Direction::Ingress) => match t.remote_region {
                Some(remote) => self.cross_region.price(Some(remote), t.local_region),
                None => self.cross_region.price(t.local_region, None),
            },
            _ => 0.0,
        };
        own + far
    }

    /// False for the ends outside the cluster whose side is not billed to the cluster's account:
    /// a provider's range in the node's own region, and within the region the load balancers
    /// and endpoints whose kind sets their price ([`ServiceKind`]).
    pub(crate) fn far_side_billed(&self, class: TrafficClass, service: Option<&str>) -> bool {
        let in_region = matches!(class, TrafficClass::InZone | TrafficClass::CrossZone);
        let priced_by_kind = in_region
            && self
                .service_kind(service)
                .is_some_and(ServiceKind::prices_in_region_traffic);
        !(priced_by_kind
            || class == TrafficClass::CrossZone && service.is_some_and(is_provider_range))
    }

    /// The kind a pricing file gave `service`, if any.
    pub fn service_kind(&self, service: Option<&str>) -> Option<ServiceKind> {
        service.and_then(|s| self.service_kinds.get(s)).copied()
    }

    /// The price of the counting end's own side of a transfer.
    fn own_side_price(&self, t: &Transfer<'_>) -> f64 {
        match (t.class, t.direction) {
            (TrafficClass::InZone | TrafficClass::Internet, _) => 0.0,
            (TrafficClass::CrossZone, Direction::Egress) => self.cross_zone_egress,
            (TrafficClass::CrossZone, Direction::Ingress) => self.cross_zone_ingress,
            (TrafficClass::CrossRegion, Direction::Egress) => {
                self.cross_region.price(t.local_region, t.remote_region)
            }
            // The sending region's egress is what providers bill; counting the receiver too
            // would bill every cross-region byte twice inside one cluster.
            (TrafficClass::CrossRegion, Direction::Ingress) => 0.0,
        }
    }

    /// The cost of the first `units` of internet egress in a month. Tier bounds are cumulative
    /// monthly volume, and the free allowance is the bottom of the first tier (AWS: "up to
    /// 100 GB free, next 9.999 TB at $0.09").
    fn cumulative_internet_cost(&self, units: f64) -> f64 {
        let mut floor = 0.0_f64;
        let mut cost = 0.0;
        for tier in &self.internet_egress_tiers {
            let ceiling = tier.up_to.unwrap_or(f64::INFINITY);
            let billed_from = floor.max(self.internet_free_per_month);
            let billed = (units.min(ceiling) - billed_from).max(0.0);
            cost += billed * tier.price;
            if units <= ceiling {
                break;
            }
            floor = ceiling;
        }
        cost
    }

    /// Reads a pricing file: a base sheet (`provider`) with any price overridden.
    pub fn load(path: &Path) -> Result<PriceSheet, PricingError> {
        let text = std::fs::read_to_string(path).map_err(|error| PricingError::Read {
            file: path.to_owned(),
            error,
        })?;
        PriceSheet::from_yaml_str(&text, path)
    }

    /// Parses a pricing file's text; `file` names it in errors.
    pub fn from_yaml_str(text: &str, file: &Path) -> Result<PriceSheet, PricingError> {
        let document: serde_json::Value =
            serde_saphyr::from_str(text).map_err(|e| PricingError::Parse {
                file: file.to_owned(),
                reason: located::yaml_syntax_reason(&e, file),
            })?;
        if document.is_null() {
            return Err(PricingError::Invalid {
                file: file.to_owned(),
                field: "(document)".into(),
                reason: "the pricing file is empty; it needs at least `provider`".into(),
            });
        }
        let raw: RawPricing =
            located::deserialize(&document).map_err(|e| PricingError::Invalid {
                file: file.to_owned(),
                field: e.field_or("(top level)"),
                reason: e.reason,
            })?;
        raw.apply(file)
    }
}

fn tier(up_to: Option<f64>, price: f64) -> Tier {
    Tier { up_to, price }
}

/// The pricing file, as written. Every field but `provider` is optional and overrides the base.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPricing {
    provider: String,
    #[serde(default)]
    unit: Option<Unit>,
    #[serde(default)]
    cross_zone: Option<RawCrossZone>,
    #[serde(default)]
    cross_region: Option<RawCrossRegion>,
    #[serde(default)]
    internet_egress: Option<RawInternet>,
    #[serde(default)]
    internet_ingress: Option<f64>,
    #[serde(default)]
    nat_gateway: Option<f64>,
    #[serde(default)]
    free_in_region_services: Option<BTreeSet<String>>,
    #[serde(default)]
    service_kinds: BTreeMap<String, ServiceKind>,
    #[serde(default)]
    interface_endpoint_processing: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCrossZone {
    #[serde(default)]
    egress: Option<f64>,
    #[serde(default)]
    ingress: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCrossRegion {
    #[serde(default)]
    default: Option<f64>,
    #[serde(default)]
    by_source_region: BTreeMap<String, f64>,
    #[serde(default)]
    pairs: Vec<RawPair>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPair {
    from: String,
    to: String,
    price: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInternet {
    #[serde(default)]
    free_per_month: Option<f64>,
    #[serde(default)]
    tiers: Option<Vec<Tier>>,
    #[serde(default)]
    account_other_per_month: Option<f64>,
}

impl RawPricing {
    fn apply(self, file: &Path) -> Result<PriceSheet, PricingError> {
        let invalid = |field: String, reason: &str| PricingError::Invalid {
            file: file.to_owned(),
            field,
            reason: reason.to_owned(),
        };
        let mut sheet = PriceSheet::builtin(&self.provider).ok_or_else(|| {
            invalid(
                "provider".into(),
                &format!(
                    "{:?} is not a known provider; expected aws, gcp, azure, opencost or custom",
                    self.provider
                ),
            )
        })?;
        let at_least_zero = |field: &str, value: f64, what: &str| {
            if value.is_finite() && value >= 0.0 {
                Ok(value)
            } else {
                Err(invalid(field.to_owned(), what))
            }
        };
        let price = |field: &str, value: f64| -> Result<f64, PricingError> {
            at_least_zero(field, value, "a price must be a number of at least 0")
        };
        let volume = |field: &str, value: f64| -> Result<f64, PricingError> {
            at_least_zero(
                field,
                value,
                "a monthly volume must be a number of units of at least 0",
            )
        };
        if let Some(unit) = self.unit {
            sheet.unit = unit;
        }
        if let Some(cz) = self.cross_zone {
            if let Some(v) = cz.egress {
                sheet.cross_zone_egress = price("cross_zone.egress", v)?;
            }
            if let Some(v) = cz.ingress {
                sheet.cross_zone_ingress = price("cross_zone.ingress", v)?;
            }
        }
        if let Some(cr) = self.cross_region {
            if let Some(v) = cr.default {
                sheet.cross_region.default = price("cross_region.default", v)?;
            }
            for (region, v) in cr.by_source_region {
                let v = price(&format!("cross_region.by_source_region.{region}"), v)?;
                sheet.cross_region.by_source_region.insert(region, v);
            }
            for (i, pair) in cr.pairs.into_iter().enumerate() {
                let v = price(&format!("cross_region.pairs[{i}].price"), pair.price)?;
                sheet.cross_region.pairs.insert((pair.from, pair.to), v);
            }
        }
        if let Some(internet) = self.internet_egress {
            if let Some(v) = internet.free_per_month {
                sheet.internet_free_per_month = price("internet_egress.free_per_month", v)?;
            }
            if let Some(tiers) = internet.tiers {
                validate_tiers(&tiers, &invalid, &price)?;
                sheet.internet_egress_tiers = tiers;
                // Tiers of the file's own: no published end to warn about.
                sheet.internet_published_up_to = None;
            }
            if let Some(v) = internet.account_other_per_month {
                sheet.account_other_internet_per_month =
                    volume("internet_egress.account_other_per_month", v)?;
            }
        }
        if let Some(v) = self.internet_ingress {
            sheet.internet_ingress = price("internet_ingress", v)?;
        }
        if let Some(v) = self.nat_gateway {
            sheet.nat_gateway = Some(price("nat_gateway", v)?);
        }
        if let Some(services) = self.free_in_region_services {
            sheet.free_in_region_services = services;
        }
        for (name, kind) in self.service_kinds {
            if is_provider_range(&name) {
                return Err(invalid(
                    format!("service_kinds.{name}"),
                    "names a cloud provider's range (aws-, gcp-, azure-); give your load \
                     balancer or endpoint a `services` entry of its own name in the \
                     classification config, and name that here",
                ));
            }
            sheet.service_kinds.insert(name, kind);
        }
        if let Some(v) = self.interface_endpoint_processing {
            sheet.interface_endpoint_processing = price("interface_endpoint_processing", v)?;
        }
        sheet.source = format!("{} (overridden by {})", sheet.source, file.display());
        Ok(sheet)
    }
}

fn validate_tiers(
    tiers: &[Tier],
    invalid: &dyn Fn(String, &str) -> PricingError,
    price: &dyn Fn(&str, f64) -> Result<f64, PricingError>,
) -> Result<(), PricingError> {
    if tiers.is_empty() {
        return Err(invalid(
            "internet_egress.tiers".into(),
            "needs at least one tier; the last one has no up_to",
        ));
    }
    let mut floor = 0.0;
    for (i, t) in tiers.iter().enumerate() {
        price(&format!("internet_egress.tiers[{i}].price"), t.price)?;
        let last = i + 1 == tiers.len();
        match (t.up_to, last) {
            (None, true) => {}
            (None, false) => {
                return Err(invalid(
                    format!("internet_egress.tiers[{i}].up_to"),
                    "only the last tier may have no upper bound",
                ));
            }
            (Some(_), true) => {
                return Err(invalid(
                    format!("internet_egress.tiers[{i}].up_to"),
                    "the last tier must have no upper bound, so every volume has a price",
                ));
            }
            (Some(limit), false) if !(limit.is_finite() && limit > floor) => {
                return Err(invalid(
                    format!("internet_egress.tiers[{i}].up_to"),
                    &format!("must be greater than the previous tier's bound ({floor})"),
                ));
            }
            (Some(limit), false) => floor = limit,
        }
    }
    Ok(())
}
