//! The ctnetlink I/O layer: a dump socket read on the caller's thread, an events socket read by
//! the [`events`](crate::events) thread, and calls into the pure parser.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use netcost_core::flow::{FlowOrigin, FlowRecord, FlowSource, InterleavedRead, ReadStats};
use netlink_sys::{Socket, SocketAddr};
use nix::sys::socket::{setsockopt, sockopt};

use crate::build::encode_dump_request;
use crate::consts::{NETLINK_NETFILTER, NFNLGRP_CONNTRACK_DESTROY};
use crate::error::Error;
use crate::events::{
    DEFAULT_QUEUE_ENTRIES, EventReader, EventStatus, Pending, ReaderSettings, ReliableEvents,
    ValveSettings,
};
use crate::parse::parse_netlink;

/// Settings of a [`NetlinkSource`]. Start from [`NetlinkConfig::default`] and change fields.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NetlinkConfig {
    /// Kernel receive buffer of the events socket, in bytes (default 8 MiB). Events that do not
    /// fit are lost and counted in [`ReadStats::events_lost`]. Set with `SO_RCVBUFFORCE`, which
    /// needs NET_ADMIN; without it `SO_RCVBUF`, which the kernel caps at `net.core.rmem_max`.
    pub event_buffer_bytes: usize,
    /// Size of the buffer each `recv` reads into, in bytes (default 64 KiB). A kernel dump
    /// message batch is at most 32 KiB, so the default never truncates.
    pub read_buffer_bytes: usize,
    /// Reliable delivery of DESTROY events (default [`ReliableEvents::Auto`]).
    pub reliable_events: ReliableEvents,
    /// When [`ReliableEvents::Auto`] turns reliable delivery off and on.
    pub valve: ValveSettings,
    /// Parsed events the reader may hold for the caller before it stops reading and leaves
    /// events in the kernel (default 32,768: 4 MiB).
    pub event_queue_entries: usize,
}

impl Default for NetlinkConfig {
    fn default() -> Self {
        NetlinkConfig {
            event_buffer_bytes: 8 << 20,
            read_buffer_bytes: 64 << 10,
            reliable_events: ReliableEvents::Auto,
            valve: ValveSettings::default(),
            event_queue_entries: DEFAULT_QUEUE_ENTRIES,
        }
    }
}

/// Reads the conntrack table of the current network namespace over ctnetlink: full dumps, and
/// the DESTROY events that a thread of its own reads all the time, during dumps too.
///
/// The sockets belong to the network namespace of the thread that calls [`NetlinkSource::open`].
/// Dropping the source stops the event thread.
#[derive(Debug)]
pub struct NetlinkSource {
    dump: Socket,
    events: EventReader,
    /// The taker's half of the event queue's double buffer.
    taken: Pending,
    /// The dump socket's receive buffer, reused for every `recv`.
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

        let mut dump = Socket::new(NETLINK_NETFILTER).map_err(Error::socket("socket (dump)"))?;
        dump.bind_auto().map_err(Error::socket("bind (dump)"))?;
        dump.connect(&SocketAddr::new(0, 0))
            .map_err(Error::socket("connect (dump)"))?;

        let events = EventReader::spawn(
            events,
            ReaderSettings {
                mode: config.reliable_events,
                valve: config.valve.clone(),
                read_buffer_bytes: config.read_buffer_bytes,
                queue_entries: config.event_queue_entries,
            },
        )
        .map_err(Error::socket("start the event reader"))?;
        tracing::debug!(
            event_buffer_bytes,
            reliable = config.reliable_events.as_str(),
            "opened ctnetlink sockets"
        );
        Ok(NetlinkSource {
            dump,
            events,
            taken: Pending::default(),
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

    /// The event reader's and the valve's figures, readable from any thread.
    pub fn event_status(&self) -> Arc<EventStatus> {
        self.events.status.clone()
    }

    /// Hands every event the reader has queued to `sink`.
    fn take_events(&mut self, sink: &mut dyn FnMut(&FlowRecord)) -> Result<ReadStats, Error> {
        self.events.queue.take(&mut self.taken);
        for record in &self.taken.records {
            sink(record);
        }
        self.taken.records.clear();
        let stats = self.taken.stats;
        if let Some(e) = self.taken.failure.take() {
            return Err(Error::socket("recv (events)")(e));
        }
        if self.taken.closed {
            return Err(self.reader_gone());
        }
        Ok(stats)
    }

    fn reader_gone(&self) -> Error {
        let why = self
            .events
            .status
            .failure()
            .unwrap_or_else(|| "the event reader stopped".to_owned());
        Error::socket("recv (events)")(io::Error::other(why))
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

impl NetlinkSource {
    /// One dump; between its batches, `between` is called to hand out the events that arrived.
    fn dump_inner(
        &mut self,
        sink: &mut dyn FnMut(&FlowRecord),
        between: &mut dyn FnMut(&mut NetlinkSource) -> Result<(), Error>,
    ) -> Result<ReadStats, Error> {
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
            between(self)?;
        }
    }
}

impl FlowSource for NetlinkSource {
    type Error = Error;

    fn dump(&mut self, sink: &mut dyn FnMut(&FlowRecord)) -> Result<ReadStats, Error> {
        self.dump_inner(sink, &mut |_| Ok(()))
    }

    /// Dumps, and between two of the dump's batches hands out the events that the reader
    /// queued meanwhile, so that neither waits for the other.
    fn dump_with_events(
        &mut self,
        sink: &mut dyn FnMut(&FlowRecord, FlowOrigin),
    ) -> Result<InterleavedRead, Error> {
        let sink = std::cell::RefCell::new(sink);
        let mut events = ReadStats::default();
        let dump = self.dump_inner(
            &mut |record| (sink.borrow_mut())(record, FlowOrigin::Dump),
            &mut |source| {
                let read = source.take_events(&mut |record| {
                    (sink.borrow_mut())(record, FlowOrigin::Destroyed)
                })?;
                events.add(read);
                Ok(())
            },
        )?;
        Ok(InterleavedRead { dump, events })
    }

    /// Hands out every event the reader has queued, without blocking.
    fn drain_destroyed(&mut self, sink: &mut dyn FnMut(&FlowRecord)) -> Result<ReadStats, Error> {
        self.take_events(sink)
    }

    fn wait_for_events(&mut self, timeout: Duration) {
        self.events.queue.wait(timeout);
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
pub(crate) fn set_receive_buffer(socket: &Socket, bytes: usize) -> Result<usize, Error> {
    // The option is a C int; nix casts without a check, so cap it here.
    let value = bytes.min(libc::c_int::MAX as usize);
    if let Err(force) = setsockopt(socket, sockopt::RcvBufForce, &value) {
        tracing::debug!(error = %force, "SO_RCVBUFFORCE refused; falling back to SO_RCVBUF");
        setsockopt(socket, sockopt::RcvBuf, &value)
            .map_err(io::Error::from)
            .map_err(Error::socket("SO_RCVBUF"))?;
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
