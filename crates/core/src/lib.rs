//! The pure middle of netcost: everything between "a conntrack entry was read" and "these are the
//! counters to export". No sockets, no files, no clocks: every input is handed in, so that tests
//! drive it by hand.
//!
//! The modules follow the data flow:
//! - [`flow`]: the [`flow::FlowRecord`] a source hands over, and the [`flow::FlowSource`] trait;
//! - [`delta`]: per-flow baselines turning cumulative counters into byte deltas;
//! - [`topology`] and [`inventory`]: which IP is which pod, node or Service, and where nodes sit;
//! - [`config`] and [`classify`]: Kubecost's classification config and the decision it drives;
//! - [`provider`] and [`cloud`]: the cloud providers, and their published ranges for service tags
//!   and their regions;
//! - [`attribute`]: which local pod (or the node) a delta belongs to, and the real remote end;
//! - [`aggregate`]: counters per pod × direction × class × service, ready to export;
//! - [`pairs`]: who talks to whom, per client and server workload and class;
//! - [`pipeline`]: one `tick` that runs all of the above over a source;
//! - [`socket_owner`]: the hook that books a node end to the hostNetwork pod whose socket it is;
//! - [`checkpoint`]: the restart state, as bytes.
//!
//! What it does not do: read the kernel (see `netcost-conntrack`), talk to Kubernetes, serve HTTP
//! or price traffic.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod aggregate;
pub mod attribute;
pub mod checkpoint;
pub mod class;
pub mod classify;
pub mod cloud;
pub mod config;
pub mod delta;
pub mod flow;
pub mod inventory;
pub mod located;
pub mod pairs;
pub mod pipeline;
pub mod provider;
pub mod socket_owner;
pub mod topology;
