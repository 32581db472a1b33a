//! Attribution: which local endpoint a flow's bytes belong to, and who the real remote end is.
//!
//! The rules (the counting rules of docs/architecture.md):
//! - The original tuple's source started the flow; its counters are what it sent. The reply
//!   tuple's source is whoever really answered: after DNAT (a Service ClusterIP, a NodePort, a load
//!   balancer) that is the backend, so the remote end is never a ClusterIP.
//! - With SNAT the original source is still the local pod; the reply tuple's destination is the
//!   node, which is why it is never used to find the local end.
//! - Only endpoints on this node are attributed: a pod scheduled here, or the node itself (node
//!   addresses, which hostNetwork pods share). A flow between two local endpoints is attributed to
//!   both. A flow with no local end is transit traffic and is counted as unattributed.
//! - One exception: a flow this node translated both ways, DNAT to a backend on another node and
//!   SNAT to one of this node's own addresses (a NodePort or load balancer with kube-proxy's
//!   default `externalTrafficPolicy: Cluster`). Its packets leave and enter this node twice: once
//!   between the client and this node, once between this node and the backend. The backend's
//!   node sees only the second leg (the client's address is gone), so only this node can book
//!   the first. The second leg is this node's own traffic with the backend (a hop between two
//!   nodes, billed as such). The first leg, when the client is outside the cluster, is the
//!   backend pod's traffic with that client: booked here under the backend pod's own name
//!   ([`LocalEnd::ServedPod`]), in the client's class seen from this node, where the bytes
//!   cross into the VPC. Prometheus sums a pod's series over agents, so each byte is counted
//!   once: the internet leg by this node's agent, the hop by each node's agent for its side.
//!   When the client is a pod or node of the cluster (its own agent books its side), the first
//!   leg is this node's traffic with it, like the second.
//! - A pod that reaches itself (through its own Service) never leaves its node: loopback.

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
    /// A pod on another node, for the leg between it and a client outside the cluster that this
    /// node translated (see the module docs).
    ServedPod(&'a PodInfo),
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

impl<'a> Attribution<'a> {
    /// `local` opened the flow: it sent the original direction's bytes.
    fn of_initiator(local: LocalEnd<'a>, remote: IpAddr, delta: FlowDelta) -> Self {
        Attribution {
            local,
            remote,
            egress: delta.original_bytes,
            ingress: delta.reply_bytes,
            local_initiated: true,
        }
    }

    /// `local` answered the flow: it sent the reply direction's bytes.
    fn of_responder(local: LocalEnd<'a>, remote: IpAddr, delta: FlowDelta) -> Self {
        Attribution {
            local,
            remote,
            egress: delta.reply_bytes,
            ingress: delta.original_bytes,
            local_initiated: false,
        }
    }
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
    if initiator.is_loopback() || responder.is_loopback() || initiator == responder {
        return Some(Unattributed::Loopback);
    }
    let mut attributed = false;
    let mut remote_is_service_ip = false;

    if let Some(local) = local_end(topology, local_node, initiator) {
        if is_service_ip(topology, responder) {
            remote_is_service_ip = true;
        } else {
            sink(Attribution::of_initiator(local, responder, delta));
            attributed = true;
        }
    }
    if let Some(local) = local_end(topology, local_node, responder) {
        sink(Attribution::of_responder(local, initiator, delta));
        attributed = true;
    }
    if !attributed && !remote_is_service_ip && translated_here(topology, local_node, record) {
        // The leg between this node and the backend: this node opened it, sending what the
        // client sent, and received what the backend answered.
        sink(Attribution::of_initiator(LocalEnd::Node, responder, delta));
        // The leg between the client and this node.
        let local = match (topology.lookup(initiator), topology.lookup(responder)) {
            (None, Some(Endpoint::Pod(backend))) => LocalEnd::ServedPod(backend),
            _ => LocalEnd::Node,
        };
        sink(Attribution::of_responder(local, initiator, delta));
        return None;
    }
    match (attributed, remote_is_service_ip) {
        (true, _) => None,
        (false, true) => Some(Unattributed::ServiceIpWithoutDnat),
        (false, false) => Some(Unattributed::Transit),
    }
}

/// True when this node translated the flow both ways: the reply goes back to one of this node's
/// addresses (SNAT here) and comes from an end that is not the one the client addressed (DNAT).
/// Called only for flows with no local end.
fn translated_here(topology: &Topology, local_node: &str, record: &FlowRecord) -> bool {
    let snat_to_this_node = matches!(
        topology.lookup(record.reply.dst),
        Some(Endpoint::Node(node)) if &*node.name == local_node
    );
    snat_to_this_node && record.reply.src != record.original.dst
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
