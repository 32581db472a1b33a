//! The ctnetlink message builder: the inverse of [`parse_netlink`](crate::parse_netlink).
//!
//! It writes the attributes a [`FlowRecord`] holds, in the order and with the encoding the kernel
//! uses (checked against messages captured from kernel 6.18, see `tests/golden.rs`). It leaves out
//! what a record does not carry: `CTA_TIMEOUT`, `CTA_USE`, `CTA_PROTOINFO`, the ICMP type and code.
//! The simulator uses it to feed the real parser; the tests use it to build inputs.

use std::net::IpAddr;

use netcost_core::flow::{Counters, FlowOrigin, FlowRecord, FlowTuple};

use crate::consts::*;

/// The `nlmsghdr` fields a builder caller chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Envelope {
    /// `nlmsg_seq`: the request's sequence number in a dump answer, 0 in an event.
    pub seq: u32,
    /// `nlmsg_pid`: the port id of the requesting socket (for events: of the process that caused
    /// the event, or 0 for the kernel).
    pub port_id: u32,
}

/// Appends one conntrack entry to `out` as the kernel sends it.
///
/// - [`FlowOrigin::Dump`]: an `IPCTNL_MSG_CT_NEW` message with `NLM_F_MULTI`, as in a dump answer.
///   Attribute order: tuples, `CTA_ZONE` (only when non-zero), `CTA_STATUS`, `CTA_MARK`, `CTA_ID`,
///   counters.
/// - [`FlowOrigin::Destroyed`]: an `IPCTNL_MSG_CT_DELETE` event with no flags. Attribute order:
///   tuples, `CTA_ZONE`, `CTA_ID`, `CTA_STATUS`, counters, then `CTA_MARK` only when non-zero.
///
/// For ICMP and ICMPv6, `src_port` is written as the ICMP id and `dst_port` is not written, as in
/// the kernel's tuples.
///
/// The orders follow `ctnetlink_fill_info()` and `ctnetlink_conntrack_event()` in
/// net/netfilter/nf_conntrack_netlink.c. The family comes from `record.original.src`.
pub fn encode_flow(out: &mut Vec<u8>, record: &FlowRecord, origin: FlowOrigin, envelope: Envelope) {
    let family = match record.original.src {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    };
    let (subtype, flags) = match origin {
        FlowOrigin::Dump => (IPCTNL_MSG_CT_NEW, NLM_F_MULTI),
        FlowOrigin::Destroyed => (IPCTNL_MSG_CT_DELETE, 0),
    };
    let start = begin_message(out, ctnetlink_type(subtype), flags, envelope);
    put_nfgenmsg(out, family);
    put_tuple(out, CTA_TUPLE_ORIG, &record.original);
    put_tuple(out, CTA_TUPLE_REPLY, &record.reply);
    if record.zone != 0 {
        put_attr(out, CTA_ZONE, &record.zone.to_be_bytes());
    }
    match origin {
        FlowOrigin::Dump => {
            put_attr(out, CTA_STATUS, &record.status.to_be_bytes());
            put_attr(out, CTA_MARK, &record.mark.to_be_bytes());
            put_attr(out, CTA_ID, &record.id.to_be_bytes());
            put_counters(out, CTA_COUNTERS_ORIG, record.original_counters);
            put_counters(out, CTA_COUNTERS_REPLY, record.reply_counters);
        }
        FlowOrigin::Destroyed => {
            put_attr(out, CTA_ID, &record.id.to_be_bytes());
            put_attr(out, CTA_STATUS, &record.status.to_be_bytes());
            put_counters(out, CTA_COUNTERS_ORIG, record.original_counters);
            put_counters(out, CTA_COUNTERS_REPLY, record.reply_counters);
            if record.mark != 0 {
                put_attr(out, CTA_MARK, &record.mark.to_be_bytes());
            }
        }
    }
    end_message(out, start);
}

/// Appends the `NLMSG_DONE` message that ends a dump answer (`NLM_F_MULTI`, a 4-byte zero
/// payload, as the kernel sends it).
pub fn encode_done(out: &mut Vec<u8>, envelope: Envelope) {
    let start = begin_message(out, NLMSG_DONE, NLM_F_MULTI, envelope);
    out.extend_from_slice(&0i32.to_ne_bytes());
    end_message(out, start);
}

/// Appends an `NLMSG_ERROR` message carrying `errno` (positive, e.g. `libc::EPERM`), as the kernel
/// answers a refused request. The echoed request header is left zeroed.
pub fn encode_error(out: &mut Vec<u8>, errno: i32, envelope: Envelope) {
    let start = begin_message(out, NLMSG_ERROR, 0, envelope);
    out.extend_from_slice(&errno.wrapping_neg().to_ne_bytes());
    out.extend_from_slice(&[0; NLMSG_HDRLEN]);
    end_message(out, start);
}

/// Appends a dump request for the whole table: `IPCTNL_MSG_CT_GET` with `NLM_F_REQUEST |
/// NLM_F_DUMP` and family `AF_UNSPEC`, which walks IPv4 and IPv6 entries in one pass.
pub(crate) fn encode_dump_request(out: &mut Vec<u8>, seq: u32) {
    let envelope = Envelope { seq, port_id: 0 };
    let start = begin_message(
        out,
        ctnetlink_type(IPCTNL_MSG_CT_GET),
        NLM_F_REQUEST | NLM_F_DUMP,
        envelope,
    );
    put_nfgenmsg(out, AF_UNSPEC);
    end_message(out, start);
}

fn ctnetlink_type(subtype: u16) -> u16 {
    (NFNL_SUBSYS_CTNETLINK << 8) | subtype
}

/// Writes a `nlmsghdr` with a placeholder length; returns where the message starts.
fn begin_message(out: &mut Vec<u8>, kind: u16, flags: u16, envelope: Envelope) -> usize {
    let start = out.len();
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&envelope.seq.to_ne_bytes());
    out.extend_from_slice(&envelope.port_id.to_ne_bytes());
    start
}

fn put_nfgenmsg(out: &mut Vec<u8>, family: u8) {
    // struct nfgenmsg { __u8 nfgen_family; __u8 version; __be16 res_id; }
    out.extend_from_slice(&[family, NFNETLINK_V0, 0, 0]);
}

/// Writes an attribute header with a placeholder length; returns where the attribute starts.
fn begin_attr(out: &mut Vec<u8>, kind: u16) -> usize {
    let start = out.len();
    out.extend_from_slice(&0u16.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    start
}

/// Patches `nlmsg_len` of the message that starts at `start`, then pads to 4 bytes.
fn end_message(out: &mut Vec<u8>, start: usize) {
    let len = u32::try_from(out.len() - start).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    pad(out);
}

/// Patches `nla_len` of the attribute that starts at `start`, then pads to 4 bytes.
fn end_attr(out: &mut Vec<u8>, start: usize) {
    let len = u16::try_from(out.len() - start).unwrap_or(u16::MAX);
    out[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    pad(out);
}

fn pad(out: &mut Vec<u8>) {
    out.resize(align4(out.len()), 0);
}

fn put_attr(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let start = begin_attr(out, kind);
    out.extend_from_slice(value);
    end_attr(out, start);
}

fn put_tuple(out: &mut Vec<u8>, kind: u16, tuple: &FlowTuple) {
    let outer = begin_attr(out, kind | NLA_F_NESTED);
    let ip = begin_attr(out, CTA_TUPLE_IP | NLA_F_NESTED);
    put_ip(out, CTA_IP_V4_SRC, CTA_IP_V6_SRC, tuple.src);
    put_ip(out, CTA_IP_V4_DST, CTA_IP_V6_DST, tuple.dst);
    end_attr(out, ip);
    let proto = begin_attr(out, CTA_TUPLE_PROTO | NLA_F_NESTED);
    put_attr(out, CTA_PROTO_NUM, &[tuple.protocol]);
    match tuple.protocol {
        IPPROTO_ICMP => put_attr(out, CTA_PROTO_ICMP_ID, &tuple.src_port.to_be_bytes()),
        IPPROTO_ICMPV6 => put_attr(out, CTA_PROTO_ICMPV6_ID, &tuple.src_port.to_be_bytes()),
        _ => {
            put_attr(out, CTA_PROTO_SRC_PORT, &tuple.src_port.to_be_bytes());
            put_attr(out, CTA_PROTO_DST_PORT, &tuple.dst_port.to_be_bytes());
        }
    }
    end_attr(out, proto);
    end_attr(out, outer);
}

fn put_ip(out: &mut Vec<u8>, v4_kind: u16, v6_kind: u16, addr: IpAddr) {
    match addr {
        IpAddr::V4(a) => put_attr(out, v4_kind, &a.octets()),
        IpAddr::V6(a) => put_attr(out, v6_kind, &a.octets()),
    }
}

fn put_counters(out: &mut Vec<u8>, kind: u16, counters: Counters) {
    // ctnetlink_dump_counters() writes packets before bytes, each with nla_put_be64().
    let start = begin_attr(out, kind | NLA_F_NESTED);
    put_attr(out, CTA_COUNTERS_PACKETS, &counters.packets.to_be_bytes());
    put_attr(out, CTA_COUNTERS_BYTES, &counters.bytes.to_be_bytes());
    end_attr(out, start);
}
