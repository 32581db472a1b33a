//! Which hostNetwork pod owns the node end of a conntrack flow: the kernel's socket of the
//! tuple (over [`crate::sock_diag`]), its cgroup v2 id, and the pod uid in that cgroup's path
//! (over [`crate::cgroup`]). It implements the pipeline's
//! [`SocketOwners`](netcost_core::socket_owner::SocketOwners) hook.
//!
//! When a socket is looked up:
//! - on the NEW event of a flow with a node address, on a thread of its own, with one query for
//!   that tuple. Short flows close before any dump sees them, and a closed TCP socket lingers
//!   only as a timewait socket, which has no cgroup; so the answer is taken at the start and
//!   kept with the flow until its DESTROY (or until it has not been asked for in
//!   [`KEEP_CYCLES`] cycles);
//! - when the pipeline meets a node end without a kept answer (a flow older than the agent, or a
//!   lost NEW event): in [`LookupMode::Batch`] by one inet_diag dump per cycle, joined by tuple,
//!   or in [`LookupMode::PerFlow`] by a query per flow.
//!
//! An inbound TCP flow whose own socket is gone is still matched to its listener (and a UDP flow
//! to its bound socket): the listener's cgroup is the accepted sockets' cgroup.
//!
//! Bounded: at most `max_answers` kept answers and `max_snapshot_sockets` sockets in a dump's
//! join table (only sockets of pod cgroups are kept: the node's own are the default anyway);
//! past either, lookups still answer but are not kept, and the overflow is counted.
//!
//! What it does not do: decide whether a uid is a hostNetwork pod of this node (the pipeline
//! checks the topology), read `/proc`, or look into network namespaces other than the one it was
//! opened in. A flow whose socket matches no pod cgroup, forwarded traffic and flows whose socket
//! was gone before any lookup stay with the node.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use netcost_core::flow::{FlowOrigin, FlowRecord, FlowTuple};
use netcost_core::socket_owner::{NodeSide, SocketOwners};
use netlink_sys::Socket;

use crate::cgroup::{PodCgroups, WalkStats};
use crate::consts::{NETLINK_NETFILTER, NFNLGRP_CONNTRACK_NEW};
use crate::error::Error;
use crate::parse::parse_netlink;
use crate::sock_diag::{SockDiag, SocketEntry, Transport};

/// Cycles a kept answer survives without being asked for. A TCP flow stays in conntrack for two
/// minutes after it closed (its TIME_WAIT), and its last header bytes may come a cycle or two
/// after its data.
pub const KEEP_CYCLES: u32 = 8;

/// Default cap on kept answers (about 100 bytes each: 6.5 MiB when full).
pub const DEFAULT_MAX_ANSWERS: usize = 64 << 10;

/// Default cap on the sockets of pod cgroups in one dump's join table (about 80 bytes each).
pub const DEFAULT_MAX_SNAPSHOT_SOCKETS: usize = 256 << 10;

/// How a node end without a kept answer is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LookupMode {
    /// One inet_diag dump per cycle (taken when the first such end is met), joined by tuple.
    #[default]
    Batch,
    /// One inet_diag query per flow.
    PerFlow,
}

impl LookupMode {
    /// The name on the command line and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            LookupMode::Batch => "batch",
            LookupMode::PerFlow => "per-flow",
        }
    }
}

impl std::str::FromStr for LookupMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "batch" => Ok(LookupMode::Batch),
            "per-flow" => Ok(LookupMode::PerFlow),
            other => Err(format!("{other:?} is not one of batch, per-flow")),
        }
    }
}

/// Settings of a [`SocketOwnerResolver`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SocketOwnerSettings {
    /// The cgroup2 mount (see [`crate::cgroup::find_cgroup2`]).
    pub cgroup_root: PathBuf,
    /// How ends without a kept answer are looked up.
    pub mode: LookupMode,
    /// Look sockets up on NEW events (on a thread of its own).
    pub new_events: bool,
    /// Cap on kept answers.
    pub max_answers: usize,
    /// Cap on the sockets of one dump's join table.
    pub max_snapshot_sockets: usize,
}

impl SocketOwnerSettings {
    /// Defaults: batch lookups, NEW events on, the default caps.
    pub fn new(cgroup_root: PathBuf) -> Self {
        SocketOwnerSettings {
            cgroup_root,
            mode: LookupMode::Batch,
            new_events: true,
            max_answers: DEFAULT_MAX_ANSWERS,
            max_snapshot_sockets: DEFAULT_MAX_SNAPSHOT_SOCKETS,
        }
    }
}

/// What the resolver did, readable from any thread (for `/metrics`).
#[derive(Debug, Default)]
pub struct SocketOwnerStatus {
    mode: Mutex<LookupMode>,
    found_pod: AtomicU64,
    found_node: AtomicU64,
    no_socket: AtomicU64,
    kept_hits: AtomicU64,
    new_event_lookups: AtomicU64,
    new_event_matches: AtomicU64,
    new_events_lost: AtomicU64,
    dumps: AtomicU64,
    dump_sockets: AtomicU64,
    dump_nanos: AtomicU64,
    queries: AtomicU64,
    query_nanos: AtomicU64,
    malformed: AtomicU64,
    errors: AtomicU64,
    answers: AtomicU64,
    answers_full: AtomicU64,
    snapshot_full: AtomicU64,
    cgroup_walks: AtomicU64,
    pod_cgroups: AtomicU64,
    cgroup_walks_incomplete: AtomicU64,
}

/// One named figure of [`SocketOwnerStatus`].
pub type Figure = (&'static str, u64);

impl SocketOwnerStatus {
    /// The lookup mode.
    pub fn mode(&self) -> LookupMode {
        *self.mode.lock().unwrap_or_else(PoisonError::into_inner)
    }
    /// Lookups by result: `pod` (a pod cgroup's socket), `node` (a socket of no pod), `no_socket`
    /// (none found), `kept` (answered from a kept answer).
    pub fn lookups(&self) -> [Figure; 4] {
        [
            ("pod", self.found_pod.load(Ordering::Relaxed)),
            ("node", self.found_node.load(Ordering::Relaxed)),
            ("no_socket", self.no_socket.load(Ordering::Relaxed)),
            ("kept", self.kept_hits.load(Ordering::Relaxed)),
        ]
    }
    /// NEW events looked up, and how many of them found a pod.
    pub fn new_events(&self) -> (u64, u64) {
        (
            self.new_event_lookups.load(Ordering::Relaxed),
            self.new_event_matches.load(Ordering::Relaxed),
        )
    }
    /// Times the kernel dropped NEW events (their flows fall back to the pipeline's lookup).
    pub fn new_events_lost(&self) -> u64 {
        self.new_events_lost.load(Ordering::Relaxed)
    }
    /// Socket dumps, the sockets of the last one, and their total time in seconds.
    pub fn dumps(&self) -> (u64, u64, f64) {
        (
            self.dumps.load(Ordering::Relaxed),
            self.dump_sockets.load(Ordering::Relaxed),
            self.dump_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        )
    }
    /// Single-socket queries and their total time in seconds.
    pub fn queries(&self) -> (u64, f64) {
        (
            self.queries.load(Ordering::Relaxed),
            self.query_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        )
    }
    /// Kernel messages skipped as malformed, and failed socket calls.
    pub fn garbage_and_errors(&self) -> (u64, u64) {
        (
            self.malformed.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }
    /// Kept answers now; times one could not be kept (cap); sockets left out of a join table.
    pub fn memory(&self) -> (u64, u64, u64) {
        (
            self.answers.load(Ordering::Relaxed),
            self.answers_full.load(Ordering::Relaxed),
            self.snapshot_full.load(Ordering::Relaxed),
        )
    }
    /// Cgroup walks, pod cgroups found by the last one, walks cut short.
    pub fn cgroups(&self) -> (u64, u64, u64) {
        (
            self.cgroup_walks.load(Ordering::Relaxed),
            self.pod_cgroups.load(Ordering::Relaxed),
            self.cgroup_walks_incomplete.load(Ordering::Relaxed),
        )
    }

    fn note_walks(&self, stats: WalkStats) {
        self.cgroup_walks.store(stats.walks, Ordering::Relaxed);
        self.pod_cgroups.store(stats.pod_cgroups, Ordering::Relaxed);
        self.cgroup_walks_incomplete
            .store(stats.incomplete, Ordering::Relaxed);
    }

    fn add_time(counter: &AtomicU64, since: Instant) {
        counter.fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}

/// A kept answer's identity: the conntrack entry and which of its ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FlowKey {
    id: u32,
    zone: u16,
    original: FlowTuple,
    initiator: bool,
}

impl FlowKey {
    fn new(record: &FlowRecord, side: NodeSide) -> FlowKey {
        FlowKey {
            id: record.id,
            zone: record.zone,
            original: record.original,
            initiator: side == NodeSide::Initiator,
        }
    }
}

#[derive(Debug)]
struct Answer {
    owner: Arc<str>,
    seen_cycle: u32,
}

/// What both threads share.
#[derive(Debug)]
struct Shared {
    answers: Mutex<HashMap<FlowKey, Answer>>,
    max_answers: usize,
    cgroups: Mutex<PodCgroups>,
    node_addresses: RwLock<Arc<[IpAddr]>>,
    cycle: AtomicU32,
    status: Arc<SocketOwnerStatus>,
    stop: AtomicBool,
}

impl Shared {
    fn answers(&self) -> MutexGuard<'_, HashMap<FlowKey, Answer>> {
        self.answers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cgroups(&self) -> MutexGuard<'_, PodCgroups> {
        self.cgroups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The pod of a socket's cgroup, walking the hierarchy again if the id is new.
    fn pod_of(&self, cgroup_id: u64) -> Option<Arc<str>> {
        let mut cgroups = self.cgroups();
        let owner = cgroups.owner(cgroup_id, Instant::now());
        self.status.note_walks(cgroups.stats());
        owner
    }

    fn keep(&self, key: FlowKey, owner: Arc<str>) {
        let cycle = self.cycle.load(Ordering::Relaxed);
        let mut answers = self.answers();
        if answers.len() >= self.max_answers && !answers.contains_key(&key) {
            self.status.answers_full.fetch_add(1, Ordering::Relaxed);
            return;
        }
        answers.insert(
            key,
            Answer {
                owner,
                seen_cycle: cycle,
            },
        );
        self.status
            .answers
            .store(answers.len() as u64, Ordering::Relaxed);
    }
}

/// The address pair a side's socket has: `(local, remote)`, as the socket saw them.
fn socket_tuple(record: &FlowRecord, side: NodeSide) -> (SocketAddr, SocketAddr) {
    match side {
        NodeSide::Initiator => (
            SocketAddr::new(record.original.src, record.original.src_port),
            SocketAddr::new(record.original.dst, record.original.dst_port),
        ),
        NodeSide::Responder => (
            SocketAddr::new(record.reply.src, record.reply.src_port),
            SocketAddr::new(record.reply.dst, record.reply.dst_port),
        ),
    }
}

/// The same address whatever the family spelling: IPv4-mapped as IPv4, either unspecified
/// address as `0.0.0.0`.
fn canonical(addr: SocketAddr) -> SocketAddr {
    let ip = addr.ip().to_canonical();
    let ip = if ip.is_unspecified() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        ip
    };
    SocketAddr::new(ip, addr.port())
}

const UNSPECIFIED: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// A join table's key: a socket by protocol and canonical addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SockKey {
    transport: Transport,
    local: SocketAddr,
    remote: SocketAddr,
}

/// The keys a side's socket may be found under, most specific first: the connected socket;
/// then, for the answering end of TCP and any end of UDP, the socket listening on (bound to)
/// the local address, or on every address.
fn candidate_keys(
    transport: Transport,
    side: NodeSide,
    local: SocketAddr,
    remote: SocketAddr,
) -> impl Iterator<Item = SockKey> {
    let (local, remote) = (canonical(local), canonical(remote));
    let wildcard = transport == Transport::Udp || side == NodeSide::Responder;
    let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), local.port());
    let key = move |local, remote| SockKey {
        transport,
        local,
        remote,
    };
    [
        Some(key(local, remote)),
        wildcard.then(|| key(local, UNSPECIFIED)),
        wildcard.then(|| key(any, UNSPECIFIED)),
    ]
    .into_iter()
    .flatten()
}

/// One dump's sockets of pod cgroups, by tuple.
#[derive(Debug, Default)]
struct Snapshot {
    taken_in_cycle: Option<u32>,
    sockets: HashMap<SockKey, Arc<str>>,
}

/// The resolver. See the module docs.
#[derive(Debug)]
pub struct SocketOwnerResolver {
    shared: Arc<Shared>,
    diag: SockDiag,
    mode: LookupMode,
    max_snapshot_sockets: usize,
    snapshot: Snapshot,
    watcher: Option<std::thread::JoinHandle<()>>,
    warned_error: bool,
}

impl SocketOwnerResolver {
    /// Opens the sockets (in the calling thread's network namespace), walks the cgroup
    /// hierarchy once, and starts the NEW event thread if asked.
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] when the inet_diag socket, or the NEW event socket, cannot be opened.
    pub fn open(settings: SocketOwnerSettings) -> Result<SocketOwnerResolver, Error> {
        let status = Arc::new(SocketOwnerStatus::default());
        *status.mode.lock().unwrap_or_else(PoisonError::into_inner) = settings.mode;
        let mut cgroups = PodCgroups::new(settings.cgroup_root.clone());
        cgroups.refresh(Instant::now());
        status.note_walks(cgroups.stats());
        let shared = Arc::new(Shared {
            answers: Mutex::new(HashMap::new()),
            max_answers: settings.max_answers,
            cgroups: Mutex::new(cgroups),
            node_addresses: RwLock::new(Arc::from(Vec::new())),
            cycle: AtomicU32::new(0),
            status,
            stop: AtomicBool::new(false),
        });
        let diag = SockDiag::open()?;
        let watcher = if settings.new_events {
            Some(spawn_new_event_lookups(shared.clone())?)
        } else {
            None
        };
        tracing::info!(
            cgroup_root = %settings.cgroup_root.display(),
            mode = settings.mode.as_str(),
            new_events = settings.new_events,
            pod_cgroups = shared.status.cgroups().1,
            "hostNetwork pods' bytes are looked up by socket"
        );
        Ok(SocketOwnerResolver {
            shared,
            diag,
            mode: settings.mode,
            max_snapshot_sockets: settings.max_snapshot_sockets,
            snapshot: Snapshot::default(),
            watcher,
            warned_error: false,
        })
    }

    /// The live figures, for `/metrics`.
    pub fn status(&self) -> Arc<SocketOwnerStatus> {
        self.shared.status.clone()
    }

    fn failed(&mut self, what: &str, error: &Error) {
        self.shared.status.errors.fetch_add(1, Ordering::Relaxed);
        if !self.warned_error {
            self.warned_error = true;
            tracing::warn!(error = %error, "socket lookup ({what}) failed; those bytes stay with the node (further failures are only counted)");
        }
    }

    /// Takes this cycle's join table, unless it has been taken already.
    fn ensure_snapshot(&mut self) {
        let cycle = self.shared.cycle.load(Ordering::Relaxed);
        if self.snapshot.taken_in_cycle == Some(cycle) {
            return;
        }
        self.snapshot.taken_in_cycle = Some(cycle);
        self.snapshot.sockets.clear();
        let started = Instant::now();
        let shared = &self.shared;
        let sockets = &mut self.snapshot.sockets;
        let cap = self.max_snapshot_sockets;
        // Sockets of one cgroup come in runs; resolve each id once per dump, so the cgroup map's
        // lock is taken per cgroup rather than per socket.
        let mut seen: HashMap<u64, Option<Arc<str>>> = HashMap::new();
        let mut full = 0u64;
        let result = self.diag.dump_all(&mut |entry: &SocketEntry| {
            let Some(id) = entry.cgroup_id else { return };
            let owner = seen.entry(id).or_insert_with(|| shared.pod_of(id)).clone();
            let Some(owner) = owner else { return };
            if sockets.len() >= cap {
                full += 1;
                return;
            }
            sockets.insert(
                SockKey {
                    transport: entry.transport,
                    local: canonical(entry.local),
                    remote: canonical(entry.remote),
                },
                owner,
            );
        });
        let status = &self.shared.status;
        status.dumps.fetch_add(1, Ordering::Relaxed);
        SocketOwnerStatus::add_time(&status.dump_nanos, started);
        if full > 0 {
            status.snapshot_full.fetch_add(full, Ordering::Relaxed);
        }
        match result {
            Ok(stats) => {
                status.dump_sockets.store(stats.sockets, Ordering::Relaxed);
                status
                    .malformed
                    .fetch_add(stats.malformed, Ordering::Relaxed);
            }
            Err(e) => self.failed("dump", &e),
        }
    }

    fn lookup_batch(
        &mut self,
        transport: Transport,
        side: NodeSide,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Lookup {
        self.ensure_snapshot();
        match candidate_keys(transport, side, local, remote)
            .find_map(|key| self.snapshot.sockets.get(&key))
        {
            Some(owner) => Lookup::Pod(owner.clone()),
            // Only pod sockets are kept: the node's and no socket at all look the same here.
            None => Lookup::NoSocket,
        }
    }

    fn lookup_per_flow(
        &mut self,
        transport: Transport,
        side: NodeSide,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Lookup {
        match query(&mut self.diag, &self.shared, transport, side, local, remote) {
            Ok(found) => found,
            Err(e) => {
                self.failed("query", &e);
                Lookup::NoSocket
            }
        }
    }
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lookup {
    Pod(Arc<str>),
    NotPod,
    NoSocket,
}

/// Queries the socket of one side; for TCP's answering end whose own socket is gone or carries
/// no cgroup (a request or timewait socket), asks again for the listener.
fn query(
    diag: &mut SockDiag,
    shared: &Shared,
    transport: Transport,
    side: NodeSide,
    local: SocketAddr,
    remote: SocketAddr,
) -> Result<Lookup, Error> {
    let status = &shared.status;
    let started = Instant::now();
    let mut ask = |remote: SocketAddr| {
        status.queries.fetch_add(1, Ordering::Relaxed);
        let found = diag.find(transport, local, remote);
        if let Ok((_, stats)) = &found {
            status
                .malformed
                .fetch_add(stats.malformed, Ordering::Relaxed);
        }
        found.map(|(entry, _)| entry.and_then(|e| e.cgroup_id))
    };
    let mut id = ask(remote)?;
    if id.is_none() && transport == Transport::Tcp && side == NodeSide::Responder {
        let any = match local {
            SocketAddr::V4(_) => UNSPECIFIED,
            SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), 0),
        };
        id = ask(any)?;
    }
    SocketOwnerStatus::add_time(&status.query_nanos, started);
    Ok(match id {
        None => Lookup::NoSocket,
        Some(id) => match shared.pod_of(id) {
            Some(owner) => Lookup::Pod(owner),
            None => Lookup::NotPod,
        },
    })
}

impl SocketOwners for SocketOwnerResolver {
    fn owner(
        &mut self,
        record: &FlowRecord,
        side: NodeSide,
        origin: FlowOrigin,
    ) -> Option<Arc<str>> {
        let transport = Transport::from_protocol(record.original.protocol)?;
        let key = FlowKey::new(record, side);
        {
            let mut answers = self.shared.answers();
            let kept = match origin {
                FlowOrigin::Destroyed => answers.remove(&key).map(|a| a.owner),
                FlowOrigin::Dump => answers.get_mut(&key).map(|a| {
                    a.seen_cycle = self.shared.cycle.load(Ordering::Relaxed);
                    a.owner.clone()
                }),
            };
            if let Some(owner) = kept {
                self.shared.status.kept_hits.fetch_add(1, Ordering::Relaxed);
                return Some(owner);
            }
        }
        let (local, remote) = socket_tuple(record, side);
        let found = match self.mode {
            LookupMode::Batch => self.lookup_batch(transport, side, local, remote),
            LookupMode::PerFlow => self.lookup_per_flow(transport, side, local, remote),
        };
        let status = &self.shared.status;
        match found {
            Lookup::Pod(owner) => {
                status.found_pod.fetch_add(1, Ordering::Relaxed);
                if origin == FlowOrigin::Dump {
                    self.shared.keep(key, owner.clone());
                }
                Some(owner)
            }
            Lookup::NotPod => {
                status.found_node.fetch_add(1, Ordering::Relaxed);
                None
            }
            Lookup::NoSocket => {
                status.no_socket.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    fn set_node_addresses(&mut self, addresses: &[IpAddr]) {
        let canonical: Vec<IpAddr> = addresses.iter().map(|ip| ip.to_canonical()).collect();
        *self
            .shared
            .node_addresses
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::from(canonical);
    }

    fn begin_cycle(&mut self) {
        self.shared.cycle.fetch_add(1, Ordering::Relaxed);
    }

    fn end_cycle(&mut self) {
        let cycle = self.shared.cycle.load(Ordering::Relaxed);
        let mut answers = self.shared.answers();
        answers.retain(|_, a| cycle.wrapping_sub(a.seen_cycle) <= KEEP_CYCLES);
        self.shared
            .status
            .answers
            .store(answers.len() as u64, Ordering::Relaxed);
        drop(answers);
        // The join table is only good for the cycle it was taken in; free it.
        if self.snapshot.sockets.capacity() > 1024 {
            self.snapshot.sockets = HashMap::new();
        }
    }
}

impl Drop for SocketOwnerResolver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.watcher.take() {
            // It wakes within its receive timeout.
            let _ = thread.join();
        }
    }
}

/// How long the NEW event thread blocks before it looks at the stop flag.
const NEW_EVENT_TIMEOUT: Duration = Duration::from_millis(200);

/// Starts the thread that looks up the node ends of new flows. Its sockets are opened here, in
/// the caller's network namespace.
fn spawn_new_event_lookups(shared: Arc<Shared>) -> Result<std::thread::JoinHandle<()>, Error> {
    let mut socket =
        Socket::new(NETLINK_NETFILTER).map_err(Error::socket("socket (NEW events)"))?;
    crate::netlink::set_receive_buffer(&socket, 4 << 20)?;
    socket
        .bind_auto()
        .map_err(Error::socket("bind (NEW events)"))?;
    socket
        .add_membership(NFNLGRP_CONNTRACK_NEW)
        .map_err(Error::socket("subscribe to NFNLGRP_CONNTRACK_NEW"))?;
    crate::events::socket_timeout(&socket, NEW_EVENT_TIMEOUT)
        .map_err(Error::socket("SO_RCVTIMEO (NEW events)"))?;
    let mut diag = SockDiag::open()?;
    std::thread::Builder::new()
        .name("netcost-new-flows".into())
        .spawn(move || new_event_loop(&socket, &mut diag, &shared))
        .map_err(Error::socket("start the NEW event thread"))
}

fn new_event_loop(socket: &Socket, diag: &mut SockDiag, shared: &Shared) {
    let mut buf = vec![0u8; 64 << 10];
    let mut records: Vec<FlowRecord> = Vec::with_capacity(64);
    let mut warned = false;
    while !shared.stop.load(Ordering::Relaxed) {
        match socket.recv(&mut &mut buf[..], 0) {
            Ok(n) => {
                records.clear();
                if parse_netlink(&buf[..n.min(buf.len())], &mut |r| records.push(*r)).is_err() {
                    shared.status.malformed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                shared
                    .status
                    .new_events_lost
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "reading conntrack NEW events failed; new flows are looked up at the next dump instead");
                return;
            }
        }
        let addresses = shared
            .node_addresses
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for record in &records {
            let Some(transport) = Transport::from_protocol(record.original.protocol) else {
                continue;
            };
            for (side, ip) in [
                (NodeSide::Initiator, record.original.src),
                (NodeSide::Responder, record.reply.src),
            ] {
                if !addresses.contains(&ip.to_canonical()) {
                    continue;
                }
                shared
                    .status
                    .new_event_lookups
                    .fetch_add(1, Ordering::Relaxed);
                let (local, remote) = socket_tuple(record, side);
                match query(diag, shared, transport, side, local, remote) {
                    Ok(Lookup::Pod(owner)) => {
                        shared
                            .status
                            .new_event_matches
                            .fetch_add(1, Ordering::Relaxed);
                        shared.keep(FlowKey::new(record, side), owner);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        shared.status.errors.fetch_add(1, Ordering::Relaxed);
                        if !warned {
                            warned = true;
                            tracing::warn!(error = %e, "socket lookup of a new flow failed (further failures are only counted)");
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    #[test]
    fn the_node_side_socket_is_the_original_source_or_the_reply_source() {
        // A host process calls a ClusterIP; kube-proxy DNATs it to a pod; the reply comes back.
        let record = FlowRecord::tcp(1, addr("192.0.2.1:40000"), addr("10.96.0.10:80"), 10, 20)
            .natted(
                "10.1.2.11".parse().expect("ip"),
                "192.0.2.1".parse().expect("ip"),
            );
        assert_eq!(
            socket_tuple(&record, NodeSide::Initiator),
            (addr("192.0.2.1:40000"), addr("10.96.0.10:80"))
        );
        // Seen from the answering end, the socket is the backend's, talking to the client.
        assert_eq!(
            socket_tuple(&record, NodeSide::Responder),
            (addr("10.1.2.11:80"), addr("192.0.2.1:40000"))
        );
    }

    #[test]
    fn a_tcp_client_end_never_matches_a_listener_but_a_server_end_and_udp_do() {
        let (local, remote) = (addr("192.0.2.1:8080"), addr("198.51.100.7:5000"));
        let keys = |t, s| candidate_keys(t, s, local, remote).collect::<Vec<_>>();
        assert_eq!(keys(Transport::Tcp, NodeSide::Initiator).len(), 1);
        let server = keys(Transport::Tcp, NodeSide::Responder);
        assert_eq!(server.len(), 3);
        assert_eq!(server[1].remote, UNSPECIFIED);
        assert_eq!(server[2].local, addr("0.0.0.0:8080"));
        assert_eq!(keys(Transport::Udp, NodeSide::Initiator).len(), 3);
    }

    #[test]
    fn a_dual_stack_listener_and_an_ipv4_flow_meet_on_one_key() {
        // A socket listening on [::]:443 is reported with the IPv6 unspecified address; an IPv4
        // flow to a node address must find it under the wildcard key.
        let listener = SockKey {
            transport: Transport::Tcp,
            local: canonical(addr("[::]:443")),
            remote: canonical(addr("[::]:0")),
        };
        let found = candidate_keys(
            Transport::Tcp,
            NodeSide::Responder,
            addr("192.0.2.1:443"),
            addr("203.0.113.9:6000"),
        )
        .any(|k| k == listener);
        assert!(found);
        assert_eq!(
            canonical(addr("[::ffff:192.0.2.1]:80")),
            addr("192.0.2.1:80")
        );
    }

    #[test]
    fn lookup_modes_parse_from_their_names() {
        for mode in [LookupMode::Batch, LookupMode::PerFlow] {
            assert_eq!(mode.as_str().parse::<LookupMode>(), Ok(mode));
        }
        assert!("both".parse::<LookupMode>().is_err());
    }
}
