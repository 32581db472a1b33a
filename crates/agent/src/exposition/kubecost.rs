//! The Kubecost-compatible families, which are the contract: dashboards, recording rules and
//! Kubecost's own cost model read them, so names, types and label sets stay exactly those of
//! Kubecost's network-costs daemonset. Two labels are netcost's additions: `nat_gateway` on every
//! series, and `remote_region` only on cross-region series that know the far region (so every
//! other series keeps exactly Kubecost's label set).
//!
//! What it does not do: netcost's own families ([`super::operational`]).

use std::fmt;

use netcost_core::aggregate::ExportedSeries;
use netcost_core::class::Direction;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::Exposition;

/// The pod byte counters, and the parse figures Kubecost's daemonset exports.
pub(super) fn encode(x: &Exposition, encoder: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
    let s = &x.snapshot;
    for (direction, name, help) in [
        (
            Direction::Egress,
            "kubecost_pod_network_egress_bytes",
            "Bytes sent by a pod on this node, by class of the remote end.",
        ),
        (
            Direction::Ingress,
            "kubecost_pod_network_ingress_bytes",
            "Bytes received by a pod on this node, by class of the remote end.",
        ),
    ] {
        let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for series in s.series.iter().filter(|x| x.direction == direction) {
            let Some(pod) = &series.pod else { continue };
            let who = [
                ("pod_name", &*pod.name),
                ("namespace", &*pod.namespace),
                ("uid", &*pod.uid),
            ];
            encode_traffic(&mut metric, &who, series)?;
        }
    }
    {
        let metric = encoder.encode_descriptor(
            "kubecost_network_costs_parsed_entries",
            "Conntrack entries read by the last dump.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(s.stats.last_dump_entries as i64).encode(metric)?;
    }
    let metric = encoder.encode_descriptor(
        "kubecost_network_costs_parse_time",
        "Milliseconds the last cycle took (dump, deltas, attribution, classification).",
        None,
        MetricType::Gauge,
    )?;
    ConstGauge::new(x.timing.cycle_seconds * 1000.0).encode(metric)
}

/// One byte counter series: `who` (the pod, or the node) followed by Kubecost's class labels,
/// `service`, `nat_gateway` and, when known, `remote_region`. Shared with the node families, which
/// carry the same labels after `node`.
pub(super) fn encode_traffic(
    metric: &mut MetricEncoder<'_>,
    who: &[(&str, &str)],
    series: &ExportedSeries,
) -> Result<(), fmt::Error> {
    let (internet, same_zone, same_region) = series.class.kubecost_labels();
    let class = [
        ("internet", internet),
        ("same_zone", same_zone),
        ("same_region", same_region),
        ("service", series.service.as_deref().unwrap_or("")),
        (
            "nat_gateway",
            if series.nat_gateway { "true" } else { "false" },
        ),
        (
            "remote_region",
            series.remote_region.as_deref().unwrap_or(""),
        ),
    ];
    // `remote_region` is only ever set on cross-region series; leaving it off the others keeps
    // exactly Kubecost's label set, and the scrape as small as it was.
    let class = match series.remote_region {
        Some(_) => &class[..],
        None => &class[..class.len() - 1],
    };
    ConstCounter::new(series.value).encode(metric.encode_family(&(who, class))?)
}
