//! Golden packets: ctnetlink messages captured from the real kernel (6.18, x86_64).
//!
//! Captured in a scratch network namespace with `nf_conntrack_acct=1`, an nftables ruleset that
//! loads conntrack (`ct state new accept`), a zone rule (`udp dport 5002 ct zone set 7`) and a DNAT
//! rule (`10.96.0.10:80 -> 10.1.0.1:8080`), after this traffic:
//!
//! - UDP 127.0.0.1 -> 127.0.0.1:5000: three 100-byte datagrams, one 50-byte answer;
//! - UDP fd00:1::1 -> fd00:1::1:5001: one 10-byte datagram, no answer;
//! - UDP 127.0.0.1 -> 127.0.0.1:5002 (zone 7): one 30-byte datagram, no answer;
//! - UDP 10.1.0.1 -> 10.96.0.10:80 (DNAT to 10.1.0.1:8080): one 40-byte datagram, one 60-byte answer;
//! - ICMP echo 127.0.0.1 -> 127.0.0.1, id 0x1234, 56 bytes of data, answered by the kernel;
//! - TCP 127.0.0.1 -> 127.0.0.1:6000: a connection carrying 1000 bytes.
//!
//! `data/dump_table.bin` is the raw answer to an `AF_UNSPEC` dump (all `recv`s concatenated) and
//! `data/proc_table.txt` is `/proc/net/nf_conntrack` read right after it, from the same table.
//! `data/destroy_events_udp6_zone7.bin` holds the DESTROY events of `conntrack -D` on a ::1 UDP
//! flow (two 200-byte datagrams, one 20-byte answer) and on a zone-7 UDP flow (one 30-byte
//! datagram).
//!
//! Expected figures below come from that traffic: an IPv4 UDP datagram is its payload plus 28 header
//! bytes, an IPv6 one its payload plus 48, an ICMP echo 56 + 8 + 20 = 84 bytes.

use std::net::IpAddr;

use netcost_conntrack::{Envelope, encode_flow, parse_netlink, parse_proc};
use netcost_core::flow::{Counters, FlowOrigin, FlowRecord, FlowTuple};

const DUMP_TABLE: &[u8] = include_bytes!("data/dump_table.bin");
const DESTROY_EVENTS: &[u8] = include_bytes!("data/destroy_events_udp6_zone7.bin");
const PROC_TABLE: &str = include_str!("data/proc_table.txt");

/// The first message of `dump_table.bin`: the DNAT'ed IPv4 UDP flow, as a dump entry.
#[rustfmt::skip]
const DNAT_UDP4_DUMP_ENTRY: [u8; 220] = [
    0xdc, 0x00, 0x00, 0x00, // nlmsg_len = 220 (native byte order)
    0x00, 0x01, // nlmsg_type = 0x0100
    0x02, 0x00, // nlmsg_flags = 0x2
    0x01, 0x00, 0x00, 0x00, // nlmsg_seq = 1
    0x27, 0x13, 0x00, 0x00, // nlmsg_pid = 4903
    0x02, 0x00, 0x00, 0x00, // nfgenmsg: family 2, version 0, res_id 0
    0x34, 0x00, 0x01, 0x80, // CTA_TUPLE_ORIG, nested, len 52
    0x14, 0x00, 0x01, 0x80, //   CTA_TUPLE_IP, nested, len 20
    0x08, 0x00, 0x01, 0x00, //     CTA_IP_V4_SRC, len 8
    0x0a, 0x01, 0x00, 0x01, //       = 10.1.0.1 (network order)
    0x08, 0x00, 0x02, 0x00, //     CTA_IP_V4_DST, len 8
    0x0a, 0x60, 0x00, 0x0a, //       = 10.96.0.10 (network order)
    0x1c, 0x00, 0x02, 0x80, //   CTA_TUPLE_PROTO, nested, len 28
    0x05, 0x00, 0x01, 0x00, //     CTA_PROTO_NUM, len 5
    0x11, //       = 17
    0x00, 0x00, 0x00, //       padding
    0x06, 0x00, 0x02, 0x00, //     CTA_PROTO_SRC_PORT, len 6
    0xae, 0x45, //       = 44613 (network order)
    0x00, 0x00, //       padding
    0x06, 0x00, 0x03, 0x00, //     CTA_PROTO_DST_PORT, len 6
    0x00, 0x50, //       = 80 (network order)
    0x00, 0x00, //       padding
    0x34, 0x00, 0x02, 0x80, // CTA_TUPLE_REPLY, nested, len 52
    0x14, 0x00, 0x01, 0x80, //   CTA_TUPLE_IP, nested, len 20
    0x08, 0x00, 0x01, 0x00, //     CTA_IP_V4_SRC, len 8
    0x0a, 0x01, 0x00, 0x01, //       = 10.1.0.1 (network order)
    0x08, 0x00, 0x02, 0x00, //     CTA_IP_V4_DST, len 8
    0x0a, 0x01, 0x00, 0x01, //       = 10.1.0.1 (network order)
    0x1c, 0x00, 0x02, 0x80, //   CTA_TUPLE_PROTO, nested, len 28
    0x05, 0x00, 0x01, 0x00, //     CTA_PROTO_NUM, len 5
    0x11, //       = 17
    0x00, 0x00, 0x00, //       padding
    0x06, 0x00, 0x02, 0x00, //     CTA_PROTO_SRC_PORT, len 6
    0x1f, 0x90, //       = 8080 (network order)
    0x00, 0x00, //       padding
    0x06, 0x00, 0x03, 0x00, //     CTA_PROTO_DST_PORT, len 6
    0xae, 0x45, //       = 44613 (network order)
    0x00, 0x00, //       padding
    0x08, 0x00, 0x03, 0x00, // CTA_STATUS, len 8
    0x00, 0x00, 0x01, 0xaa, //   = 426 (network order)
    0x08, 0x00, 0x08, 0x00, // CTA_MARK, len 8
    0x00, 0x00, 0x00, 0x00, //   = 0 (network order)
    0x08, 0x00, 0x0c, 0x00, // CTA_ID, len 8
    0xf5, 0xd5, 0x1f, 0x4a, //   = 4124385098 (network order)
    0x08, 0x00, 0x0b, 0x00, // CTA_USE, len 8
    0x00, 0x00, 0x00, 0x01, //   = 1 (network order)
    0x08, 0x00, 0x07, 0x00, // CTA_TIMEOUT, len 8
    0x00, 0x00, 0x00, 0x1d, //   = 29 (network order)
    0x1c, 0x00, 0x09, 0x80, // CTA_COUNTERS_ORIG, nested, len 28
    0x0c, 0x00, 0x01, 0x00, //   CTA_COUNTERS_PACKETS, len 12
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, //     = 1 (network order)
    0x0c, 0x00, 0x02, 0x00, //   CTA_COUNTERS_BYTES, len 12
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x44, //     = 68 (network order)
    0x1c, 0x00, 0x0a, 0x80, // CTA_COUNTERS_REPLY, nested, len 28
    0x0c, 0x00, 0x01, 0x00, //   CTA_COUNTERS_PACKETS, len 12
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, //     = 1 (network order)
    0x0c, 0x00, 0x02, 0x00, //   CTA_COUNTERS_BYTES, len 12
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x58, //     = 88 (network order)
];

/// The first message of `destroy_events_udp6_zone7.bin`: the DESTROY event of the ::1 UDP flow.
/// `nlmsg_pid` is the port id of the `conntrack -D` process that caused it.
#[rustfmt::skip]
const UDP6_DESTROY_EVENT: [u8; 252] = [
    0xfc, 0x00, 0x00, 0x00, // nlmsg_len = 252 (native byte order)
    0x02, 0x01, // nlmsg_type = 0x0102
    0x00, 0x00, // nlmsg_flags = 0x0
    0x00, 0x00, 0x00, 0x00, // nlmsg_seq = 0
    0xb0, 0xc6, 0xbe, 0xdf, // nlmsg_pid = 3753821872
    0x0a, 0x00, 0x00, 0x00, // nfgenmsg: family 10, version 0, res_id 0
    0x4c, 0x00, 0x01, 0x80, // CTA_TUPLE_ORIG, nested, len 76
    0x2c, 0x00, 0x01, 0x80, //   CTA_TUPLE_IP, nested, len 44
    0x14, 0x00, 0x03, 0x00, //     CTA_IP_V6_SRC, len 20
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, //       = ::1 (network order)
    0x14, 0x00, 0x04, 0x00, //     CTA_IP_V6_DST, len 20
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, //       = ::1 (network order)
    0x1c, 0x00, 0x02, 0x80, //   CTA_TUPLE_PROTO, nested, len 28
    0x05, 0x00, 0x01, 0x00, //     CTA_PROTO_NUM, len 5
    0x11, //       = 17
    0x00, 0x00, 0x00, //       padding
    0x06, 0x00, 0x02, 0x00, //     CTA_PROTO_SRC_PORT, len 6
    0xe6, 0x4c, //       = 58956 (network order)
    0x00, 0x00, //       padding
    0x06, 0x00, 0x03, 0x00, //     CTA_PROTO_DST_PORT, len 6
    0x13, 0x8b, //       = 5003 (network order)
    0x00, 0x00, //       padding
    0x4c, 0x00, 0x02, 0x80, // CTA_TUPLE_REPLY, nested, len 76
    0x2c, 0x00, 0x01, 0x80, //   CTA_TUPLE_IP, nested, len 44
    0x14, 0x00, 0x03, 0x00, //     CTA_IP_V6_SRC, len 20
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, //       = ::1 (network order)
    0x14, 0x00, 0x04, 0x00, //     CTA_IP_V6_DST, len 20
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, //       = ::1 (network order)
    0x1c, 0x00, 0x02, 0x80, //   CTA_TUPLE_PROTO, nested, len 28
    0x05, 0x00, 0x01, 0x00, //     CTA_PROTO_NUM, len 5
    0x11, //       = 17
    0x00, 0x00, 0x00, //       padding
    0x06, 0x00, 0x02, 0x00, //     CTA_PROTO_SRC_PORT, len 6
    0x13, 0x8b, //       = 5003 (network order)
    0x00, 0x00, //       padding
    0x06, 0x00, 0x03, 0x00, //     CTA_PROTO_DST_PORT, len 6
    0xe6, 0x4c, //       = 58956 (network order)
    0x00, 0x00, //       padding
    0x08, 0x00, 0x0c, 0x00, // CTA_ID, len 8
    0x6a, 0xc3, 0xd4, 0x08, //   = 1791218696 (network order)
    0x08, 0x00, 0x03, 0x00, // CTA_STATUS, len 8
    0x00, 0x00, 0x02, 0x0a, //   = 522 (network order)
    0x08, 0x00, 0x07, 0x00, // CTA_TIMEOUT, len 8
    0x00, 0x00, 0x00, 0x1d, //   = 29 (network order)
    0x1c, 0x00, 0x09, 0x80, // CTA_COUNTERS_ORIG, nested, len 28
    0x0c, 0x00, 0x01, 0x00, //   CTA_COUNTERS_PACKETS, len 12
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, //     = 2 (network order)
    0x0c, 0x00, 0x02, 0x00, //   CTA_COUNTERS_BYTES, len 12
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xf0, //     = 496 (network order)
    0x1c, 0x00, 0x0a, 0x80, // CTA_COUNTERS_REPLY, nested, len 28
    0x0c, 0x00, 0x01, 0x00, //   CTA_COUNTERS_PACKETS, len 12
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, //     = 1 (network order)
    0x0c, 0x00, 0x02, 0x00, //   CTA_COUNTERS_BYTES, len 12
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x44, //     = 68 (network order)
];

fn ip(text: &str) -> IpAddr {
    text.parse().expect("a valid address literal")
}

fn udp(src: &str, sport: u16, dst: &str, dport: u16) -> FlowTuple {
    FlowTuple {
        src: ip(src),
        dst: ip(dst),
        src_port: sport,
        dst_port: dport,
        protocol: 17,
    }
}

fn counters(packets: u64, bytes: u64) -> Counters {
    Counters { bytes, packets }
}

fn parse_all(buf: &[u8]) -> (Vec<FlowRecord>, netcost_conntrack::Batch) {
    let mut records = Vec::new();
    let batch = parse_netlink(buf, &mut |r| records.push(*r)).expect("no NLMSG_ERROR");
    (records, batch)
}

fn find(records: &[FlowRecord], proto: u8, dport: u16) -> FlowRecord {
    *records
        .iter()
        .find(|r| r.original.protocol == proto && r.original.dst_port == dport)
        .unwrap_or_else(|| panic!("no entry for protocol {proto} port {dport} in {records:#?}"))
}

/// Removes the top-level attributes a `FlowRecord` does not hold (`CTA_PROTOINFO` 4,
/// `CTA_TIMEOUT` 7, `CTA_USE` 11) from one message and fixes its length.
fn without_unread_attributes(message: &[u8]) -> Vec<u8> {
    let mut out = message[..20].to_vec();
    let mut at = 20;
    while at < message.len() {
        let len = usize::from(u16::from_ne_bytes([message[at], message[at + 1]]));
        let kind = u16::from_ne_bytes([message[at + 2], message[at + 3]]) & 0x3fff;
        let padded = (len + 3) & !3;
        if ![4, 7, 11].contains(&kind) {
            out.extend_from_slice(&message[at..at + padded]);
        }
        at += padded;
    }
    let total = u32::try_from(out.len()).expect("small message");
    out[..4].copy_from_slice(&total.to_ne_bytes());
    out
}

/// Splits a buffer into its netlink messages (test helper; trusts the golden data).
fn messages(buf: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let len = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
        out.push(&buf[at..at + len]);
        at += (len + 3) & !3;
    }
    out
}

#[test]
fn the_annotated_arrays_are_the_captured_bytes() {
    assert_eq!(&DUMP_TABLE[..220], &DNAT_UDP4_DUMP_ENTRY[..]);
    assert_eq!(&DESTROY_EVENTS[..252], &UDP6_DESTROY_EVENT[..]);
}

#[test]
fn a_dnat_dump_entry_shows_the_service_address_originally_and_the_backend_in_reply() {
    let (records, batch) = parse_all(&DNAT_UDP4_DUMP_ENTRY);
    assert_eq!((batch.stats.entries, batch.stats.malformed), (1, 0));
    assert!(!batch.done);
    assert_eq!(
        records,
        vec![FlowRecord {
            id: 0xf5d5_1f4a,
            zone: 0,
            // IPS_SEEN_REPLY | IPS_CONFIRMED | IPS_DST_NAT | IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE
            status: 0x1aa,
            mark: 0,
            original: udp("10.1.0.1", 44613, "10.96.0.10", 80),
            reply: udp("10.1.0.1", 8080, "10.1.0.1", 44613),
            // One 40-byte datagram out, one 60-byte answer back.
            original_counters: counters(1, 40 + 28),
            reply_counters: counters(1, 60 + 28),
        }]
    );
}

#[test]
fn an_ipv6_destroy_event_carries_the_final_counters() {
    let (records, batch) = parse_all(&UDP6_DESTROY_EVENT);
    assert_eq!(batch.stats.entries, 1);
    assert_eq!(
        records,
        vec![FlowRecord {
            id: 0x6ac3_d408,
            zone: 0,
            // IPS_SEEN_REPLY | IPS_CONFIRMED | IPS_DYING
            status: 0x20a,
            mark: 0,
            original: udp("::1", 58956, "::1", 5003),
            reply: udp("::1", 5003, "::1", 58956),
            // Two 200-byte datagrams out, one 20-byte answer back.
            original_counters: counters(2, 2 * (200 + 48)),
            reply_counters: counters(1, 20 + 48),
        }]
    );
}

#[test]
fn a_whole_dump_yields_every_entry_and_ends_done() {
    let (records, batch) = parse_all(DUMP_TABLE);
    assert!(batch.done);
    assert_eq!(
        (
            batch.stats.entries,
            batch.stats.malformed,
            batch.stats.unsupported
        ),
        (6, 0, 0)
    );

    let udp4 = find(&records, 17, 5000);
    assert_eq!(udp4.original_counters, counters(3, 3 * (100 + 28)));
    assert_eq!(udp4.reply_counters, counters(1, 50 + 28));

    let udp6 = find(&records, 17, 5001);
    assert_eq!(udp6.original.src, ip("fd00:1::1"));
    assert_eq!(udp6.original_counters, counters(1, 10 + 48));
    assert_eq!(udp6.reply_counters, counters(0, 0));

    let zoned = find(&records, 17, 5002);
    assert_eq!(zoned.zone, 7);
    assert_eq!(zoned.original_counters, counters(1, 30 + 28));

    let icmp = records
        .iter()
        .find(|r| r.original.protocol == 1)
        .expect("an ICMP entry");
    assert_eq!(
        (icmp.original.src_port, icmp.original.dst_port),
        (0x1234, 0)
    );
    assert_eq!(icmp.reply.src_port, 0x1234);
    assert_eq!(icmp.original_counters, counters(1, 56 + 8 + 20));
    assert_eq!(icmp.reply_counters, counters(1, 56 + 8 + 20));

    let tcp = find(&records, 6, 6000);
    assert!(tcp.original_counters.bytes >= 1000, "{tcp:?}");
}

#[test]
fn destroy_events_carry_the_zone_of_a_zoned_flow() {
    let (records, batch) = parse_all(DESTROY_EVENTS);
    assert_eq!((batch.stats.entries, batch.stats.malformed), (2, 0));
    let zoned = find(&records, 17, 5002);
    assert_eq!(zoned.zone, 7);
    assert_eq!(zoned.original_counters, counters(1, 30 + 28));
}

#[test]
fn a_tuple_attribute_longer_than_its_message_skips_only_that_entry() {
    let mut buf = DNAT_UDP4_DUMP_ENTRY.to_vec();
    // CTA_TUPLE_ORIG's nla_len (offset 20) claims 0x1000 bytes in a 220-byte message.
    buf[20..22].copy_from_slice(&0x1000u16.to_ne_bytes());
    buf.extend_from_slice(&UDP6_DESTROY_EVENT);
    let (records, batch) = parse_all(&buf);
    assert_eq!((batch.stats.entries, batch.stats.malformed), (1, 1));
    assert_eq!(records[0].original.dst_port, 5003);
}

#[test]
fn an_attribute_length_below_the_header_size_is_malformed() {
    let mut buf = DNAT_UDP4_DUMP_ENTRY.to_vec();
    // CTA_STATUS (offset 124) with nla_len 2.
    assert_eq!(&buf[124..128], &[0x08, 0x00, 0x03, 0x00]);
    buf[124..126].copy_from_slice(&2u16.to_ne_bytes());
    let (records, batch) = parse_all(&buf);
    assert!(records.is_empty());
    assert_eq!(batch.stats.malformed, 1);
}

#[test]
fn a_message_length_past_the_buffer_is_counted_and_ends_the_buffer() {
    let mut buf = DNAT_UDP4_DUMP_ENTRY.to_vec();
    buf[..4].copy_from_slice(&400u32.to_ne_bytes());
    let (records, batch) = parse_all(&buf);
    assert!(records.is_empty());
    assert_eq!(batch.stats.malformed, 1);
}

#[test]
fn an_entry_without_its_reply_tuple_is_malformed() {
    let mut buf = DNAT_UDP4_DUMP_ENTRY.to_vec();
    // Turn CTA_TUPLE_REPLY (offset 72) into an attribute type the parser ignores.
    assert_eq!(&buf[72..76], &[0x34, 0x00, 0x02, 0x80]);
    buf[74] = 0x7f;
    let (_, batch) = parse_all(&buf);
    assert_eq!((batch.stats.entries, batch.stats.malformed), (0, 1));
}

#[test]
fn every_truncation_of_a_dump_is_survived() {
    for cut in 0..DUMP_TABLE.len() {
        let mut entries = 0;
        let batch = parse_netlink(&DUMP_TABLE[..cut], &mut |_| entries += 1).expect("no error");
        assert_eq!(batch.stats.entries, entries);
        assert!(entries <= 6);
        assert!(!batch.done || cut >= DUMP_TABLE.len() - 20);
    }
}

#[test]
fn the_builder_reproduces_the_kernel_bytes_of_every_attribute_it_writes() {
    let dump = messages(DUMP_TABLE);
    let events = messages(DESTROY_EVENTS);
    let cases = dump
        .iter()
        .map(|m| (m, FlowOrigin::Dump))
        .chain(events.iter().map(|m| (m, FlowOrigin::Destroyed)));
    let mut compared = 0;
    for (message, origin) in cases {
        let (records, _) = parse_all(message);
        let [record] = records[..] else { continue };
        if record.original.protocol == 1 {
            // The kernel also writes the ICMP type and code, which a record does not hold.
            continue;
        }
        let envelope = Envelope {
            seq: u32::from_ne_bytes(message[8..12].try_into().expect("4 bytes")),
            port_id: u32::from_ne_bytes(message[12..16].try_into().expect("4 bytes")),
        };
        let mut built = Vec::new();
        encode_flow(&mut built, &record, origin, envelope);
        assert_eq!(built, without_unread_attributes(message), "{record:?}");
        compared += 1;
    }
    assert_eq!(compared, 5 + 2);
}

#[test]
fn proc_and_netlink_agree_on_the_same_table() {
    let (from_netlink, _) = parse_all(DUMP_TABLE);
    let mut from_proc = Vec::new();
    let stats = parse_proc(PROC_TABLE, &mut |r| from_proc.push(*r));
    assert_eq!((stats.entries, stats.malformed), (6, 0));
    for kernel in &from_netlink {
        let text = from_proc
            .iter()
            .find(|p| p.original == kernel.original)
            .unwrap_or_else(|| panic!("{kernel:?} missing from /proc"));
        assert_eq!(text.reply, kernel.reply);
        assert_eq!(text.zone, kernel.zone);
        assert_eq!(text.mark, kernel.mark);
        assert_eq!(text.original_counters, kernel.original_counters);
        assert_eq!(text.reply_counters, kernel.reply_counters);
        // The status bits the text shows agree with the kernel's.
        let shown = 0x02 | 0x04 | 0x08 | 0x10 | 0x20;
        assert_eq!(text.status & shown, kernel.status & shown, "{kernel:?}");
    }
}
