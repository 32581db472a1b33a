//! The ctnetlink parser: a pure function over the bytes of one `recv`.
//!
//! It reads only the attributes a [`FlowRecord`] holds and skips every other one, so new kernel
//! attributes cannot break it. It allocates nothing: each entry is filled on the stack and lent to
//! the sink.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netcost_core::flow::{Counters, FlowRecord, FlowTuple, ReadStats};

use crate::consts::*;

/// What one buffer of netlink messages held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Batch {
    /// Entries handed to the sink, and entries skipped, in this buffer.
    pub stats: ReadStats,
    /// True when the buffer held `NLMSG_DONE`: a dump is complete.
    pub done: bool,
}

/// The kernel answered a request with `NLMSG_ERROR` and a non-zero errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the kernel refused the conntrack request: {}", std::io::Error::from_raw_os_error(*.errno))]
pub struct KernelError {
    /// The positive errno (`EPERM`, `ENOENT`, ...).
    pub errno: i32,
}

/// Parses a buffer holding one or more netlink messages, as one `recv` on a ctnetlink socket
/// returns them, and calls `sink` once per conntrack entry.
///
/// Both dumped entries (`IPCTNL_MSG_CT_NEW`) and DESTROY events (`IPCTNL_MSG_CT_DELETE`) are
/// handed out; the caller knows which socket it read. Parsing stops at `NLMSG_DONE`, which sets
/// [`Batch::done`].
///
/// A malformed entry (a truncated attribute, a wrong attribute length, a missing tuple) is
/// skipped and counted in [`ReadStats::malformed`]; a message with a broken header ends the buffer,
/// since nothing after it can be located. Messages of other families or subsystems are counted in
/// [`ReadStats::unsupported`]. Nothing here panics, whatever the input.
///
/// # Errors
///
/// Returns [`KernelError`] for an `NLMSG_ERROR` message with a non-zero errno. Entries before it
/// have already been handed to `sink`.
pub fn parse_netlink(buf: &[u8], sink: &mut dyn FnMut(&FlowRecord)) -> Result<Batch, KernelError> {
    let mut batch = Batch::default();
    let mut rest = buf;
    while !rest.is_empty() {
        let Some(header) = MessageHeader::read(rest) else {
            batch.stats.malformed += 1;
            break;
        };
        let payload = &rest[NLMSG_HDRLEN..header.len];
        rest = rest.get(align4(header.len)..).unwrap_or(&[]);
        match control(header.kind, payload)? {
            Control::Done => {
                batch.done = true;
                break;
            }
            Control::Malformed => {
                batch.stats.malformed += 1;
                continue;
            }
            Control::Ignore | Control::Ack => continue,
            Control::Other => {}
        }
        match header.kind {
            kind if is_conntrack_entry(kind) => match parse_entry(payload) {
                Ok(record) => {
                    batch.stats.entries += 1;
                    sink(&record);
                }
                Err(Skip::Malformed) => batch.stats.malformed += 1,
                Err(Skip::Unsupported) => batch.stats.unsupported += 1,
            },
            _ => batch.stats.unsupported += 1,
        }
    }
    Ok(batch)
}

/// What a netlink control message tells the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// `NLMSG_NOOP`, `NLMSG_OVERRUN`: nothing to do.
    Ignore,
    /// `NLMSG_DONE` with status 0 (or none, from very old kernels): the dump is complete.
    Done,
    /// `NLMSG_ERROR` with errno 0: an acknowledgement.
    Ack,
    /// `NLMSG_ERROR` too short to hold its errno.
    Malformed,
    /// Not a control message: a payload message for the caller.
    Other,
}

/// Reads a control message. `NLMSG_DONE`'s payload is the dump's final status
/// (`netlink_dump_done()`): 0, or -errno when the dump failed part way. `NLMSG_ERROR`'s is
/// `struct nlmsgerr { int error; struct nlmsghdr msg; }`, whose error is -errno, 0 for an ack.
///
/// # Errors
///
/// [`KernelError`] for a non-zero errno in either.
pub(crate) fn control(kind: u16, payload: &[u8]) -> Result<Control, KernelError> {
    let code = read_array::<4>(payload).map(i32::from_ne_bytes);
    match kind {
        NLMSG_NOOP | NLMSG_OVERRUN => Ok(Control::Ignore),
        NLMSG_DONE => {
            if let Some(code) = code {
                kernel_status(code)?;
            }
            Ok(Control::Done)
        }
        NLMSG_ERROR => match code {
            None => Ok(Control::Malformed),
            Some(code) => kernel_status(code).map(|()| Control::Ack),
        },
        _ => Ok(Control::Other),
    }
}

/// Turns a kernel status word (0 or -errno) into a result.
fn kernel_status(code: i32) -> Result<(), KernelError> {
    match code {
        0 => Ok(()),
        code => Err(KernelError {
            errno: code.checked_neg().unwrap_or(i32::MAX),
        }),
    }
}

/// `struct nlmsghdr`, checked against the buffer it sits in.
pub(crate) struct MessageHeader {
    /// `nlmsg_len`, at least the header and at most the buffer.
    pub(crate) len: usize,
    /// `nlmsg_type`.
    pub(crate) kind: u16,
}

impl MessageHeader {
    pub(crate) fn read(buf: &[u8]) -> Option<Self> {
        // nlmsg_len (u32), nlmsg_type (u16), nlmsg_flags (u16), nlmsg_seq (u32), nlmsg_pid (u32),
        // all in host byte order.
        let len = usize::try_from(u32::from_ne_bytes(read_array::<4>(buf)?)).ok()?;
        let kind = u16::from_ne_bytes(read_array::<2>(buf.get(4..)?)?);
        (NLMSG_HDRLEN..=buf.len())
            .contains(&len)
            .then_some(Self { len, kind })
    }
}

fn is_conntrack_entry(kind: u16) -> bool {
    kind >> 8 == NFNL_SUBSYS_CTNETLINK
        && matches!(kind & 0xff, IPCTNL_MSG_CT_NEW | IPCTNL_MSG_CT_DELETE)
}

/// Why an entry was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skip {
    Malformed,
    Unsupported,
}

/// Parses the payload of one ctnetlink entry message: `struct nfgenmsg`, then attributes.
fn parse_entry(payload: &[u8]) -> Result<FlowRecord, Skip> {
    let family = *payload.first().ok_or(Skip::Malformed)?;
    let attrs = payload.get(NFGENMSG_LEN..).ok_or(Skip::Malformed)?;
    if family != AF_INET && family != AF_INET6 {
        return Err(Skip::Unsupported);
    }
    let mut original = None;
    let mut reply = None;
    let mut record = FlowRecord {
        id: 0,
        zone: 0,
        status: 0,
        mark: 0,
        original: EMPTY_TUPLE,
        reply: EMPTY_TUPLE,
        original_counters: Counters::default(),
        reply_counters: Counters::default(),
    };
    for attr in Attrs(attrs) {
        let (kind, value) = attr?;
        match kind {
            CTA_TUPLE_ORIG => original = Some(parse_tuple(value, family)?),
            CTA_TUPLE_REPLY => reply = Some(parse_tuple(value, family)?),
            CTA_COUNTERS_ORIG => record.original_counters = parse_counters(value)?,
            CTA_COUNTERS_REPLY => record.reply_counters = parse_counters(value)?,
            CTA_ID => record.id = be_u32(value)?,
            CTA_STATUS => record.status = be_u32(value)?,
            CTA_MARK => record.mark = be_u32(value)?,
            CTA_ZONE => record.zone = be_u16(value)?,
            _ => {}
        }
    }
    record.original = original.ok_or(Skip::Malformed)?;
    record.reply = reply.ok_or(Skip::Malformed)?;
    Ok(record)
}

const EMPTY_TUPLE: FlowTuple = FlowTuple {
    src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    src_port: 0,
    dst_port: 0,
    protocol: 0,
};

/// Parses `CTA_TUPLE_ORIG` or `CTA_TUPLE_REPLY`: nested `CTA_TUPLE_IP` and `CTA_TUPLE_PROTO`.
fn parse_tuple(nested: &[u8], family: u8) -> Result<FlowTuple, Skip> {
    let (mut src, mut dst, mut protocol) = (None, None, None);
    let mut tuple = EMPTY_TUPLE;
    for attr in Attrs(nested) {
        match attr? {
            (CTA_TUPLE_IP, ip) => {
                for attr in Attrs(ip) {
                    match attr? {
                        (CTA_IP_V4_SRC, v) if family == AF_INET => src = Some(ipv4(v)?),
                        (CTA_IP_V4_DST, v) if family == AF_INET => dst = Some(ipv4(v)?),
                        (CTA_IP_V6_SRC, v) if family == AF_INET6 => src = Some(ipv6(v)?),
                        (CTA_IP_V6_DST, v) if family == AF_INET6 => dst = Some(ipv6(v)?),
                        (CTA_IP_V4_SRC..=CTA_IP_V6_DST, _) => return Err(Skip::Malformed),
                        _ => {}
                    }
                }
            }
            (CTA_TUPLE_PROTO, proto) => {
                for attr in Attrs(proto) {
                    match attr? {
                        (CTA_PROTO_NUM, v) => protocol = Some(u8::from_be_bytes(exact(v)?)),
                        (CTA_PROTO_SRC_PORT | CTA_PROTO_ICMP_ID | CTA_PROTO_ICMPV6_ID, v) => {
                            tuple.src_port = be_u16(v)?;
                        }
                        (CTA_PROTO_DST_PORT, v) => tuple.dst_port = be_u16(v)?,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    tuple.src = src.ok_or(Skip::Malformed)?;
    tuple.dst = dst.ok_or(Skip::Malformed)?;
    tuple.protocol = protocol.ok_or(Skip::Malformed)?;
    Ok(tuple)
}

/// Parses `CTA_COUNTERS_ORIG` or `CTA_COUNTERS_REPLY`. Accepts the 64-bit attributes and the old
/// 32-bit ones; `CTA_COUNTERS_PAD` and unknown attributes are skipped.
fn parse_counters(nested: &[u8]) -> Result<Counters, Skip> {
    let mut counters = Counters::default();
    for attr in Attrs(nested) {
        match attr? {
            (CTA_COUNTERS_PACKETS, v) => counters.packets = be_u64(v)?,
            (CTA_COUNTERS_BYTES, v) => counters.bytes = be_u64(v)?,
            (CTA_COUNTERS32_PACKETS, v) => counters.packets = be_u32(v)?.into(),
            (CTA_COUNTERS32_BYTES, v) => counters.bytes = be_u32(v)?.into(),
            _ => {}
        }
    }
    Ok(counters)
}

/// Iterates over a run of netlink attributes, yielding `(type without flag bits, value)`.
///
/// A truncated attribute or a length that runs past the buffer yields one `Err` and ends the run.
pub(crate) struct Attrs<'a>(pub(crate) &'a [u8]);

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(u16, &'a [u8]), Skip>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        // struct nlattr { __u16 nla_len; __u16 nla_type; }, host byte order; nla_len counts the
        // header but not the padding to 4 bytes.
        let header = read_array::<4>(self.0);
        let len = header.map(|h| usize::from(u16::from_ne_bytes([h[0], h[1]])));
        let Some((header, len)) = header
            .zip(len)
            .filter(|&(_, len)| (NLA_HDRLEN..=self.0.len()).contains(&len))
        else {
            self.0 = &[];
            return Some(Err(Skip::Malformed));
        };
        let kind = u16::from_ne_bytes([header[2], header[3]]) & NLA_TYPE_MASK;
        let value = &self.0[NLA_HDRLEN..len];
        self.0 = self.0.get(align4(len)..).unwrap_or(&[]);
        Some(Ok((kind, value)))
    }
}

pub(crate) fn read_array<const N: usize>(buf: &[u8]) -> Option<[u8; N]> {
    buf.get(..N)?.try_into().ok()
}

fn exact<const N: usize>(value: &[u8]) -> Result<[u8; N], Skip> {
    value.try_into().map_err(|_| Skip::Malformed)
}

fn be_u16(value: &[u8]) -> Result<u16, Skip> {
    exact(value).map(u16::from_be_bytes)
}

fn be_u32(value: &[u8]) -> Result<u32, Skip> {
    exact(value).map(u32::from_be_bytes)
}

fn be_u64(value: &[u8]) -> Result<u64, Skip> {
    exact(value).map(u64::from_be_bytes)
}

fn ipv4(value: &[u8]) -> Result<IpAddr, Skip> {
    exact::<4>(value).map(|octets| IpAddr::V4(Ipv4Addr::from(octets)))
}

fn ipv6(value: &[u8]) -> Result<IpAddr, Skip> {
    exact::<16>(value).map(|octets| IpAddr::V6(Ipv6Addr::from(octets)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(buf: &[u8]) -> (Vec<FlowRecord>, Result<Batch, KernelError>) {
        let mut records = Vec::new();
        let result = parse_netlink(buf, &mut |r| records.push(*r));
        (records, result)
    }

    #[test]
    fn an_empty_buffer_holds_nothing_and_is_not_done() {
        let (records, batch) = collect(&[]);
        assert!(records.is_empty());
        assert_eq!(batch, Ok(Batch::default()));
    }

    #[test]
    fn a_header_shorter_than_sixteen_bytes_is_one_malformed_message() {
        let (records, batch) = collect(&[20, 0, 0, 0, 3, 0]);
        assert!(records.is_empty());
        assert_eq!(batch.map(|b| b.stats.malformed), Ok(1));
    }

    /// A message of `kind` whose payload starts with the status word `code`, padded to `len`.
    fn status_message(kind: u16, code: i32, len: usize) -> Vec<u8> {
        let mut msg = vec![0u8; len];
        msg[..4].copy_from_slice(&u32::try_from(len).expect("small").to_ne_bytes());
        msg[4..6].copy_from_slice(&kind.to_ne_bytes());
        msg[16..20].copy_from_slice(&code.to_ne_bytes());
        msg
    }

    #[test]
    fn an_error_message_with_errno_zero_is_an_acknowledgement() {
        let msg = status_message(NLMSG_ERROR, 0, 36);
        assert_eq!(collect(&msg).1, Ok(Batch::default()));
    }

    #[test]
    fn an_error_message_returns_the_positive_errno() {
        let msg = status_message(NLMSG_ERROR, -libc::EPERM, 36);
        assert_eq!(collect(&msg).1, Err(KernelError { errno: libc::EPERM }));
    }

    #[test]
    fn a_done_message_carrying_an_errno_fails_the_dump() {
        let msg = status_message(NLMSG_DONE, -libc::EBUSY, 20);
        assert_eq!(collect(&msg).1, Err(KernelError { errno: libc::EBUSY }));
    }

    #[test]
    fn an_attribute_longer_than_its_buffer_is_malformed() {
        // nla_len 12 but only 6 bytes present.
        let buf = [12, 0, 1, 0, 0xaa, 0xbb];
        let items: Vec<_> = Attrs(&buf).collect();
        assert_eq!(items, vec![Err(Skip::Malformed)]);
    }

    #[test]
    fn attribute_types_lose_their_nested_and_byte_order_flags() {
        let buf = [5, 0, 0x09, 0xc0, 7, 0, 0, 0];
        let items: Vec<_> = Attrs(&buf).collect();
        assert_eq!(items, vec![Ok((CTA_COUNTERS_ORIG, &[7u8][..]))]);
    }
}
