//! The network simulator: a seeded synthetic cluster and the live conntrack table of one of its
//! nodes, served as a [`FlowSource`] that speaks the kernel's ctnetlink bytes.
//!
//! - [`Cluster`] (from a [`ClusterSpec`]): nodes across zones and regions running a web shop's
//!   workloads (a front end, an API, a cart, a catalog, checkout, a cache, a database and its
//!   replica, OpenSearch, Kafka, a report worker, Prometheus, Loki and two DaemonSets, one of
//!   them hostNetwork), their Services, an internet range, an object store (S3) and a managed
//!   database, every node behind a NAT gateway. What each workload does on the network, and
//!   why, is the catalog (`catalog.rs`, and `docs/demo.md`). It writes the inventory file
//!   ([`Cluster::inventory_yaml`]) and classification config ([`Cluster::config_yaml`]) the agent
//!   loads, so the agent learns the cluster the way it does in production.
//! - [`Table`] (from a [`TableSpec`]): N live entries with churn. Counters grow, flows end with
//!   DESTROY events and are replaced, Service flows are DNAT'ed to a backend (by the Service's
//!   topology-aware or default routing), flows a pod opens to the internet or the object store
//!   are SNAT'ed to the node. A flow costs 8 bytes of state; the rest is recomputed from the seed.
//! - [`Simulator`]: both, as a [`FlowSource`]. Every entry is encoded with netcost-conntrack's
//!   [`encode_flow`] into one reused buffer, batch by batch as the kernel sends them, and handed
//!   to the real [`parse_netlink`]: the agent's parser runs on every byte.
//! - [`Simulator::truth`]: the ground truth, the bytes each local pod (and the node) sent and
//!   received per class and service since the agent's priming dump, decided from the topology the
//!   simulator generated, not by the agent's classifier.
//!
//! Time is injected: [`Simulator::advance_to`] moves the table to a clock reading, and
//! [`Clocked`] does that from a [`Clock`] before every read, for the live `netcost simulate`.
//!
//! What it does not do: IPv6 flows, conntrack zones or marks, ENOBUFS (events are never lost), or
//! `nf_conntrack_events=2`'s rule that entries created before the first listener raise no events:
//! here every entry that ends after the first dump reports it, so the truth can be exact.
//!
//! ```
//! use netcost_core::flow::FlowSource;
//! use netcost_sim::{Cluster, ClusterSpec, Simulator, TableSpec};
//!
//! let cluster = Cluster::generate(&ClusterSpec::default())?;
//! let spec = TableSpec { entries: 1_000, ..TableSpec::default() };
//! let mut sim = Simulator::new(cluster, &spec);
//! let stats = sim.dump(&mut |_record| {})?;
//! assert_eq!(stats.entries, 1_000);
//! sim.advance_to(60_000); // a minute: 20% of the flows end
//! let ended = sim.drain_destroyed(&mut |_record| {})?;
//! assert_eq!(ended.entries, 200);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod behaviour;
mod catalog;
mod cluster;
mod rng;
mod table;

use std::time::Instant;

use netcost_conntrack::{Envelope, KernelError, encode_done, encode_flow, parse_netlink};
use netcost_core::flow::{FlowOrigin, FlowRecord, FlowSource, ReadStats};

pub use cluster::{
    Cluster, ClusterSpec, INTERNET_NET, MANAGED_DB_NET, MANAGED_DB_SERVICE, OBJECT_STORE_NET,
    OBJECT_STORE_SERVICE, SimNode, SimPod, SimService, SpecError, WorkloadKind,
};
pub use table::{Table, TableSpec, Truth, TruthKey, TruthOwner};

/// A netlink datagram's worth: the kernel fills a dump `recv` up to about this much.
const BATCH_BYTES: usize = 32 * 1024;
/// The port id the simulated dump answers carry, as if a socket had asked.
const PORT_ID: u32 = 4_242;

/// Why a read of the simulator failed. The bytes are the simulator's own, so this means the
/// encoder and parser disagree: a bug, reported rather than hidden.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The parser found an `NLMSG_ERROR` in the simulator's bytes.
    #[error("the simulator's netlink bytes parsed as a kernel error: {0}")]
    Parse(#[from] KernelError),
    /// The dump answer did not end with `NLMSG_DONE` as parsed.
    #[error("the simulator's dump did not parse to its NLMSG_DONE")]
    NoDone,
}

/// The cluster and one node's table, as a flow source. See the crate docs.
#[derive(Debug)]
pub struct Simulator {
    cluster: Cluster,
    table: Table,
    /// The one buffer every read encodes into, as a netlink socket's receive buffer.
    buf: Vec<u8>,
    seq: u32,
}

impl Simulator {
    /// The table of `spec` over `cluster`, at clock time 0.
    pub fn new(cluster: Cluster, spec: &TableSpec) -> Simulator {
        let table = Table::new(&cluster, spec);
        Simulator {
            cluster,
            table,
            buf: Vec::with_capacity(BATCH_BYTES + 1024),
            seq: 0,
        }
    }

    /// The cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The table.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Name of the node whose table this is: the agent's `--node-name`.
    pub fn node_name(&self) -> &str {
        &self.cluster.nodes()[self.table.local_node() as usize].name
    }

    /// Moves simulated time to the clock reading `now_ms`: counters grow and flows churn.
    pub fn advance_to(&mut self, now_ms: u64) {
        self.table.advance_to(&self.cluster, now_ms);
    }

    /// The ground truth now. See [`Table::truth`].
    pub fn truth(&self) -> Truth {
        self.table.truth(&self.cluster)
    }

    /// Encodes `records` into the buffer and parses each full batch, as a `recv` loop would.
    fn parse_batch(
        buf: &mut Vec<u8>,
        stats: &mut ReadStats,
        sink: &mut dyn FnMut(&FlowRecord),
    ) -> Result<bool, SimError> {
        let batch = parse_netlink(buf, sink)?;
        stats.add(batch.stats);
        buf.clear();
        Ok(batch.done)
    }
}

impl FlowSource for Simulator {
    type Error = SimError;

    fn dump(&mut self, sink: &mut dyn FnMut(&FlowRecord)) -> Result<ReadStats, SimError> {
        self.table.prime();
        self.seq = self.seq.wrapping_add(1);
        let envelope = Envelope {
            seq: self.seq,
            port_id: PORT_ID,
        };
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut stats = ReadStats::default();
        let mut result = Ok(());
        for slot in 0..self.table.len() {
            let record = self.table.live_record(&self.cluster, slot);
            encode_flow(&mut buf, &record, FlowOrigin::Dump, envelope);
            if buf.len() >= BATCH_BYTES
                && let Err(e) = Self::parse_batch(&mut buf, &mut stats, sink)
            {
                result = Err(e);
                break;
            }
        }
        let done = result.and_then(|()| {
            encode_done(&mut buf, envelope);
            Self::parse_batch(&mut buf, &mut stats, sink)
        });
        self.buf = buf;
        if done? {
            Ok(stats)
        } else {
            Err(SimError::NoDone)
        }
    }

    fn drain_destroyed(
        &mut self,
        sink: &mut dyn FnMut(&FlowRecord),
    ) -> Result<ReadStats, SimError> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut stats = ReadStats::default();
        let mut result = Ok(());
        // Events carry no sequence number and the port id of whoever caused them: the kernel.
        self.table.take_events(&self.cluster, &mut |record| {
            if result.is_err() {
                return;
            }
            encode_flow(&mut buf, record, FlowOrigin::Destroyed, Envelope::default());
            if buf.len() >= BATCH_BYTES {
                result = Self::parse_batch(&mut buf, &mut stats, sink).map(|_| ());
            }
        });
        if result.is_ok() && !buf.is_empty() {
            result = Self::parse_batch(&mut buf, &mut stats, sink).map(|_| ());
        }
        self.buf = buf;
        result.map(|()| stats)
    }
}

/// A clock for [`Clocked`]: milliseconds since some start.
pub trait Clock {
    /// Milliseconds since the clock started; never decreasing.
    fn now_ms(&mut self) -> u64;
}

/// Wall-clock time since creation.
#[derive(Debug, Clone, Copy)]
pub struct WallClock(Instant);

impl Default for WallClock {
    fn default() -> Self {
        WallClock(Instant::now())
    }
}

impl Clock for WallClock {
    fn now_ms(&mut self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A [`Simulator`] that advances to its clock's reading before every read: the table lives in
/// real time while an agent polls it.
#[derive(Debug)]
pub struct Clocked<C> {
    /// The simulator.
    pub sim: Simulator,
    /// Its clock.
    pub clock: C,
}

impl<C: Clock> FlowSource for Clocked<C> {
    type Error = SimError;

    fn dump(&mut self, sink: &mut dyn FnMut(&FlowRecord)) -> Result<ReadStats, SimError> {
        let now = self.clock.now_ms();
        self.sim.advance_to(now);
        self.sim.dump(sink)
    }

    fn drain_destroyed(
        &mut self,
        sink: &mut dyn FnMut(&FlowRecord),
    ) -> Result<ReadStats, SimError> {
        let now = self.clock.now_ms();
        self.sim.advance_to(now);
        self.sim.drain_destroyed(sink)
    }
}

/// What [`run_bare`] measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BareReport {
    /// Dumps done.
    pub dumps: u64,
    /// Entries in the last dump.
    pub entries: u64,
    /// DESTROY events read, in all.
    pub destroy_events: u64,
    /// Median milliseconds to encode and parse one dump.
    pub median_dump_ms: f64,
}

/// Runs the simulator alone in real time for `duration`: a dump every `interval` into a sink that
/// only counts, events drained every 200 ms. This is the simulator's own cost and memory, to set
/// against an agent run on it (`netcost simulate --agent`).
pub fn run_bare(
    sim: Simulator,
    interval: std::time::Duration,
    duration: std::time::Duration,
) -> Result<BareReport, SimError> {
    let mut source = Clocked {
        sim,
        clock: WallClock::default(),
    };
    let started = Instant::now();
    let mut next_dump = started;
    let mut report = BareReport::default();
    let mut times = Vec::new();
    while started.elapsed() < duration {
        if Instant::now() >= next_dump {
            let t = Instant::now();
            report.entries = source.dump(&mut |_| {})?.entries;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            report.dumps += 1;
            next_dump += interval;
            tracing::info!(
                entries = report.entries,
                ms = times.last().copied().unwrap_or(0.0),
                "dump"
            );
        }
        report.destroy_events += source.drain_destroyed(&mut |_| {})?.entries;
        let wait = next_dump
            .saturating_duration_since(Instant::now())
            .min(std::time::Duration::from_millis(200));
        std::thread::sleep(wait);
    }
    times.sort_by(f64::total_cmp);
    report.median_dump_ms = times.get(times.len() / 2).copied().unwrap_or(0.0);
    Ok(report)
}
