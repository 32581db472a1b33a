//! Renders a pipeline [`Snapshot`] as Prometheus text: the four Kubecost metrics with exactly the
//! names and labels of DESIGN.md, and netcost's own operational metrics.
//!
//! Counters are rendered from the snapshot on every scrape (a `Collector`), rather than kept in
//! live `Family` objects, because the pipeline decides when a series exists: at zero before its
//! first bytes, and gone after a pod's grace period.

use std::fmt;
use std::sync::Arc;

use netcost_core::aggregate::ExportedSeries;
use netcost_core::attribute::Unattributed;

use crate::cloud::CloudStatus;
use netcost_conntrack::sock_owner::SocketOwnerStatus;
use netcost_conntrack::{EventStatus, ReliableEvents};
use netcost_core::class::Direction;
use netcost_core::pipeline::Snapshot;
use netcost_core::topology::Topology;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

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

/// `netcost_host_network_*`: whether hostNetwork pods' bytes are told apart by socket, why not,
/// and what the lookups cost and found.
fn encode_host_network(
    encoder: &mut DescriptorEncoder,
    status: &HostNetworkStatus,
    pod_bytes: u64,
) -> Result<(), fmt::Error> {
    let (on, reason) = match status {
        HostNetworkStatus::On(_) => (true, None),
        HostNetworkStatus::Off(reason) => (false, Some(*reason)),
    };
    gauge(
        encoder,
        "netcost_host_network_sockets_enabled",
        "1 when hostNetwork pods' bytes are told from the node's by the socket that owns them (--host-network-sockets); 0 books them all to the node.",
        i64::from(on),
    )?;
    {
        let mut metric = encoder.encode_descriptor(
            "netcost_host_network_sockets_off",
            "1 for the reason socket lookups are off: off (the flag), cgroup_v1 (no cgroup2 mount: sockets carry no pod's cgroup id), cgroup_unreadable, sock_diag_unavailable.",
            None,
            MetricType::Gauge,
        )?;
        for label in HOST_NETWORK_OFF_REASONS {
            ConstGauge::new(i64::from(reason == Some(label)))
                .encode(metric.encode_family(&[("reason", label)])?)?;
        }
    }
    counter(
        encoder,
        "netcost_host_network_pod_bytes",
        "Bytes at a node address booked to a hostNetwork pod by its socket (each end once); also in kubecost_pod_network_* of that pod.",
        pod_bytes,
    )?;
    let HostNetworkStatus::On(st) = status else {
        return Ok(());
    };
    {
        let mut metric = encoder.encode_descriptor(
            "netcost_host_network_socket_lookups",
            "Node ends of flows looked up, by result: pod (a pod cgroup's socket), node (a socket of no pod), no_socket (none found: closed, forwarded), kept (an answer kept from the flow's start).",
            None,
            MetricType::Counter,
        )?;
        for (result, value) in st.lookups() {
            ConstCounter::new(value).encode(metric.encode_family(&[("result", result)])?)?;
        }
    }
    let (new_lookups, new_matches) = st.new_events();
    counter(
        encoder,
        "netcost_host_network_new_flow_lookups",
        "Node ends of new flows looked up on their conntrack NEW event.",
        new_lookups,
    )?;
    counter(
        encoder,
        "netcost_host_network_new_flow_matches",
        "Node ends of new flows whose socket, looked up on the NEW event, is a pod's.",
        new_matches,
    )?;
    counter(
        encoder,
        "netcost_host_network_new_events_lost",
        "Times the kernel dropped conntrack NEW events (ENOBUFS); those flows are looked up at the next dump instead.",
        st.new_events_lost(),
    )?;
    let (dumps, dump_sockets, dump_seconds) = st.dumps();
    counter(
        encoder,
        "netcost_host_network_socket_dumps",
        "inet_diag dumps of the node's sockets (at most one per cycle, batch mode).",
        dumps,
    )?;
    {
        let metric = encoder.encode_descriptor(
            "netcost_host_network_socket_dump_seconds",
            "Time spent in socket dumps, joining included.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(dump_seconds).encode(metric)?;
    }
    gauge(
        encoder,
        "netcost_host_network_socket_dump_sockets",
        "Sockets in the last dump.",
        dump_sockets as i64,
    )?;
    let (queries, query_seconds) = st.queries();
    counter(
        encoder,
        "netcost_host_network_socket_queries",
        "Single-socket inet_diag queries (NEW events, and per-flow mode).",
        queries,
    )?;
    {
        let metric = encoder.encode_descriptor(
            "netcost_host_network_socket_query_seconds",
            "Time spent in single-socket queries.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(query_seconds).encode(metric)?;
    }
    let (garbage, errors) = st.garbage_and_errors();
    counter(
        encoder,
        "netcost_host_network_kernel_garbage",
        "inet_diag or NEW event messages skipped as malformed.",
        garbage,
    )?;
    counter(
        encoder,
        "netcost_host_network_lookup_errors",
        "Socket dumps and queries that failed; their bytes stay with the node.",
        errors,
    )?;
    let (kept, kept_full, table_full) = st.memory();
    gauge(
        encoder,
        "netcost_host_network_kept_answers",
        "Flows whose socket's pod is kept with them.",
        kept as i64,
    )?;
    {
        let mut metric = encoder.encode_descriptor(
            "netcost_host_network_caps_reached",
            "Answers not kept (kept_answers: the cap of kept answers) and sockets left out of a dump's join table (join_table), because a bound was reached.",
            None,
            MetricType::Counter,
        )?;
        for (what, value) in [("kept_answers", kept_full), ("join_table", table_full)] {
            ConstCounter::new(value).encode(metric.encode_family(&[("cap", what)])?)?;
        }
    }
    let (walks, pod_cgroups, incomplete) = st.cgroups();
    counter(
        encoder,
        "netcost_host_network_cgroup_walks",
        "Walks of the cgroup2 hierarchy (at start, and on an unknown cgroup id at most once a second).",
        walks,
    )?;
    counter(
        encoder,
        "netcost_host_network_cgroup_walks_incomplete",
        "Walks cut short by their bounds or an unreadable directory.",
        incomplete,
    )?;
    gauge(
        encoder,
        "netcost_host_network_pod_cgroups",
        "Pod and container cgroups found by the last walk.",
        pod_cgroups as i64,
    )
}

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

/// `netcost_conntrack_events_*`: whether DESTROY events are delivered reliably, what the valve
/// did, and what the kernel could not queue.
fn encode_event_status(
    encoder: &mut DescriptorEncoder,
    events: &EventStatus,
) -> Result<(), fmt::Error> {
    {
        let mut metric = encoder.encode_descriptor(
            "netcost_conntrack_events_mode",
            "The configured reliability of DESTROY events (--reliable-events): 1 for the mode in use.",
            None,
            MetricType::Gauge,
        )?;
        for mode in [
            ReliableEvents::Auto,
            ReliableEvents::On,
            ReliableEvents::Off,
        ] {
            ConstGauge::new(i64::from(events.mode() == mode))
                .encode(metric.encode_family(&[("mode", mode.as_str())])?)?;
        }
    }
    gauge(
        encoder,
        "netcost_conntrack_events_reliable",
        "1 while DESTROY events are delivered reliably (the kernel keeps an undelivered entry and re-sends its event).",
        i64::from(events.reliable()),
    )?;
    {
        let metric = encoder.encode_descriptor(
            "netcost_conntrack_events_degraded_seconds",
            "Seconds spent with reliable delivery off (the valve open, or --reliable-events off): events that overflow are lost.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(events.degraded_seconds()).encode(metric)?;
    }
    counter(
        encoder,
        "netcost_conntrack_events_valve_trips",
        "Times the valve turned reliable delivery off because the conntrack table neared full.",
        events.valve_trips(),
    )?;
    gauge_f64(
        encoder,
        "netcost_conntrack_table_fill_ratio",
        "nf_conntrack_count / nf_conntrack_max at the valve's last check.",
        events.table_fill(),
    )?;
    let mut metric = encoder.encode_descriptor(
        "netcost_conntrack_events_dropped",
        "DESTROY events the events socket could not queue, by outcome: resent (reliable delivery: the kernel kept the entry and sent the event again) or lost.",
        None,
        MetricType::Counter,
    )?;
    for (outcome, value) in [
        ("resent", events.dropped_and_resent()),
        ("lost", events.dropped_and_lost()),
    ] {
        ConstCounter::new(value).encode(metric.encode_family(&[("outcome", outcome)])?)?;
    }
    Ok(())
}

/// Renders `exposition` in the Prometheus text format (version 0.0.4).
pub fn render(exposition: Exposition) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(exposition));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

/// Renders `exposition` and the cloud ranges' `cloud` status together.
pub fn render_with_cloud(
    exposition: Exposition,
    cloud: Arc<CloudStatus>,
) -> Result<String, fmt::Error> {
    render_all(exposition, cloud, &[])
}

/// [`render_with_cloud`] followed by `more` (the hooks' collectors).
pub fn render_all(
    exposition: Exposition,
    cloud: Arc<CloudStatus>,
    more: &[Arc<dyn Collector>],
) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(exposition));
    registry.register_collector(Box::new(CloudMetrics(cloud)));
    for collector in more {
        registry.register_collector(Box::new(Hooked(collector.clone())));
    }
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

/// `collectors` alone, for the `/metrics` served before the agent has started counting.
pub fn render_collectors(collectors: &[Arc<dyn Collector>]) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    for collector in collectors {
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

/// `netcost_cloud_ranges_*`: which table is in use per provider, how old it is, and failed
/// refreshes. Labels are bounded: three providers, three sources, six reasons.
#[derive(Debug)]
struct CloudMetrics(Arc<CloudStatus>);

impl Collector for CloudMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let providers = &self.0.providers;
        {
            let mut metric = encoder.encode_descriptor(
                "netcost_cloud_ranges_timestamp_seconds",
                "When the cloud ranges in use were published (Unix time), by provider and where they came from (builtin, file, url).",
                None,
                MetricType::Gauge,
            )?;
            for p in providers {
                let labels = [("provider", p.provider.as_str()), ("source", p.source)];
                ConstGauge::new(p.published_seconds as i64)
                    .encode(metric.encode_family(&labels)?)?;
            }
        }
        {
            let mut metric = encoder.encode_descriptor(
                "netcost_cloud_ranges_prefixes",
                "Published prefixes in the cloud ranges in use, by provider.",
                None,
                MetricType::Gauge,
            )?;
            for p in providers {
                ConstGauge::new(p.prefixes as i64)
                    .encode(metric.encode_family(&[("provider", p.provider.as_str())])?)?;
            }
        }
        let mut metric = encoder.encode_descriptor(
            "netcost_cloud_ranges_refresh_failures",
            "Reads of a configured cloud ranges file or URL that failed, by provider and reason; the last good table stays in use.",
            None,
            MetricType::Counter,
        )?;
        for p in providers {
            for (reason, count) in &p.failures {
                let labels = [("provider", p.provider.as_str()), ("reason", *reason)];
                ConstCounter::new(*count).encode(metric.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// `labels`, whose last label is `remote_region`, without that label unless the series knows
/// the far region. It is only ever set on cross-region series, so every other series keeps
/// exactly Kubecost's label set (and the scrape stays as small as it was).
fn with_remote_region_if_known<'a>(
    labels: &'a [(&'a str, &'a str)],
    series: &ExportedSeries,
) -> &'a [(&'a str, &'a str)] {
    if series.remote_region.is_some() {
        labels
    } else {
        &labels[..labels.len() - 1]
    }
}

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let s = &self.snapshot;
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
                let (internet, same_zone, same_region) = series.class.kubecost_labels();
                let labels = [
                    ("pod_name", &*pod.name),
                    ("namespace", &*pod.namespace),
                    ("uid", &*pod.uid),
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
                let labels = with_remote_region_if_known(&labels, series);
                ConstCounter::new(series.value).encode(metric.encode_family(&labels)?)?;
            }
        }
        for (direction, name, help) in [
            (
                Direction::Egress,
                "netcost_node_network_egress_bytes",
                "Bytes sent by the node itself and its hostNetwork pods, by class of the remote end.",
            ),
            (
                Direction::Ingress,
                "netcost_node_network_ingress_bytes",
                "Bytes received by the node itself and its hostNetwork pods, by class of the remote end.",
            ),
        ] {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for series in s
                .series
                .iter()
                .filter(|x| x.direction == direction && x.pod.is_none())
            {
                let (internet, same_zone, same_region) = series.class.kubecost_labels();
                let labels = [
                    ("node", &*s.node_name),
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
                let labels = with_remote_region_if_known(&labels, series);
                ConstCounter::new(series.value).encode(metric.encode_family(&labels)?)?;
            }
        }

        {
            let mut metric = encoder.encode_descriptor(
                "netcost_workload_traffic_bytes",
                "Bytes between a client and a server workload, by class: each agent adds what its local end sent, plus what it received from ends outside the cluster. Capped by --max-workload-pairs; see the README.",
                None,
                MetricType::Counter,
            )?;
            for pair in &s.pairs {
                let (c, v) = (&pair.key.client, &pair.key.server);
                let labels = [
                    ("src_namespace", &*c.namespace),
                    ("src_kind", &*c.kind),
                    ("src_workload", &*c.name),
                    ("src_zone", &*c.zone),
                    ("dst_namespace", &*v.namespace),
                    ("dst_kind", &*v.kind),
                    ("dst_workload", &*v.name),
                    ("dst_zone", &*v.zone),
                    ("class", pair.key.class.as_str()),
                ];
                ConstCounter::new(pair.value).encode(metric.encode_family(&labels)?)?;
            }
        }
        gauge(
            &mut encoder,
            "netcost_workload_pairs",
            "Workload pair series this agent exports, including the __other__ ones.",
            s.stats.workload_pairs as i64,
        )?;
        counter(
            &mut encoder,
            "netcost_workload_pairs_over_limit",
            "Times a new workload pair found the cap reached; its bytes went to the __other__ pair of its class.",
            s.stats.workload_pairs_over_limit,
        )?;
        {
            let mut metric = encoder.encode_descriptor(
                "netcost_agent_info",
                "1, labelled with the node this agent runs on and its version.",
                None,
                MetricType::Gauge,
            )?;
            let labels = [
                ("node", &*s.node_name),
                ("version", env!("CARGO_PKG_VERSION")),
            ];
            ConstGauge::new(1_i64).encode(metric.encode_family(&labels)?)?;
        }
        gauge_f64(
            &mut encoder,
            "netcost_last_cycle_timestamp_seconds",
            "When the last dump cycle ended, in Unix seconds; 0 before the first.",
            self.timing.last_cycle_unix_seconds,
        )?;
        counter(
            &mut encoder,
            "netcost_cycle_failures",
            "Dump cycles that failed (the error is logged); counting resumes with the next cycle.",
            self.timing.cycle_failures,
        )?;
        {
            let mut metric = encoder.encode_descriptor(
                "netcost_pod_info",
                "1 for each pod on this node: its node, zone, region and owning workload.",
                None,
                MetricType::Gauge,
            )?;
            for pod in self.pods.iter() {
                let labels = [
                    ("namespace", pod.namespace.as_str()),
                    ("pod_name", pod.name.as_str()),
                    ("uid", pod.uid.as_str()),
                    ("node", pod.node.as_str()),
                    ("zone", pod.zone.as_str()),
                    ("region", pod.region.as_str()),
                    ("owner_kind", pod.owner_kind.as_str()),
                    ("owner_name", pod.owner_name.as_str()),
                ];
                ConstGauge::new(1_i64).encode(metric.encode_family(&labels)?)?;
            }
        }
        let st = &s.stats;
        gauge(
            &mut encoder,
            "kubecost_network_costs_parsed_entries",
            "Conntrack entries read by the last dump.",
            st.last_dump_entries as i64,
        )?;
        gauge_f64(
            &mut encoder,
            "kubecost_network_costs_parse_time",
            "Milliseconds the last cycle took (dump, deltas, attribution, classification).",
            self.timing.cycle_seconds * 1000.0,
        )?;
        gauge_f64(
            &mut encoder,
            "netcost_cycle_duration_seconds",
            "Seconds the last cycle took.",
            self.timing.cycle_seconds,
        )?;
        gauge(
            &mut encoder,
            "netcost_conntrack_entries",
            "Live conntrack entries in the last dump.",
            st.last_dump_entries as i64,
        )?;
        gauge(
            &mut encoder,
            "netcost_tracked_flows",
            "Entries with a per-flow baseline after the last cycle.",
            st.tracked_entries as i64,
        )?;
        gauge(
            &mut encoder,
            "netcost_node_zone_known",
            "1 when this node has a zone label; 0 means in-cluster traffic cannot be classified by zone.",
            i64::from(s.node_has_zone),
        )?;
        gauge(
            &mut encoder,
            "netcost_nodes_without_zone",
            "Nodes of the cluster without a zone label; traffic with their pods is classified by the config's address lists.",
            self.timing.nodes_without_zone as i64,
        )?;
        counter(
            &mut encoder,
            "netcost_topology_updates",
            "Topologies received from the Kubernetes API watchers after the first.",
            self.timing.topology_updates,
        )?;
        counter(
            &mut encoder,
            "netcost_cycles",
            "Completed dump cycles.",
            st.cycles,
        )?;
        counter(
            &mut encoder,
            "netcost_conntrack_destroy_events",
            "DESTROY events read.",
            st.destroy_events,
        )?;
        counter(
            &mut encoder,
            "netcost_conntrack_events_lost",
            "Times the kernel reported dropped conntrack events (ENOBUFS), which happens only while delivery is not reliable.",
            st.events_lost,
        )?;
        if let Some(events) = &self.events {
            encode_event_status(&mut encoder, events)?;
        }
        encode_host_network(&mut encoder, &self.host_network, st.host_network_pod_bytes)?;
        counter(
            &mut encoder,
            "netcost_flows_vanished",
            "Entries that left the table without a DESTROY event; bytes since their last dump are lost.",
            st.vanished,
        )?;
        counter(
            &mut encoder,
            "netcost_checkpoint_failures",
            "Checkpoint writes that failed.",
            self.timing.checkpoint_failures,
        )?;
        {
            let mut metric = encoder.encode_descriptor(
                "netcost_conntrack_entries_skipped",
                "Entries skipped, by reason: malformed (garbage from the kernel) or unsupported (not IPv4/IPv6).",
                None,
                MetricType::Counter,
            )?;
            for (reason, value) in [("malformed", st.malformed), ("unsupported", st.unsupported)] {
                ConstCounter::new(value).encode(metric.encode_family(&[("reason", reason)])?)?;
            }
        }
        {
            let mut metric = encoder.encode_descriptor(
                "netcost_unattributed_bytes",
                "Bytes that belong to no local pod or node, by reason.",
                None,
                MetricType::Counter,
            )?;
            for reason in Unattributed::ALL {
                let value = st.unattributed_bytes.get(&reason).copied().unwrap_or(0);
                ConstCounter::new(value)
                    .encode(metric.encode_family(&[("reason", reason.as_str())])?)?;
            }
        }
        Ok(())
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: i64,
) -> Result<(), fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(v).encode(metric)
}

fn gauge_f64(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: f64,
) -> Result<(), fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(v).encode(metric)
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: u64,
) -> Result<(), fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(v).encode(metric)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netcost_core::aggregate::PodLabels;
    use netcost_core::class::TrafficClass;
    use netcost_core::pairs::{ExportedPair, PairKey, Peer};
    use netcost_core::pipeline::PipelineStats;

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
        render(Exposition {
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
        let text = render_with_cloud(
            Exposition {
                snapshot: Arc::new(snapshot()),
                timing: CycleTiming::default(),
                pods: Arc::default(),
                events: None,
                host_network: HostNetworkStatus::default(),
            },
            Arc::new(cloud),
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
        let text = render(Exposition {
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
