//! Reads the sockets of the current network namespace over `NETLINK_SOCK_DIAG` (inet_diag): a
//! dump of every TCP or UDP socket of one family, or the one socket that owns a tuple, each with
//! its cgroup v2 id (`INET_DIAG_CGROUP_ID`, Linux ≥ 5.7).
//!
//! Hand-parsed, like the ctnetlink parser: the `netlink-packet-sock-diag` crate has no variant
//! for `INET_DIAG_CGROUP_ID` (it would land in a generic attribute) and builds a `Vec` per socket
//! and per attribute, which at a million sockets is a million allocations per dump. Here each
//! socket is filled on the stack and lent to a sink.
//!
//! Reading other processes' sockets of one's own network namespace needs no capability: the
//! kernel checks `CAP_NET_ADMIN` only for `INET_DIAG_MARK` and `INET_DIAG_CLASS_ID`, which are
//! not asked for.
//!
//! What it does not do: map a cgroup to a pod (see [`crate::cgroup`]), keep any state between
//! calls, or look into other network namespaces. Malformed messages are skipped and counted,
//! never a panic.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use netlink_sys::{Socket, SocketAddr as NetlinkAddr};

use crate::consts::{AF_INET, AF_INET6, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_HDRLEN, align4};
use crate::error::Error;
use crate::parse::{Attrs, Control, KernelError, MessageHeader, control, read_array};

// include/uapi/linux/sock_diag.h
/// `SOCK_DIAG_BY_FAMILY`: the request and answer message type.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `NETLINK_SOCK_DIAG` (also known as `NETLINK_INET_DIAG`).
const NETLINK_SOCK_DIAG: isize = 4;

// include/uapi/linux/inet_diag.h
/// `INET_DIAG_CGROUP_ID`: u64, the socket's cgroup v2 id. Sent for every full socket, unasked.
const INET_DIAG_CGROUP_ID: u16 = 21;
/// `INET_DIAG_NOCOOKIE`: a request with this cookie matches any socket of the tuple.
const INET_DIAG_NOCOOKIE: u32 = !0;
/// `sizeof(struct inet_diag_sockid)`: ports, addresses, interface, cookie.
const SOCKID_LEN: usize = 48;
/// `sizeof(struct inet_diag_req_v2)`.
const REQ_V2_LEN: usize = 8 + SOCKID_LEN;
/// `sizeof(struct inet_diag_msg)`.
const DIAG_MSG_LEN: usize = 4 + SOCKID_LEN + 20;

// include/net/tcp_states.h
/// `TCP_TIME_WAIT`: a timewait socket, which has no cgroup.
pub const TCP_TIME_WAIT: u8 = 6;
/// `TCP_CLOSE`: what an unconnected UDP socket reports.
pub const TCP_CLOSE: u8 = 7;
/// `TCP_LISTEN`.
pub const TCP_LISTEN: u8 = 10;
/// `TCP_NEW_SYN_RECV`: a request socket (a half-open inbound connection), which has no cgroup.
pub const TCP_NEW_SYN_RECV: u8 = 12;

/// States a dump asks for: every state of a full socket. Timewait and request sockets carry no
/// cgroup id, so asking for them would only make the dump longer.
const DUMP_STATES: u32 = 0xfff & !(1 << TCP_TIME_WAIT) & !(1 << TCP_NEW_SYN_RECV);

/// The transport protocols whose sockets can own a conntrack flow here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Transport {
    /// From an IP protocol number; `None` for anything but TCP and UDP.
    pub fn from_protocol(protocol: u8) -> Option<Transport> {
        match protocol {
            6 => Some(Transport::Tcp),
            17 => Some(Transport::Udp),
            _ => None,
        }
    }

    /// The IP protocol number.
    pub fn protocol(self) -> u8 {
        match self {
            Transport::Tcp => 6,
            Transport::Udp => 17,
        }
    }
}

/// One socket as inet_diag reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketEntry {
    /// The protocol the request asked for.
    pub transport: Transport,
    /// The socket's own address and port. IPv4-mapped IPv6 addresses are given as IPv4.
    pub local: SocketAddr,
    /// The peer's address and port; unspecified for listening and unconnected sockets.
    pub remote: SocketAddr,
    /// `idiag_state` (`TCP_*`; UDP uses `TCP_ESTABLISHED` and `TCP_CLOSE`).
    pub state: u8,
    /// `INET_DIAG_CGROUP_ID`; `None` for timewait and request sockets, and on kernels before 5.7.
    pub cgroup_id: Option<u64>,
}

/// What one buffer of inet_diag messages held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiagBatch {
    /// Sockets handed to the sink.
    pub sockets: u64,
    /// Messages skipped as malformed.
    pub malformed: u64,
    /// Messages of another request (an earlier, abandoned one) or of another type.
    pub skipped: u64,
    /// True when the buffer held `NLMSG_DONE` or an `NLMSG_ERROR`: nothing more will come.
    pub done: bool,
}

/// Parses a buffer of inet_diag answer messages (one `recv`) for the request numbered `seq`,
/// calling `sink` once per socket. Messages of other sequence numbers are skipped and counted.
///
/// # Errors
///
/// [`KernelError`] for an `NLMSG_ERROR` with a non-zero errno (`ENOENT`: no such socket).
pub fn parse_sock_diag(
    buf: &[u8],
    transport: Transport,
    seq: u32,
    sink: &mut dyn FnMut(&SocketEntry),
) -> Result<DiagBatch, KernelError> {
    let mut batch = DiagBatch::default();
    let mut rest = buf;
    while !rest.is_empty() {
        let Some(header) = MessageHeader::read(rest) else {
            batch.malformed += 1;
            break;
        };
        let message_seq = read_array::<4>(rest.get(8..).unwrap_or(&[])).map(u32::from_ne_bytes);
        let payload = &rest[NLMSG_HDRLEN..header.len];
        rest = rest.get(align4(header.len)..).unwrap_or(&[]);
        if message_seq != Some(seq) {
            batch.skipped += 1;
            continue;
        }
        match control(header.kind, payload)? {
            // After an acknowledgement nothing more comes for this request either.
            Control::Done | Control::Ack => {
                batch.done = true;
                break;
            }
            Control::Malformed => {
                batch.malformed += 1;
                continue;
            }
            Control::Ignore => continue,
            Control::Other => {}
        }
        match header.kind {
            SOCK_DIAG_BY_FAMILY => match parse_socket(payload, transport) {
                Some(entry) => {
                    batch.sockets += 1;
                    sink(&entry);
                }
                None => batch.malformed += 1,
            },
            _ => batch.skipped += 1,
        }
    }
    Ok(batch)
}

/// `struct inet_diag_msg` and its attributes.
fn parse_socket(payload: &[u8], transport: Transport) -> Option<SocketEntry> {
    let head: [u8; DIAG_MSG_LEN] = read_array(payload)?;
    let family = head[0];
    let state = head[1];
    let sockid = &head[4..4 + SOCKID_LEN];
    let port = |at: usize| u16::from_be_bytes([sockid[at], sockid[at + 1]]);
    let address = |at: usize| -> Option<IpAddr> {
        let bytes: [u8; 16] = sockid.get(at..at + 16)?.try_into().ok()?;
        match family {
            AF_INET => Some(IpAddr::V4(Ipv4Addr::new(
                bytes[0], bytes[1], bytes[2], bytes[3],
            ))),
            AF_INET6 => Some(Ipv6Addr::from(bytes).to_canonical()),
            _ => None,
        }
    };
    let local = SocketAddr::new(address(4)?, port(0));
    let remote = SocketAddr::new(address(20)?, port(2));
    let mut cgroup_id = None;
    for attr in Attrs(payload.get(DIAG_MSG_LEN..)?) {
        let (kind, value) = attr.ok()?;
        if kind == INET_DIAG_CGROUP_ID {
            cgroup_id = Some(u64::from_ne_bytes(value.try_into().ok()?));
        }
    }
    Some(SocketEntry {
        transport,
        local,
        remote,
        state,
        cgroup_id,
    })
}

/// Appends an inet_diag request. `tuple` is `(idiag_src, idiag_dst)` for a single-socket request
/// (see [`SockDiag::find`] for which is which), or `None` for a dump of every socket of `family`.
pub fn encode_sock_diag_request(
    out: &mut Vec<u8>,
    transport: Transport,
    family: u8,
    tuple: Option<(SocketAddr, SocketAddr)>,
    seq: u32,
) {
    let flags = match tuple {
        Some(_) => NLM_F_REQUEST,
        None => NLM_F_REQUEST | NLM_F_DUMP,
    };
    let len = NLMSG_HDRLEN + REQ_V2_LEN;
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    // struct inet_diag_req_v2: family, protocol, ext (no optional extension: the cgroup id comes
    // unasked), pad, states.
    out.extend_from_slice(&[family, transport.protocol(), 0, 0]);
    let states = match tuple {
        Some(_) => !0u32,
        None => DUMP_STATES,
    };
    out.extend_from_slice(&states.to_ne_bytes());
    // struct inet_diag_sockid: sport, dport (network order), src, dst (16 bytes each), if, cookie.
    let (local, remote) = tuple.unwrap_or((
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
    ));
    out.extend_from_slice(&local.port().to_be_bytes());
    out.extend_from_slice(&remote.port().to_be_bytes());
    for addr in [local.ip(), remote.ip()] {
        out.extend_from_slice(&address_bytes(addr, family));
    }
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&INET_DIAG_NOCOOKIE.to_ne_bytes());
    out.extend_from_slice(&INET_DIAG_NOCOOKIE.to_ne_bytes());
}

/// An address as `idiag_src`/`idiag_dst` hold it: IPv4 in the first four bytes, IPv6 whole (an
/// IPv4 address asked of an IPv6 socket table is given IPv4-mapped).
fn address_bytes(addr: IpAddr, family: u8) -> [u8; 16] {
    let mut out = [0u8; 16];
    match (addr, family) {
        (IpAddr::V4(v4), AF_INET) => out[..4].copy_from_slice(&v4.octets()),
        (IpAddr::V4(v4), _) => out = v4.to_ipv6_mapped().octets(),
        (IpAddr::V6(v6), _) => out = v6.octets(),
    }
    out
}

/// Counts of one dump, over every family and protocol asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DumpStats {
    /// Sockets handed to the sink.
    pub sockets: u64,
    /// Messages skipped as malformed (kernel garbage).
    pub malformed: u64,
}

/// A `NETLINK_SOCK_DIAG` socket of the network namespace of the thread that opened it.
#[derive(Debug)]
pub struct SockDiag {
    socket: Socket,
    buf: Vec<u8>,
    request: Vec<u8>,
    seq: u32,
}

impl SockDiag {
    /// Opens the socket.
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] when the socket cannot be created or bound (no `inet_diag` module).
    pub fn open() -> Result<SockDiag, Error> {
        let mut socket =
            Socket::new(NETLINK_SOCK_DIAG).map_err(Error::socket("socket (sock_diag)"))?;
        socket
            .bind_auto()
            .map_err(Error::socket("bind (sock_diag)"))?;
        socket
            .connect(&NetlinkAddr::new(0, 0))
            .map_err(Error::socket("connect (sock_diag)"))?;
        Ok(SockDiag {
            socket,
            // A dump batch is at most 32 KiB (the kernel sizes them to the page and the reader).
            buf: vec![0; 64 << 10],
            request: Vec::with_capacity(REQ_V2_LEN + NLMSG_HDRLEN),
            seq: 0,
        })
    }

    fn send(
        &mut self,
        transport: Transport,
        family: u8,
        tuple: Option<(SocketAddr, SocketAddr)>,
    ) -> Result<u32, Error> {
        self.seq = self.seq.wrapping_add(1);
        self.request.clear();
        encode_sock_diag_request(&mut self.request, transport, family, tuple, self.seq);
        self.socket
            .send(&self.request, 0)
            .map_err(Error::socket("send (sock_diag)"))?;
        Ok(self.seq)
    }

    fn receive(
        &mut self,
        transport: Transport,
        seq: u32,
        single: bool,
        sink: &mut dyn FnMut(&SocketEntry),
        stats: &mut DumpStats,
    ) -> Result<(), Error> {
        loop {
            let n = match self.socket.recv(&mut &mut self.buf[..], libc::MSG_TRUNC) {
                Ok(0) => return Err(Error::DumpCutShort),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::socket("recv (sock_diag)")(e)),
            };
            if n > self.buf.len() {
                stats.malformed += 1;
            }
            let batch = parse_sock_diag(&self.buf[..n.min(self.buf.len())], transport, seq, sink)?;
            stats.sockets += batch.sockets;
            stats.malformed += batch.malformed;
            // A single-socket answer is one message, with no NLMSG_DONE after it.
            if batch.done || (single && batch.sockets > 0) {
                return Ok(());
            }
        }
    }

    /// Streams every TCP and UDP socket of both families to `sink` (four dumps), leaving out
    /// timewait and request sockets, which have no cgroup.
    ///
    /// # Errors
    ///
    /// A socket failure or a refused request; sockets streamed before it were handed out.
    pub fn dump_all(&mut self, sink: &mut dyn FnMut(&SocketEntry)) -> Result<DumpStats, Error> {
        let mut stats = DumpStats::default();
        for transport in [Transport::Tcp, Transport::Udp] {
            for family in [AF_INET, AF_INET6] {
                let seq = self.send(transport, family, None)?;
                self.receive(transport, seq, false, sink, &mut stats)?;
            }
        }
        Ok(stats)
    }

    /// The socket the kernel would deliver `remote → local` packets of `transport` to: the
    /// connected socket of the tuple, else (TCP) the listener or (UDP) the bound socket of
    /// `local`. `Ok(None)` when there is none.
    ///
    /// # Errors
    ///
    /// A socket failure, or a refusal other than "no such socket".
    pub fn find(
        &mut self,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<(Option<SocketEntry>, DumpStats), Error> {
        let family = match (local.ip(), remote.ip()) {
            (IpAddr::V4(_), IpAddr::V4(_)) => AF_INET,
            _ => AF_INET6,
        };
        // TCP's lookup reads `idiag_src` as the socket's own address; UDP's reads it as the
        // packet's source, the peer ("src and dst are swapped for historical reasons",
        // net/ipv4/udp_diag.c).
        let tuple = match transport {
            Transport::Tcp => (local, remote),
            Transport::Udp => (remote, local),
        };
        let seq = self.send(transport, family, Some(tuple))?;
        let mut found = None;
        let mut stats = DumpStats::default();
        match self.receive(
            transport,
            seq,
            true,
            &mut |entry| found = Some(*entry),
            &mut stats,
        ) {
            Ok(()) => Ok((found, stats)),
            Err(Error::Kernel(KernelError { errno })) if errno == libc::ENOENT => Ok((None, stats)),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consts::{NLMSG_DONE, NLMSG_ERROR};

    /// An answer message as the kernel sends it: `inet_diag_msg`, then the cgroup attribute
    /// (after a pad attribute, as `nla_put_u64_64bit` writes it on 32-bit-unaligned offsets).
    fn answer(
        seq: u32,
        family: u8,
        state: u8,
        local: SocketAddr,
        remote: SocketAddr,
        cgroup: Option<u64>,
    ) -> Vec<u8> {
        let mut body = vec![family, state, 0, 0];
        body.extend_from_slice(&local.port().to_be_bytes());
        body.extend_from_slice(&remote.port().to_be_bytes());
        body.extend_from_slice(&address_bytes(local.ip(), family));
        body.extend_from_slice(&address_bytes(remote.ip(), family));
        body.extend_from_slice(&[0u8; 4 + 8 + 20]);
        // INET_DIAG_PAD (14), empty.
        body.extend_from_slice(&4u16.to_ne_bytes());
        body.extend_from_slice(&14u16.to_ne_bytes());
        if let Some(id) = cgroup {
            body.extend_from_slice(&12u16.to_ne_bytes());
            body.extend_from_slice(&INET_DIAG_CGROUP_ID.to_ne_bytes());
            body.extend_from_slice(&id.to_ne_bytes());
        }
        message(SOCK_DIAG_BY_FAMILY, seq, &body)
    }

    fn message(kind: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(&0u16.to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(body);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out
    }

    fn parse(buf: &[u8], seq: u32) -> (Vec<SocketEntry>, Result<DiagBatch, KernelError>) {
        let mut out = Vec::new();
        let result = parse_sock_diag(buf, Transport::Tcp, seq, &mut |e| out.push(*e));
        (out, result)
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    #[test]
    fn sockets_of_both_families_are_read_with_their_cgroup_id() {
        let mut buf = answer(
            7,
            AF_INET,
            1,
            addr("192.0.2.1:40000"),
            addr("198.51.100.2:443"),
            Some(4242),
        );
        buf.extend(answer(
            7,
            AF_INET6,
            TCP_LISTEN,
            addr("[fd00::1]:8080"),
            addr("[::]:0"),
            Some(9),
        ));
        buf.extend(message(NLMSG_DONE, 7, &0i32.to_ne_bytes()));
        let (sockets, batch) = parse(&buf, 7);
        let batch = batch.expect("no kernel error");
        assert!(batch.done);
        assert_eq!((batch.sockets, batch.malformed), (2, 0));
        assert_eq!(sockets[0].local, addr("192.0.2.1:40000"));
        assert_eq!(sockets[0].remote, addr("198.51.100.2:443"));
        assert_eq!(sockets[0].cgroup_id, Some(4242));
        assert_eq!(sockets[1].state, TCP_LISTEN);
        assert_eq!(sockets[1].cgroup_id, Some(9));
    }

    #[test]
    fn ipv4_mapped_addresses_of_ipv6_sockets_read_as_ipv4() {
        let local = SocketAddr::new("::ffff:192.0.2.1".parse().expect("ip"), 80);
        let buf = answer(
            1,
            AF_INET6,
            1,
            local,
            addr("[::ffff:198.51.100.2]:5000"),
            Some(1),
        );
        let (sockets, _) = parse(&buf, 1);
        assert_eq!(sockets[0].local, addr("192.0.2.1:80"));
        assert_eq!(sockets[0].remote, addr("198.51.100.2:5000"));
    }

    #[test]
    fn timewait_sockets_have_no_cgroup() {
        let buf = answer(
            1,
            AF_INET,
            TCP_TIME_WAIT,
            addr("192.0.2.1:1"),
            addr("192.0.2.2:2"),
            None,
        );
        let (sockets, _) = parse(&buf, 1);
        assert_eq!(sockets[0].cgroup_id, None);
    }

    #[test]
    fn garbage_is_counted_and_skipped_without_a_panic() {
        // A message too short for inet_diag_msg, then a good one.
        let mut buf = message(SOCK_DIAG_BY_FAMILY, 3, &[AF_INET, 1, 0, 0, 1, 2]);
        buf.extend(answer(
            3,
            AF_INET,
            1,
            addr("192.0.2.1:1"),
            addr("192.0.2.2:2"),
            Some(5),
        ));
        // An unknown family.
        buf.extend(answer(
            3,
            99,
            1,
            addr("192.0.2.1:1"),
            addr("192.0.2.2:2"),
            Some(5),
        ));
        let (sockets, batch) = parse(&buf, 3);
        let batch = batch.expect("no kernel error");
        assert_eq!((batch.sockets, batch.malformed), (1, 2));
        assert_eq!(sockets.len(), 1);
        // A cgroup attribute of the wrong length.
        let mut bad = answer(
            3,
            AF_INET,
            1,
            addr("192.0.2.1:1"),
            addr("192.0.2.2:2"),
            None,
        );
        let len = bad.len();
        bad.extend_from_slice(&8u16.to_ne_bytes());
        bad.extend_from_slice(&INET_DIAG_CGROUP_ID.to_ne_bytes());
        bad.extend_from_slice(&[1, 2, 3, 4]);
        let total = (bad.len() as u32).to_ne_bytes();
        bad[..4].copy_from_slice(&total);
        assert!(bad.len() > len);
        let (_, batch) = parse(&bad, 3);
        assert_eq!(batch.expect("no kernel error").malformed, 1);
        // Random bytes.
        for seed in 0..200u32 {
            let noise: Vec<u8> = (0..97u32)
                .map(|i| (i.wrapping_mul(2654435761) ^ seed) as u8)
                .collect();
            let _ = parse(&noise, 3);
        }
    }

    #[test]
    fn answers_of_another_request_are_skipped() {
        let buf = answer(
            2,
            AF_INET,
            1,
            addr("192.0.2.1:1"),
            addr("192.0.2.2:2"),
            Some(5),
        );
        let (sockets, batch) = parse(&buf, 3);
        assert!(sockets.is_empty());
        assert_eq!(batch.expect("no kernel error").skipped, 1);
    }

    #[test]
    fn no_such_socket_is_a_kernel_error_with_enoent() {
        let mut body = (-libc::ENOENT).to_ne_bytes().to_vec();
        body.extend_from_slice(&[0u8; NLMSG_HDRLEN]);
        let buf = message(NLMSG_ERROR, 4, &body);
        let (_, result) = parse(&buf, 4);
        assert_eq!(
            result,
            Err(KernelError {
                errno: libc::ENOENT
            })
        );
    }

    #[test]
    fn a_single_socket_request_names_local_then_remote_with_no_cookie() {
        let mut out = Vec::new();
        encode_sock_diag_request(
            &mut out,
            Transport::Udp,
            AF_INET,
            Some((addr("192.0.2.1:53"), addr("192.0.2.9:4000"))),
            5,
        );
        assert_eq!(out.len(), NLMSG_HDRLEN + REQ_V2_LEN);
        let req = &out[NLMSG_HDRLEN..];
        assert_eq!(&req[..2], &[AF_INET, 17]);
        assert_eq!(&req[8..10], &53u16.to_be_bytes());
        assert_eq!(&req[10..12], &4000u16.to_be_bytes());
        assert_eq!(&req[12..16], &[192, 0, 2, 1]);
        assert_eq!(&req[28..32], &[192, 0, 2, 9]);
        assert_eq!(&req[48..56], &[0xff; 8]);
        let flags = u16::from_ne_bytes([out[6], out[7]]);
        assert_eq!(flags, NLM_F_REQUEST);
        let mut dump = Vec::new();
        encode_sock_diag_request(&mut dump, Transport::Tcp, AF_INET6, None, 6);
        assert_eq!(
            u16::from_ne_bytes([dump[6], dump[7]]),
            NLM_F_REQUEST | NLM_F_DUMP
        );
        let states = u32::from_ne_bytes([dump[20], dump[21], dump[22], dump[23]]);
        assert_eq!(states & (1 << TCP_TIME_WAIT), 0);
        assert_ne!(states & (1 << TCP_LISTEN), 0);
    }
}
