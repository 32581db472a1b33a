//! What a flow source hands to the pipeline: one conntrack entry, already parsed.
//!
//! These are plain `Copy` values so that a parser can fill one on the stack for every entry of a
//! dump and hand out a reference, without a heap allocation per entry.

use std::net::{IpAddr, SocketAddr};

/// One direction of a conntrack entry: the addresses and ports as the kernel recorded them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowTuple {
    /// Source address of this direction.
    pub src: IpAddr,
    /// Destination address of this direction.
    pub dst: IpAddr,
    /// Source port (0 for protocols without ports; the ICMP id for ICMP).
    pub src_port: u16,
    /// Destination port (0 for protocols without ports).
    pub dst_port: u16,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, ...).
    pub protocol: u8,
}

/// Byte and packet counters of one direction. They are zero when the entry was created while
/// `nf_conntrack_acct` was off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Counters {
    /// Bytes, counted at layer 3 (IP headers included).
    pub bytes: u64,
    /// Packets.
    pub packets: u64,
}

/// One conntrack entry.
///
/// `original` is the tuple as the first packet was seen; its counters are bytes the original source
/// sent. `reply` is the tuple the kernel expects for answers, after NAT: with DNAT, `reply.src` is
/// the real backend; with SNAT, `reply.dst` is the translated (node) address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowRecord {
    /// `CTA_ID`: the kernel's id of the entry. Ids can be reused once an entry is freed.
    pub id: u32,
    /// `CTA_ZONE`: the conntrack zone (0 unless zones are configured).
    pub zone: u16,
    /// `CTA_STATUS` bits (`IPS_*`).
    pub status: u32,
    /// `CTA_MARK`.
    pub mark: u32,
    /// The original direction.
    pub original: FlowTuple,
    /// The reply direction.
    pub reply: FlowTuple,
    /// `CTA_COUNTERS_ORIG`: what the original source sent.
    pub original_counters: Counters,
    /// `CTA_COUNTERS_REPLY`: what the original source received.
    pub reply_counters: Counters,
}

impl FlowRecord {
    /// An entry of `client` calling `server` over TCP without NAT, `sent` bytes counted in the
    /// original direction and `received` in the reply. For tests, benchmarks and examples (the
    /// sources fill records from the kernel); packet counts stay 0, which nothing downstream reads.
    pub fn tcp(id: u32, client: SocketAddr, server: SocketAddr, sent: u64, received: u64) -> Self {
        let tuple = |from: SocketAddr, to: SocketAddr| FlowTuple {
            src: from.ip(),
            dst: to.ip(),
            src_port: from.port(),
            dst_port: to.port(),
            protocol: 6,
        };
        FlowRecord {
            id,
            zone: 0,
            status: 0,
            mark: 0,
            original: tuple(client, server),
            reply: tuple(server, client),
            original_counters: Counters {
                bytes: sent,
                packets: 0,
            },
            reply_counters: Counters {
                bytes: received,
                packets: 0,
            },
        }
    }

    /// This entry as NAT left it: answers come from `from` (the real backend, after DNAT) and go
    /// to `to` (the node, after SNAT).
    pub fn natted(mut self, from: IpAddr, to: IpAddr) -> Self {
        self.reply.src = from;
        self.reply.dst = to;
        self
    }
}

/// `IPS_SRC_NAT` from `linux/netfilter/nf_conntrack_common.h`.
pub const IPS_SRC_NAT: u32 = 1 << 4;
/// `IPS_DST_NAT` from `linux/netfilter/nf_conntrack_common.h`.
pub const IPS_DST_NAT: u32 = 1 << 5;

/// `IPS_DYING` from `linux/netfilter/nf_conntrack_common.h`: the kernel has begun to delete the
/// entry. `nf_ct_delete` sets it before it sends the DESTROY event, so a dump that still meets
/// such an entry in the hash table races with that event.
pub const IPS_DYING: u32 = 1 << 9;

/// Why an entry was handed to the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowOrigin {
    /// The entry is alive: it came from a dump of the table.
    Dump,
    /// The entry was destroyed: it came from a DESTROY event and carries its final counters.
    Destroyed,
}

/// What a source counted while reading, for the operational metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadStats {
    /// Entries handed to the sink.
    pub entries: u64,
    /// Entries skipped because they were malformed (truncated attribute, bad length, ...).
    pub malformed: u64,
    /// Entries skipped because they are not IPv4/IPv6 flows we can attribute (other families).
    pub unsupported: u64,
    /// Event messages the kernel dropped (ENOBUFS) since the last read. When non-zero the pipeline
    /// cannot trust that it saw every DESTROY and must resync with a dump.
    pub events_lost: u64,
}

impl ReadStats {
    /// Adds another read's figures to these.
    pub fn add(&mut self, other: ReadStats) {
        self.entries += other.entries;
        self.malformed += other.malformed;
        self.unsupported += other.unsupported;
        self.events_lost += other.events_lost;
    }
}

/// A source of conntrack entries: the kernel over netlink, `/proc/net/nf_conntrack`, or the
/// simulator. The pipeline drives it and keeps all per-flow state; a source only reads. (The
/// netlink source reads DESTROY events on a thread of its own and queues them until asked.)
pub trait FlowSource {
    /// The source's error type, for failures that stop a whole read (socket errors, ...).
    /// Per-entry garbage is not an error: it is skipped and counted in [`ReadStats`].
    type Error: std::error::Error + Send + Sync + 'static;

    /// Streams every live entry of the table to `sink`.
    fn dump(&mut self, sink: &mut dyn FnMut(&FlowRecord)) -> Result<ReadStats, Self::Error>;

    /// Streams the entries destroyed since the last call to `sink`, without blocking. A source
    /// without events (such as `/proc`) returns empty stats.
    fn drain_destroyed(
        &mut self,
        sink: &mut dyn FnMut(&FlowRecord),
    ) -> Result<ReadStats, Self::Error>;

    /// Streams every live entry to `sink` as [`FlowOrigin::Dump`] and, interleaved, the DESTROY
    /// events that arrive meanwhile as [`FlowOrigin::Destroyed`], in the order the source got
    /// them. A source whose events are read while it dumps overrides this, so that events never
    /// wait behind a long dump; the default dumps alone.
    ///
    /// The sink must cope with any interleaving: a dump record may be older than an event of the
    /// same entry handed to it before (the kernel builds dump batches ahead of the reader).
    fn dump_with_events(
        &mut self,
        sink: &mut dyn FnMut(&FlowRecord, FlowOrigin),
    ) -> Result<InterleavedRead, Self::Error> {
        let dump = self.dump(&mut |record| sink(record, FlowOrigin::Dump))?;
        Ok(InterleavedRead {
            dump,
            events: ReadStats::default(),
        })
    }

    /// Waits until a DESTROY event is pending or `timeout` has passed, whichever comes first. The
    /// default, for sources without events, just lets `timeout` pass.
    fn wait_for_events(&mut self, timeout: std::time::Duration) {
        std::thread::sleep(timeout);
    }
}

/// What [`FlowSource::dump_with_events`] read, the dump and the events apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InterleavedRead {
    /// The dump's entries.
    pub dump: ReadStats,
    /// The events handed to the sink during the dump.
    pub events: ReadStats,
}
