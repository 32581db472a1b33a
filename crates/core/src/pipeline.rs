//! One agent step at a time: read a source, turn counters into deltas, attribute, classify and
//! aggregate. The caller owns the clock and the schedule; a test calls [`Pipeline::dump_cycle`]
//! and [`Pipeline::drain_events`] by hand with the time it chooses.
//!
//! A cycle is: dump the table (deltas of live entries, with the DESTROY events that arrive
//! meanwhile), drain DESTROY events (the remainder of entries that ended, including those that
//! ended during the dump), then forget entries that neither the dump nor an event accounted
//! for. Sweeping only after the last drain matters: an entry destroyed before the dump reached
//! it may have its event waiting by the time the dump ends, so its baseline must still be there
//! to subtract.
//!
//! Beside it: `class_cache` (the last classification of each remote address) and `traffic_log`
//! (the per-source tally behind [`Pipeline::take_traffic_log`]).

mod class_cache;
mod traffic_log;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::aggregate::{Aggregator, ExportedSeries, Owner, PodLabels, SeriesKey};
use crate::attribute::{Attribution, LocalEnd, Unattributed, attribute};
use crate::checkpoint::{
    Checkpoint, CheckpointError, CheckpointParts, Interim, read_checkpoint, write_checkpoint,
    write_interim,
};
use crate::class::{Direction, TrafficClass};
use crate::classify::{Classification, Classifier};
use crate::delta::{DeltaTracker, FlowDelta};
use crate::flow::{FlowOrigin, FlowRecord, FlowSource, ReadStats};
use crate::pairs::{ExportedPair, PairKey, Peer, PeerNames};
use crate::socket_owner::{NodeSide, SocketOwners};
use crate::topology::{Endpoint, Locality, PodInfo, Topology};

use class_cache::{ClassCache, Remote, RemotePeer};
use traffic_log::Talkers;

/// Settings of a pipeline.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// The node the agent runs on.
    pub node_name: Arc<str>,
    /// How long a gone pod's series stay exported, in milliseconds.
    pub pod_grace_ms: u64,
    /// How long a new series may hold bytes back waiting for a scrape, in milliseconds.
    pub pending_timeout_ms: u64,
    /// How many destinations per source the traffic log tracks before lumping the rest together;
    /// 0 turns the tally off (the traffic log is disabled).
    pub talkers_per_source: usize,
    /// Cap on workload pair counters; pairs past it are counted under `__other__`.
    pub max_workload_pairs: usize,
    /// How long a workload pair without new bytes stays exported, in milliseconds.
    pub workload_pair_idle_ms: u64,
}

impl PipelineConfig {
    /// Defaults: a 10 minute grace period and pending timeout, 1000 destinations per source.
    pub fn new(node_name: impl Into<Arc<str>>) -> Self {
        PipelineConfig {
            node_name: node_name.into(),
            pod_grace_ms: 10 * 60 * 1000,
            pending_timeout_ms: 10 * 60 * 1000,
            talkers_per_source: 1000,
            max_workload_pairs: crate::aggregate::DEFAULT_PAIR_LIMIT,
            workload_pair_idle_ms: crate::aggregate::DEFAULT_PAIR_IDLE_MS,
        }
    }
}

/// Running totals since the agent started, for the operational metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineStats {
    /// Completed dump cycles.
    pub cycles: u64,
    /// Entries in the last dump.
    pub last_dump_entries: u64,
    /// Entries with a baseline after the last cycle.
    pub tracked_entries: u64,
    /// All entries read, from dumps and events.
    pub entries_read: u64,
    /// DESTROY events read.
    pub destroy_events: u64,
    /// Entries skipped as malformed.
    pub malformed: u64,
    /// Entries skipped as unsupported (not IPv4/IPv6).
    pub unsupported: u64,
    /// Event messages the kernel dropped.
    pub events_lost: u64,
    /// Entries that vanished without a DESTROY event (their last bytes are lost).
    pub vanished: u64,
    /// Bytes not attributed, by reason.
    pub unattributed_bytes: HashMap<Unattributed, u64>,
    /// Bytes attributed to a local endpoint (each end counted once).
    pub attributed_bytes: u64,
    /// Workload pair counters in use (including `__other__` ones).
    pub workload_pairs: u64,
    /// Times a new workload pair found the cap reached and went to `__other__`.
    pub workload_pairs_over_limit: u64,
    /// Bytes at a node address that the socket owners booked to a hostNetwork pod (each end
    /// counted once); included in `attributed_bytes`.
    pub host_network_pod_bytes: u64,
}

/// What one source of traffic talked to, for the traffic log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TalkerReport {
    /// `namespace/pod` or `node/<name>`.
    pub source: String,
    /// The top destinations: a readable name, the class, and bytes both ways.
    pub destinations: Vec<(String, TrafficClass, u64)>,
}

/// What the agent exports after a step.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Generation, to report back with [`Pipeline::note_scraped`].
    pub generation: u64,
    /// The node name.
    pub node_name: Arc<str>,
    /// Every byte counter.
    pub series: Vec<ExportedSeries>,
    /// Every workload pair counter.
    pub pairs: Vec<ExportedPair>,
    /// Totals.
    pub stats: PipelineStats,
    /// False when the local node has no zone label: in-cluster classification is degraded.
    pub node_has_zone: bool,
}

/// The maps touched once per flow hash with foldhash rather than SipHash: resistance to chosen
/// keys is not needed there, since the batch is keyed by pointers and a source's destinations are
/// capped at `talkers_per_source`, so colliding remote addresses cannot make a lookup long. The
/// fixed seed keeps iteration, and so the traffic log's ties, the same from run to run.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// One exported counter's bytes gathered during a read, keyed by identity rather than by
/// value: the pod's address in the topology and the service name's allocation. Adding to the
/// aggregator once per counter and read, instead of once per flow, saves hashing a uid string
/// and two reference counts per flow; the sums are the same, because every add of one read
/// happens at the same time, generation and scrape state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct BatchKey {
    owner: usize,
    service: usize,
    remote_region: usize,
    direction: Direction,
    class: TrafficClass,
    nat_gateway: bool,
}

struct Batched {
    owner: Owner,
    service: Option<Arc<str>>,
    remote_region: Option<Arc<str>>,
    bytes: u64,
    /// The labels of a pod on another node whose traffic this node translated, for the
    /// aggregator to keep its series (see [`crate::attribute::LocalEnd::ServedPod`]).
    served: Option<PodLabels>,
}

/// A workload pair's bytes gathered during a read, keyed by identity like [`BatchKey`]: the
/// local pod's address and the remote end's cache entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PairBatchKey {
    owner: usize,
    remote: usize,
    class: TrafficClass,
    local_initiated: bool,
}

struct PairBatched {
    local: Peer,
    remote: Arc<RemotePeer>,
    bytes: u64,
}

/// A pipeline continued from a checkpoint, by [`Pipeline::restore_from`].
pub struct Restored {
    /// The pipeline.
    pub pipeline: Pipeline,
    /// The checkpoint's checksum: what the next interim checkpoint names until a new
    /// checkpoint is written.
    pub checkpoint: u64,
    /// True when an interim checkpoint's counters replaced the checkpoint's.
    pub used_interim: bool,
}

/// The agent's processing, with no I/O of its own. See the module docs.
pub struct Pipeline {
    config: PipelineConfig,
    topology: Arc<Topology>,
    local: Locality,
    /// Whether this node's internet traffic goes through a NAT gateway (the config's
    /// `nat-gateway.node-subnets` hold one of its addresses).
    local_behind_nat: bool,
    classifier: Classifier,
    tracker: DeltaTracker,
    aggregator: Aggregator,
    talkers: Talkers,
    stats: PipelineStats,
    batch: FastMap<BatchKey, Batched>,
    pair_batch: FastMap<PairBatchKey, PairBatched>,
    class_cache: ClassCache,
    peer_names: PeerNames,
    owners: Option<Box<dyn SocketOwners>>,
}

/// The pods an agent on `node` books bytes to: those with a network namespace of their own and,
/// when socket owners tell them apart, the hostNetwork ones.
fn local_pods<'a>(
    topology: &'a Topology,
    node: &'a str,
    host_network: bool,
) -> impl Iterator<Item = &'a PodInfo> + 'a {
    let host = host_network.then(|| topology.host_network_pods_on_node(node));
    topology
        .pods_on_node(node)
        .chain(host.into_iter().flatten())
}

impl Pipeline {
    /// A pipeline that starts counting now: the first dump only takes baselines.
    pub fn new(config: PipelineConfig, topology: Arc<Topology>, classifier: Classifier) -> Self {
        let aggregator = Aggregator::new(config.pod_grace_ms, config.pending_timeout_ms)
            .with_pair_limits(config.max_workload_pairs, config.workload_pair_idle_ms);
        let mut pipeline = Pipeline {
            local: Locality::default(),
            local_behind_nat: false,
            config,
            topology: Arc::new(Topology::default()),
            classifier,
            tracker: DeltaTracker::new(),
            aggregator,
            talkers: Talkers::default(),
            stats: PipelineStats::default(),
            batch: FastMap::default(),
            pair_batch: FastMap::default(),
            class_cache: ClassCache::new(),
            peer_names: PeerNames::default(),
            owners: None,
        };
        pipeline.set_topology(topology, 0);
        pipeline
    }

    /// A pipeline that continues from a checkpoint of `len` bytes read from `input` (buffered),
    /// as [`Pipeline::restore`] does, without holding the file or a list of its baselines in
    /// memory: each baseline goes straight into the tracker. An `interim` checkpoint that names
    /// this checkpoint replaces its counters (see [`Interim`]); one that names another is
    /// ignored.
    ///
    /// # Errors
    ///
    /// A damaged or foreign checkpoint, as [`read_checkpoint`] says, and
    /// [`CheckpointError::OtherNode`] when it was written on another node.
    pub fn restore_from<R: std::io::Read>(
        config: PipelineConfig,
        topology: Arc<Topology>,
        classifier: Classifier,
        (input, len): (R, u64),
        interim: Option<Interim>,
        now_ms: u64,
    ) -> Result<Restored, CheckpointError> {
        let mut tracker = DeltaTracker::new();
        let (mut checkpoint, checksum) =
            read_checkpoint(input, len, &mut |b| tracker.insert_saved(b))?;
        if checkpoint.node_name != *config.node_name {
            return Err(CheckpointError::OtherNode {
                found: checkpoint.node_name,
            });
        }
        let interim =
            interim.filter(|i| i.checkpoint == checksum && i.node_name == checkpoint.node_name);
        let used_interim = interim.is_some();
        if let Some(interim) = interim {
            checkpoint.pods = interim.pods;
            checkpoint.series = interim.series;
            checkpoint.pairs = interim.pairs;
        }
        tracker.set_primed(checkpoint.primed);
        let mut pipeline = Pipeline::restore(config, topology, classifier, checkpoint, now_ms);
        pipeline.tracker = tracker;
        Ok(Restored {
            pipeline,
            checkpoint: checksum,
            used_interim,
        })
    }

    /// A pipeline that continues from a checkpoint: baselines and counters pick up where they were.
    pub fn restore(
        config: PipelineConfig,
        topology: Arc<Topology>,
        classifier: Classifier,
        checkpoint: Checkpoint,
        now_ms: u64,
    ) -> Self {
        let mut pipeline = Pipeline::new(config, topology.clone(), classifier);
        pipeline.tracker = DeltaTracker::restore(checkpoint.baselines, checkpoint.primed);
        for pod in checkpoint.pods {
            pipeline.aggregator.restore_pod(pod, now_ms);
        }
        for series in checkpoint.series {
            pipeline.aggregator.restore_series(series, now_ms);
        }
        for pair in checkpoint.pairs {
            pipeline.aggregator.restore_pair(pair, now_ms);
        }
        pipeline.set_topology(topology, now_ms);
        pipeline
    }

    /// Replaces the classifier, for example with fresh cloud provider ranges. Cheap: a
    /// [`Classifier`] is a pair of `Arc`s. Flows already counted keep their class; bytes from now
    /// on are classified by the new one.
    pub fn set_classifier(&mut self, classifier: Classifier) {
        self.classifier = classifier;
        self.class_cache.clear();
    }

    /// Entries with a per-flow baseline.
    pub fn tracked_flows(&self) -> usize {
        self.tracker.len()
    }

    /// The classifier in use.
    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// Replaces the topology (for example after a watch event) and syncs the local pods.
    pub fn set_topology(&mut self, topology: Arc<Topology>, now_ms: u64) {
        self.class_cache.clear();
        let node = topology.node(&self.config.node_name);
        self.local = node.map(|n| n.locality.clone()).unwrap_or_default();
        let config = self.classifier.config();
        self.local_behind_nat = node.is_some_and(|n| {
            n.addresses
                .iter()
                .any(|address| config.node_behind_nat(*address))
        });
        if let Some(owners) = self.owners.as_deref_mut() {
            owners.set_node_addresses(node.map_or(&[], |n| &n.addresses[..]));
        }
        self.aggregator.sync_pods(
            local_pods(&topology, &self.config.node_name, self.owners.is_some()),
            now_ms,
        );
        self.topology = topology;
    }

    /// Books the node ends of flows to the hostNetwork pods whose sockets they are, as `owners`
    /// finds them; those pods get their series from now on. Without it (the default) every
    /// byte at a node address is the node's.
    pub fn set_socket_owners(&mut self, owners: Box<dyn SocketOwners>, now_ms: u64) {
        self.owners = Some(owners);
        self.set_topology(self.topology.clone(), now_ms);
    }

    /// Runs one cycle: drain events, dump (with the events that arrive meanwhile), drain events,
    /// sweep, and start a new snapshot generation.
    ///
    /// The first drain keeps the window small in which an entry can end and be recreated with
    /// the same id and tuple (the kernel reuses a freed entry's memory, and its id hashes that
    /// address with the tuple) before its DESTROY event is read: inside that window the new
    /// flow would be measured against the old one's baseline. Events read during the dump are
    /// handled as they come, so the kernel's queue never waits behind a long dump; the tracker's
    /// tombstones keep the dump's older view of those entries from counting twice.
    pub fn dump_cycle<S: FlowSource>(
        &mut self,
        source: &mut S,
        now_ms: u64,
    ) -> Result<ReadStats, S::Error> {
        let mut total = self.drain_events_inner(source, now_ms)?;
        if let Some(owners) = self.owners.as_deref_mut() {
            owners.begin_cycle();
        }
        self.tracker.begin_dump();
        let read = {
            let mut step = self.step();
            source.dump_with_events(&mut |record, origin| step.account(record, origin))
        };
        // Flushed before `?`: entries read before a failure count, as they did one by one.
        self.flush_batch(now_ms);
        let read = read?;
        self.stats.last_dump_entries = read.dump.entries;
        self.stats.destroy_events += read.events.entries;
        self.note_read(read.dump);
        self.note_read(read.events);
        total.add(read.dump);
        total.add(read.events);
        // The dump is complete, so the sweep and the generation change happen even if the
        // drain fails: a half-finished cycle would leave stale generation marks behind.
        let events = self.drain_events_inner(source, now_ms);
        self.stats.vanished += self.tracker.end_dump().vanished;
        self.stats.tracked_entries = self.tracker.len() as u64;
        self.stats.cycles += 1;
        if let Some(owners) = self.owners.as_deref_mut() {
            owners.end_cycle();
        }
        // Pods may have come and gone without a topology change (grace periods run on time).
        self.aggregator.sync_pods(
            local_pods(
                &self.topology,
                &self.config.node_name,
                self.owners.is_some(),
            ),
            now_ms,
        );
        self.aggregator.advance(now_ms);
        total.add(events?);
        Ok(total)
    }

    /// Reads pending DESTROY events without dumping. Call it often between cycles so the kernel's
    /// event queue does not overflow.
    pub fn drain_events<S: FlowSource>(
        &mut self,
        source: &mut S,
        now_ms: u64,
    ) -> Result<ReadStats, S::Error> {
        let read = self.drain_events_inner(source, now_ms)?;
        self.aggregator.advance(now_ms);
        Ok(read)
    }

    fn drain_events_inner<S: FlowSource>(
        &mut self,
        source: &mut S,
        now_ms: u64,
    ) -> Result<ReadStats, S::Error> {
        let read = {
            let mut step = self.step();
            source.drain_destroyed(&mut |record| step.account(record, FlowOrigin::Destroyed))
        };
        self.flush_batch(now_ms);
        let read = read?;
        self.stats.destroy_events += read.entries;
        self.note_read(read);
        Ok(read)
    }

    fn note_read(&mut self, read: ReadStats) {
        self.stats.entries_read += read.entries;
        self.stats.malformed += read.malformed;
        self.stats.unsupported += read.unsupported;
        self.stats.events_lost += read.events_lost;
    }

    fn step(&mut self) -> Step<'_> {
        Step {
            node_name: &self.config.node_name,
            topology: &self.topology,
            local: &self.local,
            local_behind_nat: self.local_behind_nat,
            classifier: &self.classifier,
            tracker: &mut self.tracker,
            talkers: &mut self.talkers,
            talkers_per_source: self.config.talkers_per_source,
            stats: &mut self.stats,
            batch: &mut self.batch,
            pair_batch: &mut self.pair_batch,
            class_cache: &mut self.class_cache,
            peer_names: &self.peer_names,
            owners: self.owners.as_deref_mut(),
        }
    }

    /// Hands the bytes gathered during a read to the aggregator.
    fn flush_batch(&mut self, now_ms: u64) {
        for (key, batched) in self.batch.drain() {
            if let Some(labels) = batched.served {
                self.aggregator.note_served_pod(labels, now_ms);
            }
            self.aggregator.add(
                SeriesKey {
                    owner: batched.owner,
                    direction: key.direction,
                    class: key.class,
                    service: batched.service,
                    remote_region: batched.remote_region,
                    nat_gateway: key.nat_gateway,
                },
                batched.bytes,
                now_ms,
            );
        }
        for (key, batched) in self.pair_batch.drain() {
            let remote = batched.remote.peer.clone();
            let (client, server) = if key.local_initiated {
                (batched.local, remote)
            } else {
                (remote, batched.local)
            };
            let pair = PairKey {
                client,
                server,
                class: key.class,
            };
            self.aggregator.add_pair(pair, batched.bytes, now_ms);
        }
    }

    /// Records that a scrape served the snapshot of `generation`.
    pub fn note_scraped(&mut self, generation: u64) {
        self.aggregator.note_scraped(generation);
    }

    /// What to export now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            // The last closed generation: every series born in it is in this snapshot. A series
            // born later (the open generation) must wait for a snapshot that contains it.
            generation: self.aggregator.generation().saturating_sub(1),
            node_name: self.config.node_name.clone(),
            series: self.aggregator.export(),
            pairs: self.aggregator.export_pairs(),
            stats: {
                let mut stats = self.stats.clone();
                let (pairs, over_limit) = self.aggregator.pair_counts();
                stats.workload_pairs = pairs as u64;
                stats.workload_pairs_over_limit = over_limit;
                stats
            },
            node_has_zone: self.local.zone.is_some(),
        }
    }

    /// Writes the state to persist for a restart to `out` (buffered), streaming the baselines
    /// from the tracker: the same bytes as `self.checkpoint().encode()`, without either copy.
    /// Returns the checkpoint's checksum, which names it to [`Pipeline::write_interim`].
    ///
    /// # Errors
    ///
    /// The errors of `out`.
    pub fn write_checkpoint(&self, out: impl std::io::Write) -> std::io::Result<u64> {
        let (series, pods) = self.aggregator.saved();
        let pairs = self.aggregator.saved_pairs();
        write_checkpoint(
            out,
            CheckpointParts {
                node_name: &self.config.node_name,
                primed: self.tracker.is_primed(),
                baseline_count: self.tracker.saved_len(),
                baselines: self.tracker.saved(),
                pods: &pods,
                series: &series,
                pairs: &pairs,
            },
        )
    }

    /// Writes the counters as they are now, as an interim checkpoint continuing the checkpoint
    /// whose checksum is `checkpoint` (see [`Interim`]). Call it between cycles only: a dump
    /// adds baselines, which an interim checkpoint does not hold.
    ///
    /// # Errors
    ///
    /// The errors of `out`.
    pub fn write_interim(&self, out: impl std::io::Write, checkpoint: u64) -> std::io::Result<()> {
        let (series, pods) = self.aggregator.saved();
        let pairs = self.aggregator.saved_pairs();
        write_interim(
            out,
            &self.config.node_name,
            checkpoint,
            (&pods, &series, &pairs),
        )
    }

    /// DESTROY events read so far: when it has not changed, neither have the counters since the
    /// last cycle, and an interim checkpoint would say nothing new.
    pub fn destroy_events_read(&self) -> u64 {
        self.stats.destroy_events
    }

    /// The state to persist for a restart.
    pub fn checkpoint(&self) -> Checkpoint {
        let (series, pods) = self.aggregator.saved();
        Checkpoint {
            node_name: self.config.node_name.to_string(),
            primed: self.tracker.is_primed(),
            baselines: self.tracker.saved().collect(),
            series,
            pods,
            pairs: self.aggregator.saved_pairs(),
        }
    }

    /// The top `n` destinations of every source since the last call, and resets the tally.
    pub fn take_traffic_log(&mut self, n: usize) -> Vec<TalkerReport> {
        let mut reports: Vec<TalkerReport> = std::mem::take(&mut self.talkers)
            .top(n)
            .map(|(owner, top)| TalkerReport {
                source: self.owner_name(&owner),
                destinations: top
                    .into_iter()
                    .map(|(ip, (bytes, class))| (self.describe(ip), class, bytes))
                    .collect(),
            })
            .collect();
        reports.sort_by(|a, b| a.source.cmp(&b.source));
        reports
    }

    fn owner_name(&self, owner: &Owner) -> String {
        match owner {
            Owner::Node => format!("node/{}", self.config.node_name),
            Owner::Pod(uid) => match self.topology.pod_by_uid(uid) {
                Some(pod) => format!("{}/{}", pod.namespace, pod.name),
                None => format!("pod-uid/{uid}"),
            },
        }
    }

    fn describe(&self, ip: IpAddr) -> String {
        match self.topology.lookup(ip) {
            Some(Endpoint::Pod(pod)) => format!("{}/{} ({ip})", pod.namespace, pod.name),
            Some(Endpoint::Node(node)) => format!("node/{} ({ip})", node.name),
            Some(Endpoint::ServiceIp(svc)) => {
                format!("service/{}/{} ({ip})", svc.namespace, svc.name)
            }
            None => ip.to_string(),
        }
    }

    /// Bytes not attributed for `reason`, so far.
    pub fn unattributed_bytes(&self, reason: Unattributed) -> u64 {
        self.stats
            .unattributed_bytes
            .get(&reason)
            .copied()
            .unwrap_or(0)
    }
}

/// The borrowed state one read needs; split out so the source's sink can borrow it mutably
/// while the pipeline itself stays borrowed by the source call.
struct Step<'p> {
    node_name: &'p str,
    topology: &'p Topology,
    local: &'p Locality,
    local_behind_nat: bool,
    classifier: &'p Classifier,
    tracker: &'p mut DeltaTracker,
    talkers: &'p mut Talkers,
    talkers_per_source: usize,
    stats: &'p mut PipelineStats,
    batch: &'p mut FastMap<BatchKey, Batched>,
    pair_batch: &'p mut FastMap<PairBatchKey, PairBatched>,
    class_cache: &'p mut ClassCache,
    peer_names: &'p PeerNames,
    owners: Option<&'p mut (dyn SocketOwners + 'static)>,
}

impl<'p> Step<'p> {
    fn account(&mut self, record: &FlowRecord, origin: FlowOrigin) {
        let delta: FlowDelta = match origin {
            FlowOrigin::Dump => self.tracker.observe_live(record),
            FlowOrigin::Destroyed => self.tracker.observe_destroyed(record),
        };
        if delta.is_zero() {
            return;
        }
        let topology = self.topology;
        let mut attributions: [Option<Attribution<'_>>; 2] = [None, None];
        let unattributed = attribute(topology, self.node_name, record, delta, &mut |a| {
            let slot = if attributions[0].is_none() { 0 } else { 1 };
            attributions[slot] = Some(a);
        });
        if let Some(reason) = unattributed {
            let bytes = delta.original_bytes.saturating_add(delta.reply_bytes);
            let total = self.stats.unattributed_bytes.entry(reason).or_insert(0);
            *total = total.saturating_add(bytes);
        }
        for a in attributions.into_iter().flatten() {
            let a = self.socket_owner(record, origin, a);
            self.record(a);
        }
    }

    /// A node end booked to the hostNetwork pod of this node whose socket it is, if the socket
    /// owners find one; any other attribution as it is.
    fn socket_owner(
        &mut self,
        record: &FlowRecord,
        origin: FlowOrigin,
        a: Attribution<'p>,
    ) -> Attribution<'p> {
        let (LocalEnd::Node, Some(owners)) = (a.local, self.owners.as_deref_mut()) else {
            return a;
        };
        let side = if a.local_initiated {
            NodeSide::Initiator
        } else {
            NodeSide::Responder
        };
        let Some(uid) = owners.owner(record, side, origin) else {
            return a;
        };
        let topology: &'p Topology = self.topology;
        match topology.pod_by_uid(&uid) {
            Some(pod) if pod.host_network && pod.node_name.as_deref() == Some(self.node_name) => {
                let bytes = a.egress.saturating_add(a.ingress);
                self.stats.host_network_pod_bytes =
                    self.stats.host_network_pod_bytes.saturating_add(bytes);
                Attribution {
                    local: LocalEnd::Pod(pod),
                    ..a
                }
            }
            _ => a,
        }
    }

    fn record(&mut self, a: Attribution<'p>) {
        let Remote {
            classification:
                Classification {
                    class,
                    service,
                    remote_region,
                },
            peer: remote_peer,
            through_nat,
        } = self.class_cache.classify(
            self.classifier,
            self.topology,
            (self.local, self.local_behind_nat),
            self.peer_names,
            a.remote,
        );
        let class = *class;
        // A NAT gateway carries only connections its side opened: from this node (or a pod on
        // it) to a public address. Replies to connections from outside come in another way.
        let nat_gateway =
            *through_nat && a.local_initiated && !matches!(a.local, LocalEnd::ServedPod(_));
        let owner_id = match a.local {
            LocalEnd::Pod(pod) | LocalEnd::ServedPod(pod) => std::ptr::from_ref(pod) as usize,
            LocalEnd::Node => 0,
        };
        let owner = || match a.local {
            LocalEnd::Pod(pod) | LocalEnd::ServedPod(pod) => Owner::Pod(pod.uid.clone()),
            LocalEnd::Node => Owner::Node,
        };
        let served = || match a.local {
            LocalEnd::ServedPod(pod) => Some(PodLabels {
                namespace: pod.namespace.clone(),
                name: pod.name.clone(),
                uid: pod.uid.clone(),
            }),
            LocalEnd::Pod(_) | LocalEnd::Node => None,
        };
        let service_id = service
            .as_ref()
            .map_or(0, |s| Arc::as_ptr(s).cast::<u8>() as usize);
        let remote_region_id = remote_region
            .as_ref()
            .map_or(0, |r| Arc::as_ptr(r).cast::<u8>() as usize);
        for (direction, bytes) in [
            (Direction::Egress, a.egress),
            (Direction::Ingress, a.ingress),
        ] {
            if bytes == 0 {
                continue;
            }
            let key = BatchKey {
                owner: owner_id,
                service: service_id,
                remote_region: remote_region_id,
                direction,
                class,
                nat_gateway,
            };
            match self.batch.get_mut(&key) {
                Some(batched) => batched.bytes = batched.bytes.saturating_add(bytes),
                None => {
                    self.batch.insert(
                        key,
                        Batched {
                            owner: owner(),
                            service: service.clone(),
                            remote_region: remote_region.clone(),
                            bytes,
                            served: served(),
                        },
                    );
                }
            }
        }
        // What this agent adds to the pair: what its end sent, and what it received from an end
        // that has no agent to count it (see `crate::pairs`).
        let pair_bytes = if remote_peer.has_agent {
            a.egress
        } else {
            a.egress.saturating_add(a.ingress)
        };
        if pair_bytes > 0 {
            let key = PairBatchKey {
                owner: owner_id,
                remote: Arc::as_ptr(remote_peer) as usize,
                class,
                local_initiated: a.local_initiated,
            };
            match self.pair_batch.get_mut(&key) {
                Some(batched) => batched.bytes = batched.bytes.saturating_add(pair_bytes),
                None => {
                    let local = match a.local {
                        LocalEnd::Pod(pod) => self.peer_names.pod(pod, self.local.zone.as_ref()),
                        LocalEnd::ServedPod(pod) => {
                            let zone = pod
                                .node_name
                                .as_deref()
                                .and_then(|n| self.topology.node(n))
                                .and_then(|n| n.locality.zone.as_ref());
                            self.peer_names.pod(pod, zone)
                        }
                        LocalEnd::Node => self.peer_names.node(self.local.zone.as_ref()),
                    };
                    self.pair_batch.insert(
                        key,
                        PairBatched {
                            local,
                            remote: remote_peer.clone(),
                            bytes: pair_bytes,
                        },
                    );
                }
            }
        }
        let total = a.egress.saturating_add(a.ingress);
        self.stats.attributed_bytes = self.stats.attributed_bytes.saturating_add(total);
        if self.talkers_per_source == 0 {
            return;
        }
        self.talkers
            .add(owner(), a.remote, total, class, self.talkers_per_source);
    }
}
