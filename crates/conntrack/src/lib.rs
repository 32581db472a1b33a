//! Reads the kernel's connection-tracking table and hands each entry to the pipeline as a
//! [`FlowRecord`](netcost_core::flow::FlowRecord).
//!
//! Two [`FlowSource`](netcost_core::flow::FlowSource)s live here:
//!
//! - [`NetlinkSource`] talks ctnetlink: a full dump of the table on request (IPv4 and IPv6 in one
//!   walk) and the DESTROY events that carry each finished flow's final counters. A thread of its
//!   own reads the events all the time, with reliable delivery (no event lost) unless the table
//!   nears full ([`ReliableEvents`], the valve); the caller takes them between and during dumps.
//! - [`ProcSource`] reads `/proc/net/nf_conntrack`, the text file Kubecost reads. It has no events.
//!
//! The parsers are pure functions over bytes, kept apart from the sockets and files:
//! [`parse_netlink`] for one `recv` worth of ctnetlink messages and [`parse_proc`] for the text
//! format. Neither allocates per entry: each record is built on the stack and lent to a sink.
//! [`encode_flow`] is the inverse of [`parse_netlink`]; the simulator uses it to produce the bytes
//! the kernel would send.
//!
//! [`ensure_accounting`] turns on `net.netfilter.nf_conntrack_acct`, without which the kernel
//! keeps no byte counters.
//!
//! For hostNetwork pods, which share the node's addresses, [`sock_owner`] finds the socket that
//! owns a flow's node end ([`sock_diag`]: inet_diag with the socket's cgroup v2 id) and the pod
//! whose cgroup that is ([`cgroup`]: kubelet's cgroup names), for the pipeline's
//! [`SocketOwners`](netcost_core::socket_owner::SocketOwners) hook.
//!
//! This crate does not attribute, classify or aggregate flows, keep per-flow state or compute
//! deltas: the pipeline in `netcost-core` does that, and drives the sources. The threads it
//! starts are the event reader, which only parses and queues, and (with [`sock_owner`]) the
//! reader of NEW events, which looks up the sockets of new flows at a node address.
//!
//! # Example
//!
//! ```
//! use netcost_conntrack::{Envelope, encode_flow, parse_netlink};
//! use netcost_core::flow::{Counters, FlowOrigin, FlowRecord, FlowTuple};
//!
//! let tuple = FlowTuple {
//!     src: "10.0.0.1".parse().unwrap(),
//!     dst: "10.0.0.2".parse().unwrap(),
//!     src_port: 40000,
//!     dst_port: 443,
//!     protocol: 6,
//! };
//! let reply = FlowTuple { src: tuple.dst, dst: tuple.src, src_port: 443, dst_port: 40000, ..tuple };
//! let record = FlowRecord {
//!     id: 7,
//!     zone: 0,
//!     status: 0,
//!     mark: 0,
//!     original: tuple,
//!     reply,
//!     original_counters: Counters { bytes: 1500, packets: 10 },
//!     reply_counters: Counters { bytes: 90_000, packets: 62 },
//! };
//!
//! // What the kernel would send as a DESTROY event...
//! let mut bytes = Vec::new();
//! encode_flow(&mut bytes, &record, FlowOrigin::Destroyed, Envelope::default());
//!
//! // ...parsed back without a heap allocation per entry.
//! let mut sent_by_client = 0;
//! let batch = parse_netlink(&bytes, &mut |r| sent_by_client += r.original_counters.bytes)?;
//! assert_eq!((batch.stats.entries, sent_by_client), (1, 1500));
//! # Ok::<(), netcost_conntrack::KernelError>(())
//! ```
//!
//! Reading the live table (needs NET_ADMIN in the network namespace):
//!
//! ```no_run
//! use netcost_conntrack::{ACCOUNTING_SYSCTL_PATH, NetlinkSource, ensure_accounting};
//! use netcost_core::flow::FlowSource;
//!
//! ensure_accounting(ACCOUNTING_SYSCTL_PATH.as_ref())?;
//! let mut source = NetlinkSource::open()?;
//! let stats = source.dump(&mut |record| println!("{record:?}"))?;
//! let gone = source.drain_destroyed(&mut |record| println!("destroyed {record:?}"))?;
//! if gone.events_lost > 0 {
//!     // Some DESTROY events were lost: trust the next dump instead.
//! }
//! # Ok::<(), netcost_conntrack::Error>(())
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod accounting;
mod build;
pub mod cgroup;
mod consts;
mod error;
mod events;
mod netlink;
mod parse;
mod proc;
pub mod sock_diag;
pub mod sock_owner;

pub use accounting::{ACCOUNTING_SYSCTL_PATH, Accounting, ensure_accounting};
pub use build::{Envelope, encode_done, encode_error, encode_flow};
pub use error::{AccountingFailure, Error};
pub use events::{EventStatus, ReliableEvents, ValveSettings};
pub use netlink::{NetlinkConfig, NetlinkSource};
pub use parse::{Batch, KernelError, parse_netlink};
pub use proc::{PROC_CONNTRACK_PATH, ProcSource, derived_id, parse_proc};
