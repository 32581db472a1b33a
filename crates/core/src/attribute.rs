//! Attribution: which local endpoint a flow's bytes belong to, and who the real remote end is.
//!
//! The rules, from DESIGN.md:
//! - The original tuple's source started the flow; its counters are what it sent. The reply
//!   tuple's source is whoever really answered: after DNAT (a Service ClusterIP, a NodePort, a load
//!   balancer) that is the backend, so the remote end is never a ClusterIP.
//! - With SNAT the original source is still the local pod; the reply tuple's destination is the
//!   node, which is why it is never used to find the local end.
//! - Only endpoints on this node are attributed: a pod scheduled here, or the node itself (node
//!   addresses, which hostNetwork pods share). A flow between two local endpoints is attributed to
//!   both. A flow with no local end is transit traffic and is counted as unattributed.

use std::net::IpAddr;

use crate::delta::FlowDelta;
use crate::flow::FlowRecord;
use crate::topology::{Endpoint, PodInfo, Topology};

/// The local end bytes are attributed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalEnd<'a> {
    /// A pod on this node, with its own network namespace.
    Pod(&'a PodInfo),
    /// The node itself: host processes and hostNetwork pods.
    Node,
}

/// Bytes of one flow, seen from one local end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribution<'a> {
    /// Who the bytes belong to.
    pub local: LocalEnd<'a>,
    /// The real remote end, after NAT.
    pub remote: IpAddr,
    /// Bytes the local end sent.
    pub egress: u64,
    /// Bytes the local end received.
    pub ingress: u64,
    /// True when the local end opened the flow (it is the original tuple's source).
    pub local_initiated: bool,
}

/// Why bytes could not be attributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unattributed {
    /// Neither end of the flow is on this node: traffic forwarded through it.
    Transit,
    /// The remote end is still a Service virtual IP: the DNAT happened somewhere conntrack did not
    /// see (for example an eBPF load balancer), so the real backend is unknown.
    ServiceIpWithoutDnat,
    /// Loopback traffic never leaves the host, so no cloud bills it.
    Loopback,
}

impl Unattributed {
    /// Every reason, for metrics created at zero.
    pub const ALL: [Unattributed; 3] = [
        Unattributed::Transit,
        Unattributed::ServiceIpWithoutDnat,
        Unattributed::Loopback,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Unattributed::Transit => "transit",
            Unattributed::ServiceIpWithoutDnat => "service_ip_without_dnat",
            Unattributed::Loopback => "loopback",
        }
    }
}

/// Finds the local ends of a flow and calls `sink` once for each (zero, one or two times).
/// Returns why the flow's bytes were not attributed, if they were not.
pub fn attribute<'t>(
    topology: &'t Topology,
    local_node: &str,
    record: &FlowRecord,
    delta: FlowDelta,
    sink: &mut dyn FnMut(Attribution<'t>),
) -> Option<Unattributed> {
    let initiator = record.original.src;
    let responder = record.reply.src;
    if initiator.is_loopback() || responder.is_loopback() {
        return Some(Unattributed::Loopback);
    }
    let mut attributed = false;
    let mut remote_is_service_ip = false;

    if let Some(local) = local_end(topology, local_node, initiator) {
        if is_service_ip(topology, responder) {
            remote_is_service_ip = true;
        } else {
            sink(Attribution {
                local,
                remote: responder,
                egress: delta.original_bytes,
                ingress: delta.reply_bytes,
                local_initiated: true,
            });
            attributed = true;
        }
    }
    if let Some(local) = local_end(topology, local_node, responder) {
        sink(Attribution {
            local,
            remote: initiator,
            egress: delta.reply_bytes,
            ingress: delta.original_bytes,
            local_initiated: false,
        });
        attributed = true;
    }
    match (attributed, remote_is_service_ip) {
        (true, _) => None,
        (false, true) => Some(Unattributed::ServiceIpWithoutDnat),
        (false, false) => Some(Unattributed::Transit),
    }
}

fn local_end<'t>(topology: &'t Topology, local_node: &str, ip: IpAddr) -> Option<LocalEnd<'t>> {
    match topology.lookup(ip)? {
        Endpoint::Pod(pod) if pod.node_name.as_deref() == Some(local_node) => {
            Some(LocalEnd::Pod(pod))
        }
        Endpoint::Node(node) if &*node.name == local_node => Some(LocalEnd::Node),
        _ => None,
    }
}

fn is_service_ip(topology: &Topology, ip: IpAddr) -> bool {
    matches!(topology.lookup(ip), Some(Endpoint::ServiceIp(_)))
}
