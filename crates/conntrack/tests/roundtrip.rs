//! Property tests: what the builder writes, the parser reads back unchanged.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netcost_conntrack::{Envelope, encode_done, encode_flow, parse_netlink, parse_proc};
use netcost_core::flow::{Counters, FlowOrigin, FlowRecord, FlowTuple};
use proptest::prelude::*;

fn address(v6: bool) -> BoxedStrategy<IpAddr> {
    if v6 {
        any::<[u8; 16]>()
            .prop_map(|o| IpAddr::V6(Ipv6Addr::from(o)))
            .boxed()
    } else {
        any::<[u8; 4]>()
            .prop_map(|o| IpAddr::V4(Ipv4Addr::from(o)))
            .boxed()
    }
}

/// A tuple of one family. ICMP tuples carry the id in `src_port` and no `dst_port`, as the
/// kernel's do.
fn tuple(v6: bool, protocol: u8) -> impl Strategy<Value = FlowTuple> {
    (address(v6), address(v6), any::<u16>(), any::<u16>()).prop_map(
        move |(src, dst, src_port, dst_port)| FlowTuple {
            src,
            dst,
            src_port,
            dst_port: if protocol == 1 || protocol == 58 {
                0
            } else {
                dst_port
            },
            protocol,
        },
    )
}

fn counters() -> impl Strategy<Value = Counters> {
    (any::<u64>(), any::<u64>()).prop_map(|(bytes, packets)| Counters { bytes, packets })
}

fn record() -> impl Strategy<Value = FlowRecord> {
    (
        any::<bool>(),
        prop::sample::select(vec![6u8, 17, 132, 1, 58, 47]),
    )
        .prop_flat_map(|(v6, protocol)| {
            (
                (any::<u32>(), any::<u16>(), any::<u32>(), any::<u32>()),
                tuple(v6, protocol),
                tuple(v6, protocol),
                counters(),
                counters(),
            )
        })
        .prop_map(
            |((id, zone, status, mark), original, reply, original_counters, reply_counters)| {
                FlowRecord {
                    id,
                    zone,
                    status,
                    mark,
                    original,
                    reply,
                    original_counters,
                    reply_counters,
                }
            },
        )
}

fn origin() -> impl Strategy<Value = FlowOrigin> {
    prop_oneof![Just(FlowOrigin::Dump), Just(FlowOrigin::Destroyed)]
}

proptest! {
    #[test]
    fn a_built_message_parses_back_to_the_same_record(record in record(), origin in origin()) {
        let mut bytes = Vec::new();
        encode_flow(&mut bytes, &record, origin, Envelope::default());
        let mut parsed = Vec::new();
        let batch = parse_netlink(&bytes, &mut |r| parsed.push(*r)).expect("no error message");
        prop_assert_eq!(batch.stats.entries, 1);
        prop_assert_eq!(parsed, vec![record]);
    }

    #[test]
    fn a_built_dump_yields_every_record_in_order_then_done(
        records in prop::collection::vec(record(), 0..20),
    ) {
        let mut bytes = Vec::new();
        let envelope = Envelope { seq: 9, port_id: 1234 };
        for record in &records {
            encode_flow(&mut bytes, record, FlowOrigin::Dump, envelope);
        }
        encode_done(&mut bytes, envelope);
        let mut parsed = Vec::new();
        let batch = parse_netlink(&bytes, &mut |r| parsed.push(*r)).expect("no error message");
        prop_assert!(batch.done);
        prop_assert_eq!(parsed, records);
    }

    #[test]
    fn the_netlink_parser_survives_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut entries = 0;
        if let Ok(batch) = parse_netlink(&bytes, &mut |_| entries += 1) {
            prop_assert_eq!(batch.stats.entries, entries);
        }
    }

    #[test]
    fn the_netlink_parser_survives_any_corruption_of_a_real_message(
        record in record(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = Vec::new();
        encode_flow(&mut bytes, &record, FlowOrigin::Dump, Envelope::default());
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let _ = parse_netlink(&bytes, &mut |_| {});
    }

    #[test]
    fn the_proc_parser_survives_any_text(text in "(ipv[46] |src=|dst=|sport=|dport=|id=|zone=|bytes=|packets=|\\[UNREPLIED\\] |[0-9a-f:. ]{0,6}|\n){0,40}") {
        let mut entries = 0;
        let stats = parse_proc(&text, &mut |_| entries += 1);
        prop_assert_eq!(stats.entries, entries);
    }
}

/// Prints an address as the kernel does in `/proc/net/nf_conntrack` (`%pI4`, or `%pI6`: eight
/// groups of four hex digits, never compressed).
fn kernel_address(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => a
            .segments()
            .iter()
            .map(|s| format!("{s:04x}"))
            .collect::<Vec<_>>()
            .join(":"),
    }
}

/// Prints one record as `ct_seq_show()` would, for a protocol with ports.
fn proc_line(r: &FlowRecord) -> String {
    let (l3, family) = if r.original.src.is_ipv6() {
        ("ipv6", 10)
    } else {
        ("ipv4", 2)
    };
    let tuple = |t: &FlowTuple, c: &Counters| {
        format!(
            "src={} dst={} sport={} dport={} packets={} bytes={}",
            kernel_address(t.src),
            kernel_address(t.dst),
            t.src_port,
            t.dst_port,
            c.packets,
            c.bytes
        )
    };
    format!(
        "{l3:<8} {family} udp      17 29 {} {} mark={} zone={} use=2",
        tuple(&r.original, &r.original_counters),
        tuple(&r.reply, &r.reply_counters),
        r.mark,
        r.zone
    )
}

proptest! {
    #[test]
    fn a_proc_line_reads_back_the_tuples_counters_zone_and_mark(record in record()) {
        let mut record = record;
        for t in [&mut record.original, &mut record.reply] {
            t.protocol = 17;
        }
        let line = proc_line(&record);
        let mut parsed = Vec::new();
        let stats = parse_proc(&line, &mut |r| parsed.push(*r));
        prop_assert_eq!(stats.entries, 1, "{}", line);
        let got = parsed[0];
        prop_assert_eq!(got.original, record.original);
        prop_assert_eq!(got.reply, record.reply);
        prop_assert_eq!(got.original_counters, record.original_counters);
        prop_assert_eq!(got.reply_counters, record.reply_counters);
        prop_assert_eq!((got.zone, got.mark), (record.zone, record.mark));
    }
}
