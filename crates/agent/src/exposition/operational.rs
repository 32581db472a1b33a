//! netcost's own families: what the agent did, what it could not do and why. Scalars are rows of
//! a table (name, help, how to read the value); the few labelled families are written out.
//!
//! What it does not do: the Kubecost-compatible families ([`super::kubecost`]).

use std::fmt;
use std::sync::Arc;

use netcost_conntrack::sock_owner::SocketOwnerStatus;
use netcost_conntrack::{EventStatus, ReliableEvents};
use netcost_core::attribute::Unattributed;
use netcost_core::class::Direction;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::kubecost::encode_traffic;
use super::{Exposition, HOST_NETWORK_OFF_REASONS, HostNetworkStatus};
use crate::cloud::CloudStatus;

/// A scalar's value, with its type.
#[derive(Debug, Clone, Copy)]
enum Value {
    Gauge(i64),
    GaugeF64(f64),
    Counter(u64),
    CounterF64(f64),
}

impl Value {
    fn kind(self) -> MetricType {
        match self {
            Value::Gauge(_) | Value::GaugeF64(_) => MetricType::Gauge,
            Value::Counter(_) | Value::CounterF64(_) => MetricType::Counter,
        }
    }

    fn encode(self, metric: MetricEncoder<'_>) -> Result<(), fmt::Error> {
        match self {
            Value::Gauge(v) => ConstGauge::new(v).encode(metric),
            Value::GaugeF64(v) => ConstGauge::new(v).encode(metric),
            Value::Counter(v) => ConstCounter::new(v).encode(metric),
            Value::CounterF64(v) => ConstCounter::new(v).encode(metric),
        }
    }
}

/// One unlabelled family, read from a `T`.
struct Row<T> {
    name: &'static str,
    help: &'static str,
    value: fn(&T) -> Value,
}

fn encode_rows<T>(
    encoder: &mut DescriptorEncoder,
    rows: &[Row<T>],
    of: &T,
) -> Result<(), fmt::Error> {
    for row in rows {
        let value = (row.value)(of);
        value.encode(encoder.encode_descriptor(row.name, row.help, None, value.kind())?)?;
    }
    Ok(())
}

/// Object counts, far below `i64::MAX`; saturate rather than wrap if one ever was not.
fn count(n: u64) -> Value {
    Value::Gauge(i64::try_from(n).unwrap_or(i64::MAX))
}

const AGENT: &[Row<Exposition>] = &[
    Row {
        name: "netcost_workload_pairs",
        help: "Workload pair series this agent exports, including the __other__ ones.",
        value: |x| count(x.snapshot.stats.workload_pairs),
    },
    Row {
        name: "netcost_workload_pairs_over_limit",
        help: "Times a new workload pair found the cap reached; its bytes went to the __other__ pair of its class.",
        value: |x| Value::Counter(x.snapshot.stats.workload_pairs_over_limit),
    },
    Row {
        name: "netcost_last_cycle_timestamp_seconds",
        help: "When the last dump cycle ended, in Unix seconds; 0 before the first.",
        value: |x| Value::GaugeF64(x.timing.last_cycle_unix_seconds),
    },
    Row {
        name: "netcost_cycle_failures",
        help: "Dump cycles that failed (the error is logged); counting resumes with the next cycle.",
        value: |x| Value::Counter(x.timing.cycle_failures),
    },
    Row {
        name: "netcost_cycle_duration_seconds",
        help: "Seconds the last cycle took.",
        value: |x| Value::GaugeF64(x.timing.cycle_seconds),
    },
    Row {
        name: "netcost_conntrack_entries",
        help: "Live conntrack entries in the last dump.",
        value: |x| count(x.snapshot.stats.last_dump_entries),
    },
    Row {
        name: "netcost_tracked_flows",
        help: "Entries with a per-flow baseline after the last cycle.",
        value: |x| count(x.snapshot.stats.tracked_entries),
    },
    Row {
        name: "netcost_node_zone_known",
        help: "1 when this node has a zone label; 0 means in-cluster traffic cannot be classified by zone.",
        value: |x| Value::Gauge(i64::from(x.snapshot.node_has_zone)),
    },
    Row {
        name: "netcost_nodes_without_zone",
        help: "Nodes of the cluster without a zone label; traffic with their pods is classified by the config's address lists.",
        value: |x| count(x.timing.nodes_without_zone),
    },
    Row {
        name: "netcost_topology_updates",
        help: "Topologies received from the Kubernetes API watchers after the first.",
        value: |x| Value::Counter(x.timing.topology_updates),
    },
    Row {
        name: "netcost_cycles",
        help: "Completed dump cycles.",
        value: |x| Value::Counter(x.snapshot.stats.cycles),
    },
    Row {
        name: "netcost_conntrack_destroy_events",
        help: "DESTROY events read.",
        value: |x| Value::Counter(x.snapshot.stats.destroy_events),
    },
    Row {
        name: "netcost_conntrack_events_lost",
        help: "Times the kernel reported dropped conntrack events (ENOBUFS), which happens only while delivery is not reliable.",
        value: |x| Value::Counter(x.snapshot.stats.events_lost),
    },
    Row {
        name: "netcost_flows_vanished",
        help: "Entries that left the table without a DESTROY event; bytes since their last dump are lost.",
        value: |x| Value::Counter(x.snapshot.stats.vanished),
    },
    Row {
        name: "netcost_checkpoint_failures",
        help: "Checkpoint writes that failed.",
        value: |x| Value::Counter(x.timing.checkpoint_failures),
    },
    Row {
        name: "netcost_host_network_sockets_enabled",
        help: "1 when hostNetwork pods' bytes are told from the node's by the socket that owns them (--host-network-sockets); 0 books them all to the node.",
        value: |x| {
            Value::Gauge(i64::from(matches!(
                x.host_network,
                HostNetworkStatus::On(_)
            )))
        },
    },
    Row {
        name: "netcost_host_network_pod_bytes",
        help: "Bytes at a node address booked to a hostNetwork pod by its socket (each end once); also in kubecost_pod_network_* of that pod.",
        value: |x| Value::Counter(x.snapshot.stats.host_network_pod_bytes),
    },
];

const EVENTS: &[Row<EventStatus>] = &[
    Row {
        name: "netcost_conntrack_events_reliable",
        help: "1 while DESTROY events are delivered reliably (the kernel keeps an undelivered entry and re-sends its event).",
        value: |e| Value::Gauge(i64::from(e.reliable())),
    },
    Row {
        name: "netcost_conntrack_events_degraded_seconds",
        help: "Seconds spent with reliable delivery off (the valve open, or --reliable-events off): events that overflow are lost.",
        value: |e| Value::CounterF64(e.degraded_seconds()),
    },
    Row {
        name: "netcost_conntrack_events_valve_trips",
        help: "Times the valve turned reliable delivery off because the conntrack table neared full.",
        value: |e| Value::Counter(e.valve_trips()),
    },
    Row {
        name: "netcost_conntrack_table_fill_ratio",
        help: "nf_conntrack_count / nf_conntrack_max at the valve's last check.",
        value: |e| Value::GaugeF64(e.table_fill()),
    },
];

const HOST_NETWORK: &[Row<SocketOwnerStatus>] = &[
    Row {
        name: "netcost_host_network_new_flow_lookups",
        help: "Node ends of new flows looked up on their conntrack NEW event.",
        value: |st| Value::Counter(st.new_events().0),
    },
    Row {
        name: "netcost_host_network_new_flow_matches",
        help: "Node ends of new flows whose socket, looked up on the NEW event, is a pod's.",
        value: |st| Value::Counter(st.new_events().1),
    },
    Row {
        name: "netcost_host_network_new_events_lost",
        help: "Times the kernel dropped conntrack NEW events (ENOBUFS); those flows are looked up at the next dump instead.",
        value: |st| Value::Counter(st.new_events_lost()),
    },
    Row {
        name: "netcost_host_network_socket_dumps",
        help: "inet_diag dumps of the node's sockets (at most one per cycle, batch mode).",
        value: |st| Value::Counter(st.dumps().0),
    },
    Row {
        name: "netcost_host_network_socket_dump_seconds",
        help: "Time spent in socket dumps, joining included.",
        value: |st| Value::CounterF64(st.dumps().2),
    },
    Row {
        name: "netcost_host_network_socket_dump_sockets",
        help: "Sockets in the last dump.",
        value: |st| count(st.dumps().1),
    },
    Row {
        name: "netcost_host_network_socket_queries",
        help: "Single-socket inet_diag queries (NEW events, and per-flow mode).",
        value: |st| Value::Counter(st.queries().0),
    },
    Row {
        name: "netcost_host_network_socket_query_seconds",
        help: "Time spent in single-socket queries.",
        value: |st| Value::CounterF64(st.queries().1),
    },
    Row {
        name: "netcost_host_network_kernel_garbage",
        help: "inet_diag or NEW event messages skipped as malformed.",
        value: |st| Value::Counter(st.garbage_and_errors().0),
    },
    Row {
        name: "netcost_host_network_lookup_errors",
        help: "Socket dumps and queries that failed; their bytes stay with the node.",
        value: |st| Value::Counter(st.garbage_and_errors().1),
    },
    Row {
        name: "netcost_host_network_kept_answers",
        help: "Flows whose socket's pod is kept with them.",
        value: |st| count(st.memory().0),
    },
    Row {
        name: "netcost_host_network_cgroup_walks",
        help: "Walks of the cgroup2 hierarchy (at start, and on an unknown cgroup id at most once a second).",
        value: |st| Value::Counter(st.cgroups().0),
    },
    Row {
        name: "netcost_host_network_cgroup_walks_incomplete",
        help: "Walks cut short by their bounds or an unreadable directory.",
        value: |st| Value::Counter(st.cgroups().2),
    },
    Row {
        name: "netcost_host_network_pod_cgroups",
        help: "Pod and container cgroups found by the last walk.",
        value: |st| count(st.cgroups().1),
    },
];

/// A labelled family whose series are one label's values.
fn encode_by_label(
    encoder: &mut DescriptorEncoder,
    (name, help, kind): (&str, &str, MetricType),
    label: &str,
    values: impl IntoIterator<Item = (&'static str, Value)>,
) -> Result<(), fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (value_of_label, value) in values {
        value.encode(metric.encode_family(&[(label, value_of_label)])?)?;
    }
    Ok(())
}

/// Every operational family of one scrape, except the cloud ranges' ([`CloudMetrics`]).
pub(super) fn encode(x: &Exposition, encoder: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
    let s = &x.snapshot;
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
            encode_traffic(&mut metric, &[("node", &*s.node_name)], series)?;
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
    {
        let mut metric = encoder.encode_descriptor(
            "netcost_pod_info",
            "1 for each pod on this node: its node, zone, region and owning workload.",
            None,
            MetricType::Gauge,
        )?;
        for pod in x.pods.iter() {
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
    encode_rows(encoder, AGENT, x)?;
    let st = &s.stats;
    encode_by_label(
        encoder,
        (
            "netcost_conntrack_entries_skipped",
            "Entries skipped, by reason: malformed (garbage from the kernel) or unsupported (not IPv4/IPv6).",
            MetricType::Counter,
        ),
        "reason",
        [
            ("malformed", Value::Counter(st.malformed)),
            ("unsupported", Value::Counter(st.unsupported)),
        ],
    )?;
    encode_by_label(
        encoder,
        (
            "netcost_unattributed_bytes",
            "Bytes that belong to no local pod or node, by reason.",
            MetricType::Counter,
        ),
        "reason",
        Unattributed::ALL.into_iter().map(|reason| {
            let value = st.unattributed_bytes.get(&reason).copied().unwrap_or(0);
            (reason.as_str(), Value::Counter(value))
        }),
    )?;
    if let Some(events) = &x.events {
        encode_event_status(encoder, events)?;
    }
    encode_host_network(encoder, &x.host_network)
}

/// `netcost_conntrack_events_*`: whether DESTROY events are delivered reliably, what the valve
/// did, and what the kernel could not queue.
fn encode_event_status(
    encoder: &mut DescriptorEncoder,
    events: &EventStatus,
) -> Result<(), fmt::Error> {
    encode_by_label(
        encoder,
        (
            "netcost_conntrack_events_mode",
            "The configured reliability of DESTROY events (--reliable-events): 1 for the mode in use.",
            MetricType::Gauge,
        ),
        "mode",
        [
            ReliableEvents::Auto,
            ReliableEvents::On,
            ReliableEvents::Off,
        ]
        .map(|mode| {
            (
                mode.as_str(),
                Value::Gauge(i64::from(events.mode() == mode)),
            )
        }),
    )?;
    encode_rows(encoder, EVENTS, events)?;
    encode_by_label(
        encoder,
        (
            "netcost_conntrack_events_dropped",
            "DESTROY events the events socket could not queue, by outcome: resent (reliable delivery: the kernel kept the entry and sent the event again) or lost.",
            MetricType::Counter,
        ),
        "outcome",
        [
            ("resent", Value::Counter(events.dropped_and_resent())),
            ("lost", Value::Counter(events.dropped_and_lost())),
        ],
    )
}

/// `netcost_host_network_*` beyond the two in [`AGENT`]: why socket lookups are off, and what
/// they cost and found while on.
fn encode_host_network(
    encoder: &mut DescriptorEncoder,
    status: &HostNetworkStatus,
) -> Result<(), fmt::Error> {
    let reason = match status {
        HostNetworkStatus::On(_) => None,
        HostNetworkStatus::Off(reason) => Some(*reason),
    };
    encode_by_label(
        encoder,
        (
            "netcost_host_network_sockets_off",
            "1 for the reason socket lookups are off: off (the flag), cgroup_v1 (no cgroup2 mount: sockets carry no pod's cgroup id), cgroup_unreadable, sock_diag_unavailable.",
            MetricType::Gauge,
        ),
        "reason",
        HOST_NETWORK_OFF_REASONS
            .map(|label| (label, Value::Gauge(i64::from(reason == Some(label))))),
    )?;
    let HostNetworkStatus::On(st) = status else {
        return Ok(());
    };
    encode_by_label(
        encoder,
        (
            "netcost_host_network_socket_lookups",
            "Node ends of flows looked up, by result: pod (a pod cgroup's socket), node (a socket of no pod), no_socket (none found: closed, forwarded), kept (an answer kept from the flow's start).",
            MetricType::Counter,
        ),
        "result",
        st.lookups()
            .map(|(result, value)| (result, Value::Counter(value))),
    )?;
    encode_rows(encoder, HOST_NETWORK, st)?;
    let (_, kept_full, table_full) = st.memory();
    encode_by_label(
        encoder,
        (
            "netcost_host_network_caps_reached",
            "Answers not kept (kept_answers: the cap of kept answers) and sockets left out of a dump's join table (join_table), because a bound was reached.",
            MetricType::Counter,
        ),
        "cap",
        [
            ("kept_answers", Value::Counter(kept_full)),
            ("join_table", Value::Counter(table_full)),
        ],
    )
}

/// `netcost_cloud_ranges_*`: which table is in use per provider, how old it is, and failed
/// refreshes. Labels are bounded: three providers, three sources, six reasons.
#[derive(Debug)]
pub(super) struct CloudMetrics(pub(super) Arc<CloudStatus>);

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
