//! The DESTROY event reader: a thread of its own that blocks on the events socket, so that the
//! kernel's queue is emptied however long a dump, a checkpoint or a scrape takes on the
//! pipeline's thread; and the safety valve that decides whether delivery is reliable.
//!
//! Reliable delivery: with `NETLINK_BROADCAST_ERROR` and `NETLINK_NO_ENOBUFS` set on the
//! socket, a DESTROY event that does not fit the socket's buffer is reported back to conntrack,
//! which keeps the dead entry on a per-namespace dying list and re-sends its event from a worker
//! until it is delivered (`nf_conntrack_ecache.c`; conntrackd's `NetlinkEventsReliable`). No
//! event is lost while the socket is open. The price: an undelivered entry still counts in
//! `nf_conntrack_count`, so a reader that cannot keep up pushes the table toward
//! `nf_conntrack_max`, where the kernel drops new connections.
//!
//! The valve: in [`ReliableEvents::Auto`] mode the reader watches the table's fill
//! (`nf_conntrack_count` / `nf_conntrack_max` of its network namespace) and turns reliable
//! delivery off when the fill reaches [`ValveSettings::max_fill`], so netcost can never be the
//! reason a node's table fills. The kernel then frees the entries waiting for delivery (their
//! events are lost, and counted), and overflowing events are dropped with `ENOBUFS` instead of
//! being kept. Reliable delivery comes back when the fill falls to
//! [`ValveSettings::resume_fill`].
//!
//! What it does not do: count bytes or keep per-flow state. It parses events into a queue
//! bounded in entries, which the pipeline's thread empties in one swap; when the queue is full it
//! stops reading, which leaves the rest to the kernel (and, past the threshold, to the valve).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use netcost_core::flow::{FlowRecord, ReadStats};
use netlink_sys::Socket;

use crate::consts::NETLINK_NETFILTER;
use crate::parse::parse_netlink;

/// Whether DESTROY events are delivered reliably.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReliableEvents {
    /// Reliable, unless the table's fill reaches the valve's threshold (the default).
    #[default]
    Auto,
    /// Always reliable: no event is ever lost, even if the table fills while the reader lags.
    On,
    /// Never reliable: events that overflow the socket's buffer are lost (and counted).
    Off,
}

impl ReliableEvents {
    /// The name used on the command line and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ReliableEvents::Auto => "auto",
            ReliableEvents::On => "on",
            ReliableEvents::Off => "off",
        }
    }
}

impl std::str::FromStr for ReliableEvents {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(ReliableEvents::Auto),
            "on" => Ok(ReliableEvents::On),
            "off" => Ok(ReliableEvents::Off),
            other => Err(format!("{other:?} is not one of auto, on, off")),
        }
    }
}

/// When the valve of [`ReliableEvents::Auto`] opens and closes.
#[derive(Debug, Clone, PartialEq)]
pub struct ValveSettings {
    /// Fill of the table (`nf_conntrack_count / nf_conntrack_max`, 0..=1) at which reliable
    /// delivery is turned off. Default 0.85: well below the point where the kernel starts
    /// dropping new connections, with room for a burst between two checks.
    pub max_fill: f64,
    /// Fill at which reliable delivery is turned back on. Default 0.75, so the valve does not
    /// flap around one value.
    pub resume_fill: f64,
    /// How often the fill is read (default 100 ms: at 100,000 new flows a second the table
    /// grows by at most 10,000 entries between two checks).
    pub check_period: Duration,
}

impl Default for ValveSettings {
    fn default() -> Self {
        ValveSettings {
            max_fill: 0.85,
            resume_fill: 0.75,
            check_period: Duration::from_millis(100),
        }
    }
}

/// What the reader has read and the pipeline's thread has not taken yet.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub(crate) records: Vec<FlowRecord>,
    pub(crate) stats: ReadStats,
    /// A socket error that stopped the reader.
    pub(crate) failure: Option<io::Error>,
    /// The reader has stopped.
    pub(crate) closed: bool,
    /// Someone waits on [`EventQueue::added`] / [`EventQueue::taken`]: only then is a wake-up
    /// (a futex syscall) worth making.
    taker_waiting: bool,
    reader_waiting: bool,
}

/// The queue between the reader and the pipeline's thread: bounded in entries, emptied by
/// swapping its vector with the taker's, so neither side allocates per entry in steady state.
#[derive(Debug)]
pub(crate) struct EventQueue {
    pending: Mutex<Pending>,
    /// Signalled when entries were added (the taker may be waiting).
    added: Condvar,
    /// Signalled when entries were taken (the reader may be waiting for room).
    taken: Condvar,
    capacity: usize,
}

impl EventQueue {
    fn new(capacity: usize) -> Self {
        EventQueue {
            pending: Mutex::new(Pending::default()),
            added: Condvar::new(),
            taken: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Swaps what is pending into `into` (whose records must be empty), and returns the stats,
    /// the failure and whether the reader is gone.
    pub(crate) fn take(&self, into: &mut Pending) {
        let mut pending = self.lock();
        std::mem::swap(&mut pending.records, &mut into.records);
        into.stats = std::mem::take(&mut pending.stats);
        into.failure = pending.failure.take();
        into.closed = pending.closed;
        let wake = std::mem::take(&mut pending.reader_waiting);
        drop(pending);
        if wake {
            self.taken.notify_one();
        }
    }

    /// Waits up to `timeout` for something to take.
    pub(crate) fn wait(&self, timeout: Duration) {
        let mut pending = self.lock();
        if pending.records.is_empty() && !pending.closed {
            pending.taker_waiting = true;
            let (mut pending, _) = self
                .added
                .wait_timeout(pending, timeout)
                .unwrap_or_else(PoisonError::into_inner);
            pending.taker_waiting = false;
        }
    }
}

/// Entries the reader may hold for the pipeline's thread before it stops reading (128 bytes
/// each: 4 MiB; the taker's half of the swap can hold as many again).
pub const DEFAULT_QUEUE_ENTRIES: usize = 32 << 10;

/// What the reader and the valve report, readable from any thread.
#[derive(Debug)]
pub struct EventStatus {
    mode: ReliableEvents,
    reliable: AtomicBool,
    /// Milliseconds spent with reliable delivery off.
    degraded_ms: AtomicU64,
    /// Times the valve turned reliable delivery off.
    valve_trips: AtomicU64,
    /// Last fill read, in parts per million.
    fill_ppm: AtomicU64,
    /// Event datagrams the kernel could not queue on the socket, while delivery was reliable
    /// (the kernel re-sends them) and while it was not (they are lost).
    dropped_reliable: AtomicU64,
    dropped_unreliable: AtomicU64,
    stop: AtomicBool,
    paused: AtomicBool,
    /// Why the reader stopped, if it did.
    failed: Mutex<Option<String>>,
}

impl EventStatus {
    /// A status in `mode` that no reader updates yet: reliable delivery off, every figure 0.
    /// A reader makes its own; this is for code that renders one (and its tests).
    pub fn new(mode: ReliableEvents) -> Self {
        EventStatus {
            mode,
            reliable: AtomicBool::new(false),
            degraded_ms: AtomicU64::new(0),
            valve_trips: AtomicU64::new(0),
            fill_ppm: AtomicU64::new(0),
            dropped_reliable: AtomicU64::new(0),
            dropped_unreliable: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            failed: Mutex::new(None),
        }
    }

    /// The configured mode.
    pub fn mode(&self) -> ReliableEvents {
        self.mode
    }
    /// True while reliable delivery is on.
    pub fn reliable(&self) -> bool {
        self.reliable.load(Ordering::Relaxed)
    }
    /// Seconds spent with reliable delivery off (in `off` mode, all of them).
    pub fn degraded_seconds(&self) -> f64 {
        self.degraded_ms.load(Ordering::Relaxed) as f64 / 1000.0
    }
    /// Times the valve turned reliable delivery off.
    pub fn valve_trips(&self) -> u64 {
        self.valve_trips.load(Ordering::Relaxed)
    }
    /// The table's fill at the last check (0..=1); 0 when it cannot be read.
    pub fn table_fill(&self) -> f64 {
        self.fill_ppm.load(Ordering::Relaxed) as f64 / 1e6
    }
    /// Event datagrams the socket could not take while delivery was reliable: the kernel kept
    /// their entries and re-sent them, so none is lost.
    pub fn dropped_and_resent(&self) -> u64 {
        self.dropped_reliable.load(Ordering::Relaxed)
    }
    /// Event datagrams the socket could not take while delivery was not reliable: lost.
    pub fn dropped_and_lost(&self) -> u64 {
        self.dropped_unreliable.load(Ordering::Relaxed)
    }
    /// Why the reader stopped, if it did (a socket error).
    pub fn failure(&self) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
    /// Stops (true) or resumes (false) reading the socket, while the valve keeps watching. For
    /// tests and benchmarks that need a reader that falls behind.
    pub fn pause_reading(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The table's fill, from the sysctl files of the reader's network namespace (opened once;
/// `/proc/sys/net` answers for the namespace of the task that opened it).
struct FillGauge {
    count: File,
    max: File,
}

impl FillGauge {
    fn open() -> io::Result<FillGauge> {
        Ok(FillGauge {
            count: File::open("/proc/sys/net/netfilter/nf_conntrack_count")?,
            max: File::open("/proc/sys/net/netfilter/nf_conntrack_max")?,
        })
    }

    fn read(&self) -> Option<f64> {
        let number = |file: &File| -> Option<f64> {
            let mut buf = [0u8; 32];
            let n = file.read_at(&mut buf, 0).ok()?;
            std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
        };
        let max = number(&self.max)?;
        (max > 0.0).then(|| number(&self.count).map(|count| count / max))?
    }
}

/// The socket's drop counter (`sk_drops`), from the `Drops` column of the netlink table of the
/// thread's network namespace (`/proc/thread-self/net/netlink`: `/proc/net` follows the
/// process's first thread, which may be in another namespace), found by protocol and port id.
struct DropGauge {
    file: File,
    port: u32,
    buf: Vec<u8>,
}

impl DropGauge {
    fn open(port: u32) -> io::Result<DropGauge> {
        Ok(DropGauge {
            file: File::open("/proc/thread-self/net/netlink")?,
            port,
            buf: Vec::with_capacity(4096),
        })
    }

    fn read(&mut self) -> Option<u64> {
        // procfs files must be read from offset 0 in one go to be consistent; they are small.
        self.buf.clear();
        self.buf.resize(64 << 10, 0);
        let n = self.file.read_at(&mut self.buf, 0).ok()?;
        let text = std::str::from_utf8(&self.buf[..n]).ok()?;
        drops_of(text, NETLINK_NETFILTER as u32, self.port)
    }
}

/// The `Drops` of the socket with this protocol and port id in `/proc/net/netlink`'s text:
/// `sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode`.
fn drops_of(text: &str, protocol: u32, port: u32) -> Option<u64> {
    text.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let eth: u32 = fields.get(1)?.parse().ok()?;
        let pid: u32 = fields.get(2)?.parse().ok()?;
        (eth == protocol && pid == port).then(|| fields.get(8)?.parse().ok())?
    })
}

struct Valve {
    settings: ValveSettings,
    fill: Option<FillGauge>,
    drops: Option<DropGauge>,
    last_drops: u64,
    last_check: Instant,
    warned_blind: bool,
}

impl Valve {
    /// Reads the fill and the drops, and turns reliable delivery on or off as the mode says.
    fn check(&mut self, socket: &Socket, status: &EventStatus, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last_check);
        self.last_check = now;
        let reliable = status.reliable();
        if !reliable {
            status
                .degraded_ms
                .fetch_add(elapsed.as_millis() as u64, Ordering::Relaxed);
        }
        if let Some(drops) = self.drops.as_mut().and_then(DropGauge::read) {
            let new = drops.saturating_sub(self.last_drops);
            self.last_drops = drops;
            if new > 0 {
                let counter = if reliable {
                    &status.dropped_reliable
                } else {
                    tracing::warn!(
                        events = new,
                        "conntrack DESTROY events lost while delivery is not reliable"
                    );
                    &status.dropped_unreliable
                };
                counter.fetch_add(new, Ordering::Relaxed);
            }
        }
        let fill = self.fill.as_ref().and_then(FillGauge::read);
        status
            .fill_ppm
            .store(fill.map_or(0, |f| (f * 1e6) as u64), Ordering::Relaxed);
        if status.mode != ReliableEvents::Auto {
            return;
        }
        if fill.is_none() && !self.warned_blind {
            self.warned_blind = true;
            tracing::warn!(
                "cannot read nf_conntrack_count/nf_conntrack_max: reliable conntrack events stay off"
            );
        }
        let want = valve_wants(&self.settings, reliable, fill);
        if want == reliable {
            return;
        }
        match set_reliable(socket, want) {
            Ok(()) => {
                status.reliable.store(want, Ordering::Relaxed);
                if want {
                    tracing::info!(
                        fill = fill.unwrap_or(0.0),
                        "conntrack table below the valve's resume threshold: reliable events back on"
                    );
                } else {
                    status.valve_trips.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        fill = fill.unwrap_or(0.0),
                        max_fill = self.settings.max_fill,
                        "conntrack table near full: reliable events off, so the entries waiting for \
                         netcost are freed; DESTROY events that overflow are lost until it recovers"
                    );
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot change conntrack event reliability"),
        }
    }
}

/// Whether the valve wants reliable delivery, given whether it is on now and the table's fill.
/// Without a fill to read the valve cannot promise the node anything, so it wants it off.
fn valve_wants(settings: &ValveSettings, reliable: bool, fill: Option<f64>) -> bool {
    match fill {
        None => false,
        Some(f) if reliable => f < settings.max_fill,
        Some(f) => f <= settings.resume_fill,
    }
}

/// Turns both socket options on or off together. Off means off for both: with
/// `NETLINK_NO_ENOBUFS` alone, overflowing events would be dropped without the `ENOBUFS` that
/// tells the reader.
pub(crate) fn set_reliable(socket: &Socket, on: bool) -> io::Result<()> {
    socket.set_broadcast_error(on)?;
    socket.set_no_enobufs(on)
}

/// The running reader: its queue, its status, its thread.
pub(crate) struct EventReader {
    pub(crate) queue: Arc<EventQueue>,
    pub(crate) status: Arc<EventStatus>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for EventReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventReader")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// Settings the reader thread needs.
pub(crate) struct ReaderSettings {
    pub(crate) mode: ReliableEvents,
    pub(crate) valve: ValveSettings,
    pub(crate) read_buffer_bytes: usize,
    pub(crate) queue_entries: usize,
}

impl EventReader {
    /// Starts the reader on `socket` (bound, subscribed, blocking). The sysctl and procfs files
    /// are opened here, on the caller's thread, so that they belong to its network namespace.
    pub(crate) fn spawn(socket: Socket, settings: ReaderSettings) -> io::Result<EventReader> {
        let status = Arc::new(EventStatus::new(settings.mode));
        let initial = settings.mode != ReliableEvents::Off;
        set_reliable(&socket, initial)?;
        status.reliable.store(initial, Ordering::Relaxed);
        // Wake up at least once a check period, to run the valve and see a stop request.
        socket_timeout(&socket, settings.valve.check_period)?;
        let mut address = netlink_sys::SocketAddr::new(0, 0);
        socket.get_address(&mut address)?;
        let fill = FillGauge::open()
            .inspect_err(|e| tracing::warn!(error = %e, "conntrack table fill not readable"))
            .ok();
        let mut drops = DropGauge::open(address.port_number())
            .inspect_err(|e| tracing::warn!(error = %e, "/proc/thread-self/net/netlink not readable: lost events are not counted"))
            .ok();
        let last_drops = drops.as_mut().and_then(DropGauge::read).unwrap_or(0);
        let valve = Valve {
            settings: settings.valve,
            fill,
            drops,
            last_drops,
            last_check: Instant::now(),
            warned_blind: false,
        };
        let queue = Arc::new(EventQueue::new(settings.queue_entries));
        let thread_status = status.clone();
        let thread_queue = queue.clone();
        let read_buffer = settings.read_buffer_bytes.max(4096);
        let thread = std::thread::Builder::new()
            .name("netcost-events".into())
            .spawn(move || {
                read_loop(&socket, &thread_queue, &thread_status, valve, read_buffer);
                thread_queue.lock().closed = true;
                thread_queue.added.notify_all();
            })?;
        Ok(EventReader {
            queue,
            status,
            thread: Some(thread),
        })
    }
}

impl Drop for EventReader {
    fn drop(&mut self) {
        self.status.stop();
        self.queue.taken.notify_all();
        if let Some(thread) = self.thread.take() {
            // It wakes within one check period.
            let _ = thread.join();
        }
    }
}

fn read_loop(
    socket: &Socket,
    queue: &EventQueue,
    status: &EventStatus,
    mut valve: Valve,
    read_buffer: usize,
) {
    let mut buf = vec![0u8; read_buffer];
    let period = valve.settings.check_period;
    let mut next_check = Instant::now();
    let run_valve = |valve: &mut Valve, next_check: &mut Instant| {
        let now = Instant::now();
        if now >= *next_check {
            valve.check(socket, status, now);
            *next_check = now + period;
        }
    };
    // One datagram's entries, parsed outside the queue's lock.
    let mut parsed: Vec<FlowRecord> = Vec::with_capacity(64);
    loop {
        if status.stop.load(Ordering::Relaxed) {
            return;
        }
        run_valve(&mut valve, &mut next_check);
        if status.paused.load(Ordering::Relaxed) {
            std::thread::sleep(period.min(Duration::from_millis(10)));
            continue;
        }
        // Room in the queue, or wait for the taker (the kernel holds the rest meanwhile).
        {
            let mut pending = queue.lock();
            if pending.records.len() >= queue.capacity {
                pending.reader_waiting = true;
                let _ = queue
                    .taken
                    .wait_timeout(pending, period)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
        }
        let mut stats = ReadStats::default();
        match socket.recv(&mut &mut buf[..], libc::MSG_TRUNC) {
            Ok(0) => continue,
            Ok(n) => {
                if n > buf.len() {
                    stats.malformed += 1;
                }
                let received = &buf[..n.min(buf.len())];
                match parse_netlink(received, &mut |r| parsed.push(*r)) {
                    Ok(batch) => stats.add(batch.stats),
                    Err(e) => {
                        stats.malformed += 1;
                        tracing::debug!(error = %e, "an error message on the events socket");
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Only without reliable delivery: the kernel dropped events.
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => stats.events_lost += 1,
            Err(e) => {
                tracing::error!(error = %e, "reading conntrack events failed; the event reader stops");
                *status.failed.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
                queue.lock().failure = Some(e);
                return;
            }
        }
        let mut pending = queue.lock();
        pending.records.append(&mut parsed);
        pending.stats.add(stats);
        let wake = pending.taker_waiting;
        drop(pending);
        if wake {
            queue.added.notify_one();
        }
    }
}

/// Sets `SO_RCVTIMEO`, so a blocking `recv` returns `EAGAIN` after `timeout`.
pub(crate) fn socket_timeout(socket: &Socket, timeout: Duration) -> io::Result<()> {
    let tv = nix::sys::time::TimeVal::from(libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: libc::suseconds_t::from(timeout.subsec_micros() as i32),
    });
    nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::ReceiveTimeout, &tv)
        .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drop_counter_is_found_by_protocol_and_port() {
        let text = "\
sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode
0000000000000000 0   1          00000000 0        0        0     2        0        15
0000000000000000 12  4242       00000004 0        0        0     2        17       99
0000000000000000 12  4243       00000000 0        0        0     2        3        100
";
        assert_eq!(drops_of(text, 12, 4242), Some(17));
        assert_eq!(drops_of(text, 12, 4243), Some(3));
        assert_eq!(drops_of(text, 0, 4242), None);
        assert_eq!(drops_of("garbage\nmore garbage here", 12, 4242), None);
    }

    #[test]
    fn the_valve_opens_at_the_threshold_and_closes_below_the_resume_point() {
        let settings = ValveSettings::default();
        assert!(valve_wants(&settings, true, Some(0.84)));
        assert!(!valve_wants(&settings, true, Some(0.85)));
        // Between the two thresholds it stays as it is.
        assert!(!valve_wants(&settings, false, Some(0.80)));
        assert!(valve_wants(&settings, true, Some(0.80)));
        assert!(valve_wants(&settings, false, Some(0.75)));
        assert!(!valve_wants(&settings, true, None));
    }

    #[test]
    fn modes_parse_from_their_names() {
        for mode in [
            ReliableEvents::Auto,
            ReliableEvents::On,
            ReliableEvents::Off,
        ] {
            assert_eq!(mode.as_str().parse::<ReliableEvents>(), Ok(mode));
        }
        assert!("yes".parse::<ReliableEvents>().is_err());
    }
}
