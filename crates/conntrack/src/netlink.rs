//! The ctnetlink I/O layer: two sockets, one receive buffer, and calls into the pure parser.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use netcost_core::flow::{FlowRecord, FlowSource, ReadStats};
use netlink_sys::{Socket, SocketAddr};

use crate::build::encode_dump_request;
use crate::consts::{NETLINK_NETFILTER, NFNLGRP_CONNTRACK_DESTROY};
use crate::error::Error;
use crate::parse::parse_netlink;

/// Settings of a [`NetlinkSource`]. Start from [`NetlinkConfig::default`] and change fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetlinkConfig {
    /// Kernel receive buffer of the events socket, in bytes (default 8 MiB). Events that do not
    /// fit are lost and counted in [`ReadStats::events_lost`]. Set with `SO_RCVBUFFORCE`, which
    /// needs NET_ADMIN; without it `SO_RCVBUF`, which the kernel caps at `net.core.rmem_max`.
    pub event_buffer_bytes: usize,
    /// Size of the buffer each `recv` reads into, in bytes (default 64 KiB). A kernel dump
    /// message batch is at most 32 KiB, so the default never truncates.
    pub read_buffer_bytes: usize,
}

impl Default for NetlinkConfig {
    fn default() -> Self {
        NetlinkConfig {
            event_buffer_bytes: 8 << 20,
            read_buffer_bytes: 64 << 10,
        }
    }
}

/// Reads the conntrack table of the current network namespace over ctnetlink: full dumps, and
/// DESTROY events in between.
///
/// The sockets belong to the network namespace of the thread that calls [`NetlinkSource::open`].
#[derive(Debug)]
pub struct NetlinkSource {
    dump: Socket,
    events: Socket,
    /// Shared by both sockets; reused for every `recv`.
    buf: Vec<u8>,
    /// The dump request, built once.
    request: Vec<u8>,
    seq: u32,
    event_buffer_bytes: usize,
}

impl NetlinkSource {
    /// Opens the sockets with the default [`NetlinkConfig`].
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] when a socket cannot be created, bound or subscribed (no
    /// `nf_conntrack_netlink` module, or no NET_ADMIN in the namespace).
    pub fn open() -> Result<Self, Error> {
        Self::open_with(&NetlinkConfig::default())
    }

    /// Opens the events socket, subscribed to `NFNLGRP_CONNTRACK_DESTROY`, then the dump socket.
    ///
    /// The events socket comes first on purpose: with `nf_conntrack_events=2` (the default since
    /// 5.19) the kernel attaches the event extension only to entries created while a listener
    /// exists, so entries created before this call never report their DESTROY.
    ///
    /// # Errors
    ///
    /// As [`NetlinkSource::open`].
    pub fn open_with(config: &NetlinkConfig) -> Result<Self, Error> {
        let mut events =
            Socket::new(NETLINK_NETFILTER).map_err(Error::socket("socket (events)"))?;
        let event_buffer_bytes = set_receive_buffer(&events, config.event_buffer_bytes)?;
        events.bind_auto().map_err(Error::socket("bind (events)"))?;
        events
            .add_membership(NFNLGRP_CONNTRACK_DESTROY)
            .map_err(Error::socket("subscribe to NFNLGRP_CONNTRACK_DESTROY"))?;
        events
            .set_non_blocking(true)
            .map_err(Error::socket("set non-blocking (events)"))?;

        let mut dump = Socket::new(NETLINK_NETFILTER).map_err(Error::socket("socket (dump)"))?;
        dump.bind_auto().map_err(Error::socket("bind (dump)"))?;
        dump.connect(&SocketAddr::new(0, 0))
            .map_err(Error::socket("connect (dump)"))?;

        tracing::debug!(event_buffer_bytes, "opened ctnetlink sockets");
        Ok(NetlinkSource {
            dump,
            events,
            buf: vec![0; config.read_buffer_bytes.max(4096)],
            request: Vec::with_capacity(32),
            seq: 0,
            event_buffer_bytes,
        })
    }

    /// The receive buffer the kernel granted the events socket, in bytes (as `SO_RCVBUF` reports
    /// it: twice the size asked, for bookkeeping, unless capped).
    pub fn event_buffer_bytes(&self) -> usize {
        self.event_buffer_bytes
    }

    /// The events socket, to wait on (`poll`, an async reactor) before calling
    /// [`FlowSource::drain_destroyed`].
    pub fn events_fd(&self) -> BorrowedFd<'_> {
        self.events.as_fd()
    }

    /// Throws away whatever an earlier, failed dump left in the dump socket.
    fn discard_stale(&mut self) {
        while let Ok(n) = self
            .dump
            .recv(&mut &mut self.buf[..], libc::MSG_DONTWAIT | libc::MSG_TRUNC)
        {
            if n == 0 {
                break;
            }
            tracing::debug!(bytes = n, "discarded a stale dump message");
        }
    }
}

impl FlowSource for NetlinkSource {
    type Error = Error;

    fn dump(&mut self, sink: &mut dyn FnMut(&FlowRecord)) -> Result<ReadStats, Error> {
        self.discard_stale();
        self.seq = self.seq.wrapping_add(1);
        self.request.clear();
        encode_dump_request(&mut self.request, self.seq);
        self.dump
            .send(&self.request, 0)
            .map_err(Error::socket("send (dump request)"))?;

        let mut stats = ReadStats::default();
        loop {
            let n = match self.dump.recv(&mut &mut self.buf[..], libc::MSG_TRUNC) {
                Ok(0) => return Err(Error::DumpCutShort),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::socket("recv (dump)")(e)),
            };
            let batch = parse_netlink(received(&self.buf, n), sink)?;
            stats.add(batch.stats);
            if batch.done {
                return Ok(stats);
            }
        }
    }

    /// Reads every pending DESTROY event without blocking. It stops early, leaving the rest for
    /// the next call, once it has read twice the socket's buffer, so that a flood of events cannot
    /// keep it looping.
    fn drain_destroyed(&mut self, sink: &mut dyn FnMut(&FlowRecord)) -> Result<ReadStats, Error> {
        let mut stats = ReadStats::default();
        let budget = self.event_buffer_bytes.saturating_mul(2);
        let mut read = 0usize;
        while read < budget {
            let flags = libc::MSG_DONTWAIT | libc::MSG_TRUNC;
            match self.events.recv(&mut &mut self.buf[..], flags) {
                Ok(0) => break,
                Ok(n) => {
                    read += n;
                    stats.add(parse_netlink(received(&self.buf, n), sink)?.stats);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    // The kernel dropped events since the last read. The socket stays usable; the
                    // caller resyncs with a dump.
                    stats.events_lost += 1;
                    tracing::warn!(
                        event_buffer_bytes = self.event_buffer_bytes,
                        "conntrack events were lost (ENOBUFS); a resync is needed"
                    );
                }
                Err(e) => return Err(Error::socket("recv (events)")(e)),
            }
        }
        Ok(stats)
    }
}

/// The bytes a `recv` with `MSG_TRUNC` put in `buf`. `n` is the datagram's full length, which is
/// larger than the buffer when the datagram was truncated; the parser then counts the cut-off
/// message as malformed.
fn received(buf: &[u8], n: usize) -> &[u8] {
    if n > buf.len() {
        tracing::warn!(
            datagram = n,
            buffer = buf.len(),
            "a netlink datagram did not fit the read buffer"
        );
    }
    &buf[..n.min(buf.len())]
}

/// Asks for a receive buffer of `bytes` with `SO_RCVBUFFORCE` (which ignores `net.core.rmem_max`
/// but needs NET_ADMIN), falling back to `SO_RCVBUF`. Returns the size the kernel granted.
fn set_receive_buffer(socket: &Socket, bytes: usize) -> Result<usize, Error> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    if let Err(force) = set_int_option(socket, libc::SO_RCVBUFFORCE, value) {
        tracing::debug!(error = %force, "SO_RCVBUFFORCE refused; falling back to SO_RCVBUF");
        set_int_option(socket, libc::SO_RCVBUF, value).map_err(Error::socket("SO_RCVBUF"))?;
    }
    let granted = socket
        .get_rx_buf_sz()
        .map_err(Error::socket("getsockopt SO_RCVBUF"))?;
    if granted < bytes {
        tracing::warn!(
            asked = bytes,
            granted,
            "the events socket got a smaller receive buffer than configured; raise net.core.rmem_max or grant NET_ADMIN"
        );
    }
    Ok(granted)
}

fn set_int_option(socket: &Socket, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: the fd is open for the life of `socket`; the option value points to a live c_int
    // and the length passed is exactly its size, as setsockopt(2) requires for SOL_SOCKET
    // integer options.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&raw const value).cast::<libc::c_void>(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
