//! Renders a pipeline [`Snapshot`] as Prometheus text: the Kubecost-compatible families, which
//! are the contract (`kubecost`: exactly the names and labels Kubecost's network-costs
//! daemonset exports, see docs/architecture.md), and netcost's own operational families
//! (`operational`: most of them one row of a table).
//!
//! Counters are rendered from the snapshot on every scrape (a `Collector`), rather than kept in
//! live `Family` objects, because the pipeline decides when a series exists: at zero before its
//! first bytes, and gone after a pod's grace period.
//!
//! [`render`] is the one way out, for `/metrics` and for tests alike; [`render_collectors`]
//! serves the hooks' collectors alone while the agent waits to start.

mod kubecost;
mod operational;

use std::fmt;
use std::sync::Arc;

use netcost_conntrack::EventStatus;
use netcost_conntrack::sock_owner::SocketOwnerStatus;
use netcost_core::pipeline::Snapshot;
use netcost_core::topology::Topology;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

use crate::cloud::CloudStatus;

/// Timing of the last cycle, measured by the runner (the pipeline has no clock of its own).
#[derive(Debug, Clone, Copy, Default)]
pub struct CycleTiming {
    /// Wall time of the last dump cycle, in seconds.
    pub cycle_seconds: f64,
    /// Checkpoint writes that failed.
    pub checkpoint_failures: u64,
    /// Nodes of the current topology without a zone label.
    pub nodes_without_zone: u64,
    /// Topologies received from the Kubernetes API after the first.
    pub topology_updates: u64,
    /// When the last dump cycle ended (Unix time, seconds); 0 before the first.
    pub last_cycle_unix_seconds: f64,
    /// Dump cycles that failed.
    pub cycle_failures: u64,
}

/// What one scrape renders.
#[derive(Debug, Clone)]
pub struct Exposition {
    /// The pipeline's counters.
    pub snapshot: Arc<Snapshot>,
    /// The runner's figures.
    pub timing: CycleTiming,
    /// The local pods, for `netcost_pod_info`.
    pub pods: Arc<Vec<PodMeta>>,
    /// The DESTROY event reader's live figures (netlink source only).
    pub events: Option<Arc<EventStatus>>,
    /// Whether hostNetwork pods' bytes are told from the node's by socket, and how it goes.
    pub host_network: HostNetworkStatus,
}

/// Whether hostNetwork pods' bytes are looked up by socket.
#[derive(Debug, Clone)]
pub enum HostNetworkStatus {
    /// On, with the resolver's live figures.
    On(Arc<SocketOwnerStatus>),
    /// Off, and why: a short fixed label (`off`, `cgroup_v1`, `cgroup_unreadable`,
    /// `sock_diag_unavailable`).
    Off(&'static str),
}

impl Default for HostNetworkStatus {
    fn default() -> Self {
        HostNetworkStatus::Off("off")
    }
}

/// Every reason [`HostNetworkStatus::Off`] may give, for series created at zero.
pub const HOST_NETWORK_OFF_REASONS: [&str; 4] = [
    "off",
    "cgroup_v1",
    "cgroup_unreadable",
    "sock_diag_unavailable",
];

/// What `netcost_pod_info` says about a local pod: where it runs and which workload owns it, so
/// that PromQL (and `netcost serve`) can sum cost by workload, node or region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodMeta {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Pod uid.
    pub uid: String,
    /// Node name.
    pub node: String,
    /// Zone of the node, empty if unknown.
    pub zone: String,
    /// Region of the node, empty if unknown.
    pub region: String,
    /// Owning controller kind (after ReplicaSet → Deployment, Job → CronJob), empty if none.
    pub owner_kind: String,
    /// Owning controller name, empty if none.
    pub owner_name: String,
}

/// The metadata of the pods `node` runs, from `topology`.
pub fn pod_metadata(topology: &Topology, node: &str) -> Vec<PodMeta> {
    let locality = topology
        .node(node)
        .map(|n| n.locality.clone())
        .unwrap_or_default();
    let text = |v: &Option<Arc<str>>| v.as_deref().unwrap_or("").to_owned();
    topology
        .pods_on_node(node)
        .map(|pod| PodMeta {
            namespace: pod.namespace.to_string(),
            name: pod.name.to_string(),
            uid: pod.uid.to_string(),
            node: node.to_owned(),
            zone: text(&locality.zone),
            region: text(&locality.region),
            owner_kind: pod
                .owner
                .as_ref()
                .map(|o| o.kind.to_string())
                .unwrap_or_default(),
            owner_name: pod
                .owner
                .as_ref()
                .map(|o| o.name.to_string())
                .unwrap_or_default(),
        })
        .collect()
}

/// Renders `exposition`, the cloud ranges' status `cloud` and `more` (the hooks' collectors) in
/// the Prometheus text format (version 0.0.4).
pub fn render(
    exposition: Exposition,
    cloud: Arc<CloudStatus>,
    more: &[Arc<dyn Collector>],
) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(exposition));
    registry.register_collector(Box::new(operational::CloudMetrics(cloud)));
    encode_with(registry, more)
}

/// `collectors` alone, for the `/metrics` served before the agent has started counting.
pub fn render_collectors(collectors: &[Arc<dyn Collector>]) -> Result<String, fmt::Error> {
    encode_with(Registry::default(), collectors)
}

/// `registry` followed by `more`, as text.
fn encode_with(mut registry: Registry, more: &[Arc<dyn Collector>]) -> Result<String, fmt::Error> {
    for collector in more {
        registry.register_collector(Box::new(Hooked(collector.clone())));
    }
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

/// A hook's collector, shared with its owner, which keeps updating it.
#[derive(Debug)]
struct Hooked(Arc<dyn Collector>);

impl Collector for Hooked {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        self.0.encode(encoder)
    }
}

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        kubecost::encode(self, &mut encoder)?;
        operational::encode(self, &mut encoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netcost_conntrack::ReliableEvents;
    use netcost_core::aggregate::ExportedSeries;
    use netcost_core::aggregate::PodLabels;
    use netcost_core::attribute::Unattributed;
    use netcost_core::class::Direction;
    use netcost_core::class::TrafficClass;
    use netcost_core::pairs::{ExportedPair, PairKey, Peer};
    use netcost_core::pipeline::PipelineStats;

    /// What `/metrics` serves with no cloud provider switched on and no hooks.
    fn render_alone(exposition: Exposition) -> Result<String, fmt::Error> {
        render(exposition, Arc::new(CloudStatus::default()), &[])
    }

    fn snapshot() -> Snapshot {
        let pod = PodLabels {
            namespace: "shop".into(),
            name: "web-1".into(),
            uid: "u-1".into(),
        };
        let mut stats = PipelineStats {
            last_dump_entries: 42,
            ..PipelineStats::default()
        };
        stats.unattributed_bytes.insert(Unattributed::Transit, 7);
        Snapshot {
            generation: 3,
            node_name: "node-a".into(),
            series: vec![
                ExportedSeries {
                    pod: Some(pod.clone()),
                    direction: Direction::Egress,
                    class: TrafficClass::CrossZone,
                    service: None,
                    remote_region: None,
                    nat_gateway: false,
                    value: 1234,
                },
                ExportedSeries {
                    pod: Some(pod.clone()),
                    direction: Direction::Egress,
                    class: TrafficClass::CrossRegion,
                    service: None,
                    remote_region: Some("eu-west-1".into()),
                    nat_gateway: true,
                    value: 4321,
                },
                ExportedSeries {
                    pod: Some(pod),
                    direction: Direction::Ingress,
                    class: TrafficClass::Internet,
                    service: Some("aws-s3".into()),
                    remote_region: None,
                    nat_gateway: false,
                    value: 18_446_744_073_709_551_000,
                },
                ExportedSeries {
                    pod: None,
                    direction: Direction::Egress,
                    class: TrafficClass::CrossRegion,
                    service: None,
                    remote_region: None,
                    nat_gateway: false,
                    value: 5,
                },
                ExportedSeries {
                    pod: None,
                    direction: Direction::Egress,
                    class: TrafficClass::CrossRegion,
                    service: None,
                    remote_region: Some("us-east-2".into()),
                    nat_gateway: false,
                    value: 6,
                },
            ],
            pairs: vec![ExportedPair {
                key: PairKey {
                    client: Peer::new("shop", "Deployment", "web", "us-east-1a"),
                    server: Peer::new("shop", "StatefulSet", "db", "us-east-1b"),
                    class: TrafficClass::CrossZone,
                },
                value: 777,
            }],
            stats,
            node_has_zone: true,
        }
    }

    #[test]
    fn workload_pairs_and_agent_state_are_exported() {
        let text = rendered();
        assert!(text.contains(
            "netcost_workload_traffic_bytes_total{src_namespace=\"shop\",src_kind=\"Deployment\",src_workload=\"web\",src_zone=\"us-east-1a\",dst_namespace=\"shop\",dst_kind=\"StatefulSet\",dst_workload=\"db\",dst_zone=\"us-east-1b\",class=\"cross-zone\"} 777\n"
        ), "{text}");
        assert!(
            text.contains("netcost_agent_info{node=\"node-a\",version=\""),
            "{text}"
        );
        assert!(
            text.contains("netcost_last_cycle_timestamp_seconds 1764000000.5\n"),
            "{text}"
        );
        assert!(text.contains("netcost_cycle_failures_total 1\n"), "{text}");
    }

    fn rendered() -> String {
        render_alone(Exposition {
            snapshot: Arc::new(snapshot()),
            timing: CycleTiming {
                cycle_seconds: 0.25,
                checkpoint_failures: 0,
                nodes_without_zone: 2,
                topology_updates: 3,
                last_cycle_unix_seconds: 1_764_000_000.5,
                cycle_failures: 1,
            },
            pods: Arc::new(vec![PodMeta {
                namespace: "shop".into(),
                name: "web-1".into(),
                uid: "u-1".into(),
                node: "node-a".into(),
                zone: "us-east-1a".into(),
                region: "us-east-1".into(),
                owner_kind: "Deployment".into(),
                owner_name: "web".into(),
            }]),
            events: None,
            host_network: HostNetworkStatus::default(),
        })
        .unwrap_or_else(|e| panic!("render: {e}"))
    }

    #[test]
    fn each_local_pod_has_an_info_series_naming_its_node_and_workload() {
        let text = rendered();
        assert!(text.contains(
            "netcost_pod_info{namespace=\"shop\",pod_name=\"web-1\",uid=\"u-1\",node=\"node-a\",zone=\"us-east-1a\",region=\"us-east-1\",owner_kind=\"Deployment\",owner_name=\"web\"} 1\n"
        ), "{text}");
    }

    #[test]
    fn kubecost_metrics_have_the_exact_names_and_labels_of_the_design() {
        let text = rendered();
        assert!(
            text.contains("# TYPE kubecost_pod_network_egress_bytes_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE kubecost_pod_network_ingress_bytes_total counter\n"),
            "{text}"
        );
        assert!(text.contains(
            "kubecost_pod_network_egress_bytes_total{pod_name=\"web-1\",namespace=\"shop\",uid=\"u-1\",internet=\"false\",same_zone=\"false\",same_region=\"true\",service=\"\",nat_gateway=\"false\"} 1234\n"
        ), "{text}");
        assert!(text.contains("# TYPE kubecost_network_costs_parsed_entries gauge\nkubecost_network_costs_parsed_entries 42\n"), "{text}");
        assert!(text.contains("# TYPE kubecost_network_costs_parse_time gauge\nkubecost_network_costs_parse_time 250.0\n"), "{text}");
    }

    #[test]
    fn large_counters_are_rendered_exactly_not_as_floats() {
        let text = rendered();
        assert!(text.contains(
            "kubecost_pod_network_ingress_bytes_total{pod_name=\"web-1\",namespace=\"shop\",uid=\"u-1\",internet=\"true\",same_zone=\"false\",same_region=\"false\",service=\"aws-s3\",nat_gateway=\"false\"} 18446744073709551000\n"
        ), "{text}");
    }

    #[test]
    fn cloud_ranges_age_size_and_failures_are_exported_per_provider() {
        use crate::cloud::ProviderStatus;
        use netcost_core::cloud::Provider;
        let cloud = CloudStatus {
            providers: vec![ProviderStatus {
                provider: Provider::Aws,
                source: "builtin",
                published_seconds: 1_753_388_594,
                prefixes: 13_344,
                failures: [("read", 2)].into_iter().collect(),
            }],
        };
        let text = render(
            Exposition {
                snapshot: Arc::new(snapshot()),
                timing: CycleTiming::default(),
                pods: Arc::default(),
                events: None,
                host_network: HostNetworkStatus::default(),
            },
            Arc::new(cloud),
            &[],
        )
        .unwrap_or_else(|e| panic!("render: {e}"));
        assert!(text.contains("netcost_cloud_ranges_timestamp_seconds{provider=\"aws\",source=\"builtin\"} 1753388594\n"), "{text}");
        assert!(
            text.contains("netcost_cloud_ranges_prefixes{provider=\"aws\"} 13344\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "netcost_cloud_ranges_refresh_failures_total{provider=\"aws\",reason=\"read\"} 2\n"
            ),
            "{text}"
        );
        // The pipeline's metrics are still there.
        assert!(
            text.contains("kubecost_network_costs_parsed_entries 42\n"),
            "{text}"
        );
    }

    #[test]
    fn nodes_without_zone_and_topology_updates_are_exported() {
        let text = rendered();
        assert!(text.contains("netcost_nodes_without_zone 2\n"), "{text}");
        assert!(
            text.contains("netcost_topology_updates_total 3\n"),
            "{text}"
        );
    }

    #[test]
    fn node_traffic_and_unattributed_bytes_are_visible() {
        let text = rendered();
        assert!(text.contains(
            "netcost_node_network_egress_bytes_total{node=\"node-a\",internet=\"false\",same_zone=\"false\",same_region=\"false\",service=\"\",nat_gateway=\"false\"} 5\n"
        ), "{text}");
        // The far region, only on the series that know it.
        assert!(text.contains(
            "netcost_node_network_egress_bytes_total{node=\"node-a\",internet=\"false\",same_zone=\"false\",same_region=\"false\",service=\"\",nat_gateway=\"false\",remote_region=\"us-east-2\"} 6\n"
        ), "{text}");
        assert!(text.contains(
            "kubecost_pod_network_egress_bytes_total{pod_name=\"web-1\",namespace=\"shop\",uid=\"u-1\",internet=\"false\",same_zone=\"false\",same_region=\"false\",service=\"\",nat_gateway=\"true\",remote_region=\"eu-west-1\"} 4321\n"
        ), "{text}");
        assert_eq!(text.matches("remote_region=").count(), 2, "{text}");
        assert!(
            text.contains("netcost_unattributed_bytes_total{reason=\"transit\"} 7\n"),
            "{text}"
        );
        assert!(
            text.contains("netcost_unattributed_bytes_total{reason=\"loopback\"} 0\n"),
            "{text}"
        );
    }

    #[test]
    fn the_event_readers_mode_and_valve_are_exported() {
        let text = render_alone(Exposition {
            snapshot: Arc::new(snapshot()),
            timing: CycleTiming::default(),
            pods: Arc::default(),
            events: Some(Arc::new(EventStatus::new(ReliableEvents::On))),
            host_network: HostNetworkStatus::default(),
        })
        .unwrap_or_else(|e| panic!("render: {e}"));
        for line in [
            "netcost_conntrack_events_mode{mode=\"on\"} 1\n",
            "netcost_conntrack_events_mode{mode=\"auto\"} 0\n",
            "netcost_conntrack_events_reliable 0\n",
            "netcost_conntrack_events_valve_trips_total 0\n",
            "netcost_conntrack_events_degraded_seconds_total 0.0\n",
            "netcost_conntrack_table_fill_ratio 0.0\n",
            "netcost_conntrack_events_dropped_total{outcome=\"lost\"} 0\n",
            "netcost_conntrack_events_dropped_total{outcome=\"resent\"} 0\n",
        ] {
            assert!(text.contains(line), "{line} missing from {text}");
        }
    }
}
