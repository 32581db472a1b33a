//! Support for the end-to-end tests on the real kernel.
//!
//! - [`cluster`]: a three-node, two-region cluster of network namespaces, with NAT as kube-proxy
//!   and a CNI would set it up, and the real `netcost agent` on each node;
//! - [`traffic`]: TCP and UDP traffic with exactly known byte counts, from sockets inside the
//!   namespaces;
//! - [`metrics`]: `/metrics` fetched from inside a node's namespace, and a small matcher;
//! - [`expect`]: counter ranges derived from the bytes sent, and the wait for the agents.

pub mod cluster;
pub mod expect;
pub mod metrics;
pub mod netns;
pub mod traffic;
