//! Expected counter values, derived from the bytes a test sent, and the wait for the agents to
//! report them.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::time::{Duration, Instant};

use super::cluster::{Cluster, NODES, pod};
use super::metrics::Metrics;
use super::traffic::{Side, TcpReport, UdpReport};

/// Where the other end of a flow is, as the Kubecost labels tell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Same zone.
    InZone,
    /// Same region, another zone.
    CrossZone,
    /// Another region.
    CrossRegion,
    /// Outside every cluster and cloud.
    Internet,
}

impl Class {
    const ALL: [Class; 4] = [
        Class::InZone,
        Class::CrossZone,
        Class::CrossRegion,
        Class::Internet,
    ];

    /// `(internet, same_zone, same_region)` label values.
    fn labels(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Class::InZone => ("false", "true", "true"),
            Class::CrossZone => ("false", "false", "true"),
            Class::CrossRegion => ("false", "false", "false"),
            Class::Internet => ("true", "false", "false"),
        }
    }
}

impl Class {
    /// The value of the `class` label of `netcost_workload_traffic_bytes_total`.
    fn as_str(self) -> &'static str {
        match self {
            Class::InZone => "in-zone",
            Class::CrossZone => "cross-zone",
            Class::CrossRegion => "cross-region",
            Class::Internet => "internet",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which counter of a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Bytes the pod sent.
    Egress,
    /// Bytes the pod received.
    Ingress,
}

impl Direction {
    fn pod_metric(self) -> &'static str {
        match self {
            Direction::Egress => "kubecost_pod_network_egress_bytes_total",
            Direction::Ingress => "kubecost_pod_network_ingress_bytes_total",
        }
    }

    fn node_metric(self) -> &'static str {
        match self {
            Direction::Egress => "netcost_node_network_egress_bytes_total",
            Direction::Ingress => "netcost_node_network_ingress_bytes_total",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Egress => "egress",
            Direction::Ingress => "ingress",
        })
    }
}

/// An inclusive range of acceptable counter values.
#[derive(Clone, Copy, Debug)]
pub struct Bytes {
    lo: u64,
    hi: u64,
}

impl Bytes {
    /// Exactly `n`.
    pub fn exactly(n: u64) -> Bytes {
        Bytes { lo: n, hi: n }
    }

    /// What conntrack can have counted for the bytes that `sender` wrote to `receiver` over TCP.
    ///
    /// Conntrack counts whole IP packets of the direction, so the count is the payload plus one
    /// IP and TCP header per packet:
    /// - lower bound: the payload itself;
    /// - packets in the direction: the sender's data segments plus one short segment per
    ///   `write`; plus at most one pure ACK or window update per data segment of the other
    ///   direction, as the receiver acknowledges it; plus the handshake and close (SYN, ACKs,
    ///   FIN), counted generously as 8. Segments are counted at half the MSS: on a loaded CI
    ///   machine TCP was seen sending about 4,900 packets for 3 MiB + 1 MiB where full segments
    ///   make 2,900 (counted 3,401,596 bytes for 3,145,728 sent, +8.1%). Even so the bound stays
    ///   far below a doubled count and apart from the other direction's size.
    /// - header per packet: at most the IP header (20, or 40 for IPv6) plus the largest TCP
    ///   header (60 bytes with options); the real one is 32 with timestamps.
    /// - MSS on the 1500-byte veth MTU: 1500 - IP - 20 - 12 (timestamps) = 1448 (1428 for v6).
    pub fn tcp(sender: Side, receiver: Side, v6: bool) -> Bytes {
        let ip = if v6 { 40 } else { 20 };
        let mss = 1500 - ip - 20 - 12;
        let segments = |side: Side| side.sent.div_ceil(mss / 2) + side.writes;
        let packets = segments(sender) + segments(receiver) + 8;
        Bytes {
            lo: sender.sent,
            hi: sender.sent + packets * (ip + 60),
        }
    }

    /// The range of the sum of two counters.
    pub fn plus(self, other: Bytes) -> Bytes {
        Bytes {
            lo: self.lo + other.lo,
            hi: self.hi + other.hi,
        }
    }

    /// Whether `n` is in the range.
    pub fn contains(self, n: f64) -> bool {
        self.lo as f64 <= n && n <= self.hi as f64
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "exactly {}", self.lo)
        } else {
            write!(f, "{}..={}", self.lo, self.hi)
        }
    }
}

impl TcpReport {
    /// Counter range for the client → server direction.
    pub fn client_to_server(&self) -> Bytes {
        Bytes::tcp(self.client, self.server, self.v6)
    }

    /// Counter range for the server → client direction.
    pub fn server_to_client(&self) -> Bytes {
        Bytes::tcp(self.server, self.client, self.v6)
    }
}

impl UdpReport {
    /// Counter range for the client → server direction: exact.
    pub fn client_to_server_bytes(&self) -> Bytes {
        Bytes::exactly(self.client_to_server())
    }

    /// Counter range for the server → client direction: exact.
    pub fn server_to_client_bytes(&self) -> Bytes {
        Bytes::exactly(self.server_to_client())
    }
}

/// Whose counter a [`Check`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    /// A pod, by name: `kubecost_pod_network_*`.
    Pod(&'static str),
    /// The node itself (and its hostNetwork pods): `netcost_node_network_*`.
    Node,
    /// A workload pair, by client and server workload name (or `internet`):
    /// `netcost_workload_traffic_bytes_total`. The test pods have no owner, so a pod's
    /// workload is the pod itself.
    Pair(&'static str, &'static str),
}

/// One counter that the agent of `node` must report.
#[derive(Clone, Copy, Debug)]
pub struct Check {
    /// Whose agent reports it.
    pub node: &'static str,
    /// Whose counter.
    pub subject: Subject,
    /// Egress or ingress.
    pub direction: Direction,
    /// The class all of the subject's bytes in this direction must have.
    pub class: Class,
    /// The acceptable value.
    pub bytes: Bytes,
}

/// Both counters of one pod end of a flow: `sent` as egress and `received` as ingress.
pub fn pod_end(
    node: &'static str,
    pod: &'static str,
    class: Class,
    sent: Bytes,
    received: Bytes,
) -> [Check; 2] {
    end(node, Subject::Pod(pod), class, sent, received)
}

/// The workload pair counter `client → server` that the agent of `node` must report: what that
/// node's end sent (plus what it received, when the other end is outside the cluster).
pub fn pair(
    node: &'static str,
    client: &'static str,
    server: &'static str,
    class: Class,
    bytes: Bytes,
) -> Check {
    Check {
        node,
        subject: Subject::Pair(client, server),
        // Unused: a pair counter has no direction.
        direction: Direction::Egress,
        class,
        bytes,
    }
}

/// Both counters of a flow's end on the node itself.
pub fn node_end(node: &'static str, class: Class, sent: Bytes, received: Bytes) -> [Check; 2] {
    end(node, Subject::Node, class, sent, received)
}

fn end(
    node: &'static str,
    subject: Subject,
    class: Class,
    sent: Bytes,
    received: Bytes,
) -> [Check; 2] {
    [
        Check {
            node,
            subject,
            direction: Direction::Egress,
            class,
            bytes: sent,
        },
        Check {
            node,
            subject,
            direction: Direction::Ingress,
            class,
            bytes: received,
        },
    ]
}

/// How far the other classes of a checked counter may stray from zero: 1% of the expected bytes
/// plus 4 KiB (neighbour discovery between pod and node may land somewhere).
fn other_classes_limit(bytes: Bytes) -> f64 {
    bytes.lo as f64 / 100.0 + 4096.0
}

impl Check {
    /// `None` when the scrape satisfies the check, else what is wrong.
    fn verify(&self, metrics: &Metrics) -> Option<String> {
        let value = |class: Class| {
            let (internet, same_zone, same_region) = class.labels();
            let query = match self.subject {
                Subject::Pod(name) => metrics
                    .metric(self.direction.pod_metric())
                    .label("pod_name", name)
                    .label("namespace", pod(name).namespace),
                Subject::Node => metrics
                    .metric(self.direction.node_metric())
                    .label("node", self.node),
                Subject::Pair(client, server) => {
                    return metrics
                        .metric("netcost_workload_traffic_bytes_total")
                        .label("src_workload", client)
                        .label("dst_workload", server)
                        .label("class", class.as_str())
                        .value();
                }
            };
            query
                .label("internet", internet)
                .label("same_zone", same_zone)
                .label("same_region", same_region)
                .value()
        };
        let got = value(self.class);
        // The node's own in-zone counters also hold the test's scrapes of the agent (loopback).
        let others: Vec<(Class, f64)> = Class::ALL
            .iter()
            .filter(|c| **c != self.class)
            .filter(|c| !(self.subject == Subject::Node && **c == Class::InZone))
            .map(|c| (*c, value(*c)))
            .collect();
        let limit = other_classes_limit(self.bytes);
        let others_ok = others.iter().all(|(_, v)| *v <= limit);
        if self.bytes.contains(got) && others_ok {
            return None;
        }
        let whose = match self.subject {
            Subject::Pod(name) => format!("pod {}/{name}", pod(name).namespace),
            Subject::Node => "the node itself".to_owned(),
            Subject::Pair(client, server) => format!("workload pair {client} -> {server}"),
        };
        // A pair counter holds both directions: naming one would mislead.
        let direction = match self.subject {
            Subject::Pair(..) => String::new(),
            _ => format!(" {}", self.direction),
        };
        let mut why = format!(
            "agent on {}: {whose}{direction} {}: expected {}, got {got}",
            self.node, self.class, self.bytes
        );
        if got > 0.0 && !self.bytes.contains(got) {
            let _ = write!(
                why,
                " ({:+.2}% vs. the lower bound)",
                (got / self.bytes.lo.max(1) as f64 - 1.0) * 100.0
            );
        }
        let _ = write!(why, "; other classes (each must be <= {limit}):");
        for (class, v) in others {
            let _ = write!(why, " {class}={v}");
        }
        Some(why)
    }
}

/// Waits until the agents have run at least two cycles after `traffic_ended`, then until every
/// check holds and no agent reports bytes for a checked pod but that of its own node and those
/// that a check names for it; panics with what is wrong, the agents' logs and conntrack tables
/// at the deadline.
pub fn expect_counts(cluster: &Cluster, traffic_ended: Instant, checks: &[Check]) {
    let interval = cluster.interval();
    let settled = traffic_ended + interval * 2 + Duration::from_millis(300);
    if let Some(wait) = settled.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
    let deadline = Instant::now() + (interval * 3).max(Duration::from_secs(10));
    let nodes: Vec<&'static str> = NODES.iter().map(|n| n.name).collect();
    let mut pods: Vec<&'static str> = checks
        .iter()
        .filter_map(|c| match c.subject {
            Subject::Pod(name) => Some(name),
            Subject::Node | Subject::Pair(..) => None,
        })
        .collect();
    pods.sort_unstable();
    pods.dedup();
    loop {
        let scrapes: BTreeMap<&str, Result<Metrics, String>> =
            nodes.iter().map(|n| (*n, cluster.scrape(n))).collect();
        let mut problems: Vec<String> = checks
            .iter()
            .filter_map(|check| match &scrapes[check.node] {
                Ok(metrics) => check.verify(metrics),
                Err(e) => Some(e.clone()),
            })
            .collect();
        // Only the agent of a pod's own node may attribute bytes to it, unless a check says
        // which other agent books which of its bytes (a node that translated its traffic).
        for (node, scrape) in &scrapes {
            let Ok(metrics) = scrape else { continue };
            let checked_here = |name: &str| {
                checks
                    .iter()
                    .any(|c| c.node == *node && matches!(c.subject, Subject::Pod(p) if p == name))
            };
            for name in pods
                .iter()
                .filter(|p| pod(p).node != *node && !checked_here(p))
            {
                let bytes: f64 = [Direction::Egress, Direction::Ingress]
                    .iter()
                    .map(|d| {
                        metrics
                            .metric(d.pod_metric())
                            .label("pod_name", name)
                            .value()
                    })
                    .sum();
                if bytes != 0.0 {
                    problems.push(format!(
                        "agent on {node} attributed {bytes} bytes to {name}, which runs on {}",
                        pod(name).node
                    ));
                }
            }
        }
        if problems.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            let mut report = format!(
                "{} problems with {} checks {:.1} s after the traffic ended:\n",
                problems.len(),
                checks.len(),
                traffic_ended.elapsed().as_secs_f64()
            );
            for p in &problems {
                let _ = writeln!(report, "  - {p}");
            }
            for node in &nodes {
                if let Ok(metrics) = &scrapes[node] {
                    let _ = writeln!(report, "---- pod and node series on {node} ----");
                    for line in
                        metrics.lines_with(&["kubecost_pod_network", "netcost_node_network"])
                    {
                        let _ = writeln!(report, "{line}");
                    }
                }
                report.push_str(&cluster.diagnostics(node));
            }
            panic!("{report}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
