//! Prices network traffic and allocates its cost, the way Kubecost's Allocation view and
//! OpenCost's allocation API do for network.
//!
//! - [`pricing`]: built-in price sheets for AWS, GCP and Azure (with sources and dates), the
//!   OpenCost defaults, and pricing files that override any price;
//! - [`window`]: allocation windows (`1h`, `7d`, `today`, RFC 3339 ranges), split by month;
//! - [`allocate`]: bytes per pod × direction × class × service, priced and summed by namespace,
//!   workload, pod, node or label, with shares and a monthly projection;
//! - [`edges`]: workload pairs that cross zones or regions, priced, with what would remove the
//!   cost (topology-aware routing, co-location);
//! - [`endpoints`]: traffic to cloud services through the NAT gateway, and what a VPC endpoint
//!   would save on it;
//! - [`peers`]: one workload's edges of every class, for a drill-down;
//! - [`zones`]: the zone × zone matrix of bytes and cost from the pair counters.
//!
//! What it does not do: fetch the bytes. A backend (Prometheus, or the embedded store) turns
//! counters into [`allocate::SegmentUsage`]; this crate only does arithmetic on them.
//!
//! ```
//! use netcost_cost::pricing::PriceSheet;
//! let aws = PriceSheet::aws();
//! // The first 100 GB of the month are free; the next 900 GB cost $0.09 each.
//! let cost = aws.internet_egress_cost(0.0, 1_000.0);
//! assert!((cost - 81.0).abs() < 1e-9);
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod allocate;
pub mod edges;
pub mod endpoints;
pub mod peers;
pub mod pricing;
#[cfg(test)]
mod test_pairs;
pub mod window;
pub mod zones;
