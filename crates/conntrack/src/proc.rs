//! `/proc/net/nf_conntrack`: the text form of the table, which Kubecost reads.
//!
//! One line per entry, as `ct_seq_show()` in net/netfilter/nf_conntrack_standalone.c prints it:
//!
//! ```text
//! ipv4     2 udp      17 29 src=127.0.0.1 dst=127.0.0.1 sport=43749 dport=5000 packets=3 bytes=384 src=127.0.0.1 dst=127.0.0.1 sport=5000 dport=43749 packets=1 bytes=78 mark=0 zone=0 use=2
//! ```
//!
//! The first `src`/`dst`/ports/`packets`/`bytes` group is the original direction and the second the
//! reply. ICMP tuples print `type= code= id=` instead of ports, where `id` is the ICMP id. IPv6
//! addresses are printed in full (`%pI6`: `fd00:0001:0000:...`). Lines without the leading
//! `ipv4     2` (the old `ip_conntrack` file, `conntrack -L`) are read too.
//!
//! The text has no entry id and no status word. The id is derived from the original tuple and the
//! zone (see [`derived_id`]); the status is rebuilt from the `[UNREPLIED]`, `[ASSURED]` and
//! `[OFFLOAD]` markers, with `IPS_SRC_NAT`/`IPS_DST_NAT` set when the reply tuple shows a
//! translation.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use netcost_core::flow::{
    Counters, FlowRecord, FlowSource, FlowTuple, IPS_DST_NAT, IPS_SRC_NAT, ReadStats,
};

use crate::consts::*;
use crate::error::Error;

/// Where the kernel publishes the table, for the network namespace of the reading process.
/// A thread that entered another namespace with `setns` reads
/// `/proc/thread-self/net/nf_conntrack` instead.
pub const PROC_CONNTRACK_PATH: &str = "/proc/net/nf_conntrack";

/// Reads `/proc/net/nf_conntrack` (or another file in its format) on every dump. It has no
/// events: [`FlowSource::drain_destroyed`] returns empty stats.
#[derive(Debug)]
pub struct ProcSource {
    path: PathBuf,
    line: Vec<u8>,
}

impl ProcSource {
    /// A source reading [`PROC_CONNTRACK_PATH`].
    pub fn new() -> Self {
        Self::with_path(PROC_CONNTRACK_PATH)
    }

    /// A source reading `path`.
    pub fn with_path(path: impl Into<PathBuf>) -> Self {
        ProcSource {
            path: path.into(),
            line: Vec::with_capacity(512),
        }
    }

    /// The file this source reads.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Default for ProcSource {
    fn default() -> Self {
        Self::new()
    }
}

impl FlowSource for ProcSource {
    type Error = Error;

    fn dump(&mut self, sink: &mut dyn FnMut(&FlowRecord)) -> Result<ReadStats, Error> {
        let fail = |source| Error::Proc {
            path: self.path.clone(),
            source,
        };
        let file = File::open(&self.path).map_err(fail)?;
        let mut reader = BufReader::with_capacity(64 << 10, file);
        let mut stats = ReadStats::default();
        loop {
            self.line.clear();
            if reader.read_until(b'\n', &mut self.line).map_err(fail)? == 0 {
                return Ok(stats);
            }
            match std::str::from_utf8(&self.line) {
                Ok(line) => count_line(line, &mut stats, sink),
                Err(_) => stats.malformed += 1,
            }
        }
    }

    fn drain_destroyed(&mut self, _sink: &mut dyn FnMut(&FlowRecord)) -> Result<ReadStats, Error> {
        Ok(ReadStats::default())
    }
}

/// Parses text in the `/proc/net/nf_conntrack` format and calls `sink` once per entry. Blank lines
/// are ignored; lines that cannot be read are counted in [`ReadStats::malformed`], lines of other
/// families in [`ReadStats::unsupported`]. Allocates nothing.
pub fn parse_proc(text: &str, sink: &mut dyn FnMut(&FlowRecord)) -> ReadStats {
    let mut stats = ReadStats::default();
    for line in text.lines() {
        count_line(line, &mut stats, sink);
    }
    stats
}

fn count_line(line: &str, stats: &mut ReadStats, sink: &mut dyn FnMut(&FlowRecord)) {
    match parse_line(line) {
        Line::Entry(record) => {
            stats.entries += 1;
            sink(&record);
        }
        Line::Blank => {}
        Line::Malformed => stats.malformed += 1,
        Line::Unsupported => stats.unsupported += 1,
    }
}

enum Line {
    Entry(FlowRecord),
    Blank,
    Malformed,
    Unsupported,
}

/// One direction as the line spells it, before validation.
#[derive(Default, Clone, Copy)]
struct RawTuple {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    src_port: u16,
    dst_port: u16,
    icmp_id_seen: bool,
    counters: Counters,
}

fn parse_line(line: &str) -> Line {
    let mut tokens = line.split_ascii_whitespace();
    let Some(first) = tokens.next() else {
        return Line::Blank;
    };
    let want_v6 = match first {
        "ipv4" | "ipv6" => {
            // The l3 number, then the l4 name.
            let _ = tokens.next();
            let _ = tokens.next();
            Some(first == "ipv6")
        }
        "unknown" => return Line::Unsupported,
        // The older layout starts with the l4 name.
        _ => None,
    };
    let Some(protocol) = tokens.next().and_then(|t| t.parse::<u8>().ok()) else {
        return Line::Malformed;
    };
    parse_fields(tokens, protocol, want_v6).map_or(Line::Malformed, Line::Entry)
}

/// Reads the `key=value` and `[MARKER]` tokens that follow the protocol number.
fn parse_fields<'a>(
    tokens: impl Iterator<Item = &'a str>,
    protocol: u8,
    want_v6: Option<bool>,
) -> Option<FlowRecord> {
    let mut tuples = [RawTuple::default(); 2];
    let mut direction: Option<usize> = None;
    let (mut id, mut zone, mut mark, mut markers) = (None, 0u16, 0u32, 0u32);
    for token in tokens {
        if token.starts_with('[') {
            markers |= match token {
                "[UNREPLIED]" => MARK_UNREPLIED,
                "[ASSURED]" => IPS_ASSURED,
                "[OFFLOAD]" => IPS_OFFLOAD,
                "[HW_OFFLOAD]" => IPS_HW_OFFLOAD,
                _ => 0,
            };
            continue;
        }
        // Tokens without '=' are the timeout and the TCP state.
        let Some((key, value)) = token.split_once('=') else {
            continue;
        };
        if key == "src" {
            let next = direction.map_or(0, |d| d + 1);
            tuples.get_mut(next)?.src = Some(value.parse().ok()?);
            direction = Some(next);
            continue;
        }
        let current = direction.and_then(|d| tuples.get_mut(d));
        match (key, current) {
            ("dst", Some(t)) => t.dst = Some(value.parse().ok()?),
            ("sport", Some(t)) => t.src_port = value.parse().ok()?,
            ("dport", Some(t)) => t.dst_port = value.parse().ok()?,
            ("packets", Some(t)) => t.counters.packets = value.parse().ok()?,
            ("bytes", Some(t)) => t.counters.bytes = value.parse().ok()?,
            // In an ICMP tuple, `id=` is the ICMP id (icmp_print_tuple()).
            ("id", Some(t)) if is_icmp(protocol) && !t.icmp_id_seen => {
                t.src_port = value.parse().ok()?;
                t.icmp_id_seen = true;
            }
            ("id", _) => id = Some(value.parse().ok()?),
            ("zone", _) => zone = value.parse().ok()?,
            ("mark", _) => mark = value.parse().ok()?,
            ("dst" | "sport" | "dport" | "packets" | "bytes", None) => return None,
            _ => {}
        }
    }
    let [original, reply] = tuples.map(|t| finish_tuple(t, protocol, want_v6));
    let (original, reply) = (original?, reply?);
    let [original_counters, reply_counters] = tuples.map(|t| t.counters);
    Some(FlowRecord {
        id: id.unwrap_or_else(|| derived_id(&original, zone)),
        zone,
        status: status(markers, &original, &reply),
        mark,
        original,
        reply,
        original_counters,
        reply_counters,
    })
}

/// A marker bit of our own, outside the `IPS_*` bits we build, for `[UNREPLIED]`.
const MARK_UNREPLIED: u32 = 1 << 31;

fn finish_tuple(raw: RawTuple, protocol: u8, want_v6: Option<bool>) -> Option<FlowTuple> {
    let (src, dst) = (raw.src?, raw.dst?);
    let v6 = src.is_ipv6();
    if dst.is_ipv6() != v6 || want_v6.is_some_and(|want| want != v6) {
        return None;
    }
    Some(FlowTuple {
        src,
        dst,
        src_port: raw.src_port,
        dst_port: raw.dst_port,
        protocol,
    })
}

/// Rebuilds the `IPS_*` bits the text shows. Entries in the table are always confirmed.
fn status(markers: u32, original: &FlowTuple, reply: &FlowTuple) -> u32 {
    let mut status = IPS_CONFIRMED | (markers & !MARK_UNREPLIED);
    if markers & MARK_UNREPLIED == 0 {
        status |= IPS_SEEN_REPLY;
    }
    let ports = !is_icmp(original.protocol);
    if reply.dst != original.src || (ports && reply.dst_port != original.src_port) {
        status |= IPS_SRC_NAT;
    }
    if reply.src != original.dst || (ports && reply.src_port != original.dst_port) {
        status |= IPS_DST_NAT;
    }
    status
}

/// The id given to an entry whose line has no `id=`: a 32-bit FNV-1a hash of the original tuple
/// and the zone. It is stable across reads and restarts (it does not depend on a random seed), so
/// the same entry gets the same id on every dump. It is not the kernel's `CTA_ID`.
pub fn derived_id(original: &FlowTuple, zone: u16) -> u32 {
    // FNV-1a, 32-bit: offset basis and prime from the FNV reference (http://www.isthe.com/chongo/tech/comp/fnv/).
    const OFFSET_BASIS: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    let mut hash = OFFSET_BASIS;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            hash = (hash ^ u32::from(b)).wrapping_mul(PRIME);
        }
    };
    for addr in [original.src, original.dst] {
        match addr {
            IpAddr::V4(a) => feed(&a.octets()),
            IpAddr::V6(a) => feed(&a.octets()),
        }
    }
    feed(&original.src_port.to_be_bytes());
    feed(&original.dst_port.to_be_bytes());
    feed(&[original.protocol]);
    feed(&zone.to_be_bytes());
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Option<FlowRecord> {
        match parse_line(line) {
            Line::Entry(r) => Some(r),
            _ => None,
        }
    }

    #[test]
    fn a_line_without_an_id_gets_the_same_derived_id_on_every_read() {
        let line = "ipv4     2 udp      17 29 src=10.0.0.1 dst=10.0.0.2 sport=1000 dport=53 packets=1 bytes=60 src=10.0.0.2 dst=10.0.0.1 sport=53 dport=1000 packets=1 bytes=90 mark=0 zone=0 use=2";
        let a = one(line).expect("parses");
        let b = one(line).expect("parses");
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, 0);
    }

    #[test]
    fn the_same_tuple_in_another_zone_gets_another_derived_id() {
        let line = |zone: u16| {
            format!(
                "ipv4 2 udp 17 29 src=10.0.0.1 dst=10.0.0.2 sport=1000 dport=53 src=10.0.0.2 dst=10.0.0.1 sport=53 dport=1000 mark=0 zone={zone} use=2"
            )
        };
        let a = one(&line(0)).expect("parses");
        let b = one(&line(7)).expect("parses");
        assert_ne!(a.id, b.id);
        assert_eq!(b.zone, 7);
    }

    #[test]
    fn an_explicit_id_is_kept() {
        let r = one("ipv4 2 tcp 6 10 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1 [ASSURED] mark=5 id=12345 use=1").expect("parses");
        assert_eq!((r.id, r.mark), (12345, 5));
        assert_eq!(r.status & IPS_ASSURED, IPS_ASSURED);
        assert_eq!(r.status & IPS_SEEN_REPLY, IPS_SEEN_REPLY);
    }

    #[test]
    fn unreplied_entries_lack_the_seen_reply_bit() {
        let r = one("ipv4 2 udp 17 29 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1 mark=0 use=1").expect("parses");
        assert_eq!(r.status & IPS_SEEN_REPLY, 0);
    }

    #[test]
    fn a_third_tuple_is_malformed() {
        let line = "ipv4 2 udp 17 29 src=10.0.0.1 dst=10.0.0.2 src=10.0.0.2 dst=10.0.0.1 src=10.0.0.3 dst=10.0.0.1";
        assert!(matches!(parse_line(line), Line::Malformed));
    }

    #[test]
    fn a_line_missing_its_reply_tuple_is_malformed() {
        let line = "ipv4 2 udp 17 29 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 packets=1 bytes=2";
        assert!(matches!(parse_line(line), Line::Malformed));
    }

    #[test]
    fn an_ipv4_address_on_an_ipv6_line_is_malformed() {
        let line = "ipv6 10 udp 17 29 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1";
        assert!(matches!(parse_line(line), Line::Malformed));
    }

    #[test]
    fn a_line_in_the_conntrack_cli_layout_is_read() {
        let r = one("udp      17 29 src=::1 dst=::1 sport=45815 dport=5001 packets=1 bytes=58 [UNREPLIED] src=::1 dst=::1 sport=5001 dport=45815 packets=0 bytes=0 mark=0 use=1").expect("parses");
        assert_eq!(
            r.original_counters,
            Counters {
                bytes: 58,
                packets: 1
            }
        );
        assert_eq!(r.original.dst_port, 5001);
    }

    #[test]
    fn blank_lines_are_neither_entries_nor_errors() {
        assert_eq!(parse_proc("\n   \n", &mut |_| {}), ReadStats::default());
    }
}
