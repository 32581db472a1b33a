//! The hook through which the pipeline asks who owns the node end of a flow.
//!
//! A hostNetwork pod shares the node's addresses, so the topology can only say "the node" for
//! such an end. A [`SocketOwners`] implementation (the agent's, over the kernel's socket
//! table) can say which pod's socket it is; the pipeline then books the bytes to that pod, if the
//! topology knows it as a hostNetwork pod of this node, and to the node otherwise.
//!
//! What it does not do: any I/O. The trait is here so that the pipeline stays testable with a
//! scripted owner map; the kernel side lives in `netcost-conntrack`.

use std::net::IpAddr;
use std::sync::Arc;

use crate::flow::{FlowOrigin, FlowRecord};

/// Which end of a flow is the node's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeSide {
    /// The node opened the flow: its socket is the original tuple's source (`original.src:port`
    /// to `original.dst:port`, as the socket saw them before any NAT).
    Initiator,
    /// The node answered: its socket is the reply tuple's source (`reply.src:port`, talking to
    /// `reply.dst:port`).
    Responder,
}

/// Finds the pod that owns the node end of a flow.
pub trait SocketOwners: Send {
    /// The uid of the pod whose socket is `side` of `record`, or `None` for the node itself.
    /// `origin` says whether the flow is still alive; a destroyed flow's answer need not be kept.
    fn owner(
        &mut self,
        record: &FlowRecord,
        side: NodeSide,
        origin: FlowOrigin,
    ) -> Option<Arc<str>>;

    /// The local node's addresses, after every topology change.
    fn set_node_addresses(&mut self, _addresses: &[IpAddr]) {}

    /// Called when a dump cycle starts, before the first record.
    fn begin_cycle(&mut self) {}

    /// Called when a dump cycle has ended, after its last record and event.
    fn end_cycle(&mut self) {}
}
