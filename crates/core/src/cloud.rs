//! Cloud-service tagging: the address ranges that AWS, Google Cloud and Azure publish, turned into
//! one lookup table that implements step 5 of the classification order
//! ([`crate::classify::ProviderRanges`]).
//!
//! - [`parse`] reads the three published formats from bytes ([`parse::aws`], [`parse::gcp`],
//!   [`parse::azure`]) into [`ProviderData`]: a list of [`RangeEntry`] (prefix, service, region).
//! - [`CloudRanges::build`] merges the providers that are switched on into a flat, sorted table of
//!   disjoint address intervals, resolving overlaps once, at build time, by the rules below. A
//!   lookup is then one bucket index and a short binary search, with no allocation.
//! - [`builtin`] is the compact encoding of the table shipped inside the binary (generated from
//!   the July 2025 files; see `examples/gen_cloud_ranges.rs`), used when no current file is
//!   configured or a configured one cannot be read.
//!
//! # Which tag wins
//! For an address covered by several published prefixes:
//! 1. a real service beats a provider's catch-all superset (AWS `AMAZON`, Azure `AzureCloud`,
//!    Google's single `Google Cloud`), whatever the prefix lengths: the most specific *service*
//!    wins over a superset;
//! 2. then the most specific (longest) prefix;
//! 3. on the same prefix, a named service beats AWS `EC2`, which AWS publishes over many ranges
//!    that also carry S3, DynamoDB and others (for example 3.5.140.0/22 is `AMAZON`, `EC2` and
//!    `S3` in the July 2025 file);
//! 4. then a range with a region beats a regionless one (Azure publishes `Storage` beside
//!    `Storage.EastUS` with the same prefixes);
//! 5. then the service name, alphabetically (Azure's `AzureAD` and `AzureIdentity` share 94
//!    prefixes), so that the result never depends on file order.
//!
//! # Classes
//! [`CloudRanges`] implements [`ProviderRanges`]: the range's region decides the class, seen from
//! the local node's region. docs/cloud-services.md gives the reasons and sources:
//! - same region: [`TrafficClass::InZone`] for services that the provider does not bill within a
//!   region (AWS S3 and DynamoDB), [`TrafficClass::CrossZone`] for everything else;
//! - another region of the same provider: [`TrafficClass::CrossRegion`];
//! - a regionless (global) range, a node whose region is unknown, or a node that is not in this
//!   provider's cloud at all: [`TrafficClass::Internet`], with the service tag.
//!
//! What it does not do: read files or URLs (the agent does), apply the user's `services` list
//! (the [`crate::classify::Classifier`] puts it first), or price anything.

pub mod builtin;
pub mod parse;
mod table;

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::class::TrafficClass;
use crate::classify::{Classification, ProviderRanges};
use crate::topology::Locality;

pub use crate::provider::Provider;
pub use table::CloudRanges;

/// How broad a published service is, for the priority rules in the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Breadth {
    /// A provider's catch-all: AWS `AMAZON`, Azure `AzureCloud`, Google's `Google Cloud`.
    Superset,
    /// A service published over ranges that also carry narrower services: AWS `EC2`.
    Broad,
    /// A named service such as S3 or Azure Storage.
    Service,
}

/// One published prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RangeEntry {
    /// The prefix, host bits cleared.
    pub net: IpNet,
    /// The netcost service name, such as `aws-s3` (see docs/cloud-services.md).
    pub service: Arc<str>,
    /// How broad the service is.
    pub breadth: Breadth,
    /// The provider's region, lowercase, or `None` for a global range.
    pub region: Option<Arc<str>>,
}

/// One provider's published ranges, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderData {
    /// Whose ranges.
    pub provider: Provider,
    /// When the provider published the file (Unix seconds), if the file says: AWS `createDate`,
    /// Google `creationTime`. Azure's file carries only a `changeNumber`.
    pub published: Option<u64>,
    /// Every prefix, in file order.
    pub entries: Vec<RangeEntry>,
}

impl ProviderData {
    /// Entries that can change a lookup: of several entries for the same prefix only the winner
    /// by the priority rules matters, so the others are dropped. Sorted by address.
    pub fn compacted(&self) -> ProviderData {
        let mut entries = self.entries.clone();
        entries.sort_by(|a, b| {
            (a.net.network(), a.net.prefix_len())
                .cmp(&(b.net.network(), b.net.prefix_len()))
                .then_with(|| table::rank(b).cmp(&table::rank(a)))
        });
        entries.dedup_by(|later, first| later.net == first.net);
        ProviderData {
            provider: self.provider,
            published: self.published,
            entries,
        }
    }
}

/// Why a ranges file cannot be used. Display names the file (or URL) and the reason.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudError {
    /// Not JSON, truncated, or not the provider's shape.
    #[error("{origin}: not a {provider} ranges file: {reason}")]
    Format {
        /// The file or URL.
        origin: String,
        /// The format expected.
        provider: Provider,
        /// What the JSON reader said, with line and column.
        reason: String,
    },
    /// One field has a value that cannot be used.
    #[error("{origin}: {field}: {reason}")]
    Invalid {
        /// The file or URL.
        origin: String,
        /// Path of the field, such as `prefixes[12].ip_prefix`.
        field: String,
        /// Why.
        reason: String,
    },
    /// The file parsed but holds no prefixes: a fetch that returned an empty document must not
    /// wipe the table.
    #[error("{origin}: holds no prefixes; refusing to replace a table with an empty one")]
    Empty {
        /// The file or URL.
        origin: String,
    },
    /// The built-in table is damaged (only a broken build can cause this).
    #[error("built-in cloud ranges table: {reason}")]
    Builtin {
        /// What is wrong.
        reason: String,
    },
}

impl CloudError {
    /// A short, bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            CloudError::Format { .. } => "format",
            CloudError::Invalid { .. } => "invalid",
            CloudError::Empty { .. } => "empty",
            CloudError::Builtin { .. } => "builtin",
        }
    }
}

/// What a lookup finds: the winning range's service and region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// Whose range.
    pub provider: Provider,
    /// The service name, such as `aws-s3`.
    pub service: Arc<str>,
    /// The provider's region, or `None` for a global range.
    pub region: Option<Arc<str>>,
    /// The class of traffic to this range from a node in the same region.
    pub in_region: TrafficClass,
}

/// Services that the provider does not bill within a region, so that same-region traffic to them
/// is priced like in-zone traffic (free). Source: Amazon EC2 On-Demand pricing, "Data Transfer
/// within the same AWS Region" (<https://aws.amazon.com/ec2/pricing/on-demand/>): data
/// transferred between EC2 and S3, Glacier, DynamoDB, SES, SQS, Kinesis, ECR, SNS or SimpleDB in
/// the same region is free. Of those, only S3 and DynamoDB have their own ranges in
/// `ip-ranges.json`.
const FREE_IN_REGION: [&str; 2] = ["aws-s3", "aws-dynamodb"];

fn in_region_class(service: &str) -> TrafficClass {
    if FREE_IN_REGION.contains(&service) {
        TrafficClass::InZone
    } else {
        // AWS bills same-region traffic to public and Elastic IPs (EC2 ranges) like cross-zone
        // traffic, $0.01/GB each way (same pricing page, "Data Transfer within the same AWS
        // Region"); for the rest, cross-zone is the conservative reading of "same region".
        TrafficClass::CrossZone
    }
}

impl ProviderRanges for CloudRanges {
    fn classify(&self, local: &Locality, remote: IpAddr) -> Option<Classification> {
        let tag = self.lookup(remote)?;
        let class = match (&tag.region, local.region.as_deref()) {
            (Some(theirs), Some(mine)) if **theirs == *mine => tag.in_region,
            // A region of this provider, but not ours: the provider's own backbone, billed as
            // inter-region transfer.
            (Some(_), Some(mine)) if self.has_region(tag.provider, mine) => {
                TrafficClass::CrossRegion
            }
            // Global ranges, nodes of unknown region, and nodes outside this provider's cloud
            // (another cloud, on premises) reach the range over the internet.
            _ => TrafficClass::Internet,
        };
        Some(Classification::new(class, Some(tag.service.clone())).in_region(tag.region.as_ref()))
    }
}
