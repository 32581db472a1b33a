//! The embedded store: minute-resolution history of byte counters for single hosts and the
//! demo, where no Prometheus runs.
//!
//! Like Prometheus it keeps *cumulative* counter values per series, and computes the growth
//! over a window at query time, treating a drop as a counter reset (the new value counts in
//! full). Unlike Prometheus it stores a point only when a counter moved, at most one per series
//! per minute, so idle series cost nothing.
//!
//! Memory: 16 bytes per stored point. A node whose 200 busiest series move every minute for
//! the default retention of 7 days holds 200 × 10,080 points ≈ 31 MiB; points older than the
//! retention are dropped (keeping one as the baseline of the oldest window).
//!
//! It holds two kinds of series: a pod's (or node's) byte counter per direction, class and
//! service, and an agent's workload pair counter. Pair series are keyed by the agent's node too:
//! two agents count the same pair separately, and one agent's pair may go idle and vanish while
//! the other's goes on, which a summed series would read as a reset.
//!
//! On disk: an append-only log of JSON lines, one per new series (`{"series": id, ...}`) and
//! one per recorded minute (`{"minute": m, "points": [[id, value], …]}`). It is replayed on
//! open; a torn last line from a crash is ignored. When the log holds twice the live points it
//! is rewritten atomically (temporary file, fsync, rename).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use netcost_core::aggregate::ExportedSeries;
use netcost_core::class::{Direction, TrafficClass};
use netcost_core::pairs::ExportedPair;
use netcost_core::pipeline::Snapshot;
use netcost_core::topology::Topology;
use netcost_cost::allocate::{PodIdentity, SegmentUsage, Usage, remote_has_agent};
use netcost_cost::edges::{PairUsage, Workload};
use netcost_cost::window::Segment;
use serde::{Deserialize, Serialize};

use crate::backend::{
    AgentStatus, BackendError, LiveStatus, RATE_SECONDS, TalkerTally, UsageBackend,
};

/// The identity of one stored counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SeriesKey {
    /// Namespace (empty for node traffic).
    pub namespace: String,
    /// Pod name (`node/<name>` for node traffic).
    pub pod: String,
    /// Node.
    pub node: String,
    /// Region of the node.
    pub region: String,
    /// Owning workload kind and name, if known.
    pub workload: Option<(String, String)>,
    /// `egress` or `ingress`.
    pub direction: String,
    /// `in-zone`, `cross-zone`, `cross-region` or `internet`.
    pub class: String,
    /// Service label, empty for none.
    pub service: String,
    /// The far region of cross-region bytes, empty when not known. Logs written before it
    /// existed read as empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub remote_region: String,
    /// The bytes went through a NAT gateway. Logs written before it existed read as false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nat_gateway: bool,
}

impl SeriesKey {
    /// The key of an agent's exported counter on `node`, with the pod's workload and the node's
    /// region looked up in `topology`.
    pub fn of(series: &ExportedSeries, topology: &Topology, node: &str) -> SeriesKey {
        let region = topology
            .node(node)
            .and_then(|n| n.locality.region.as_deref().map(str::to_owned))
            .unwrap_or_default();
        let (namespace, pod, workload) = match &series.pod {
            Some(p) => {
                let owner = topology
                    .pod_by_uid(&p.uid)
                    .and_then(|info| info.owner.as_ref())
                    .map(|o| (o.kind.to_string(), o.name.to_string()));
                (p.namespace.to_string(), p.name.to_string(), owner)
            }
            None => (String::new(), format!("node/{node}"), None),
        };
        SeriesKey {
            namespace,
            pod,
            node: node.to_owned(),
            region,
            workload,
            direction: match series.direction {
                Direction::Egress => "egress".into(),
                Direction::Ingress => "ingress".into(),
            },
            class: series.class.as_str().into(),
            service: series.service.as_deref().unwrap_or_default().to_owned(),
            remote_region: series
                .remote_region
                .as_deref()
                .unwrap_or_default()
                .to_owned(),
            nat_gateway: series.nat_gateway,
        }
    }

    fn direction(&self) -> Option<Direction> {
        match self.direction.as_str() {
            "egress" => Some(Direction::Egress),
            "ingress" => Some(Direction::Ingress),
            _ => None,
        }
    }

    fn class(&self) -> Option<TrafficClass> {
        TrafficClass::from_label(&self.class)
    }
}

/// The identity of one stored workload pair counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PairSeriesKey {
    /// The node of the agent that counted it.
    pub pair_node: String,
    /// The client workload.
    pub client: Workload,
    /// Its zone.
    pub client_zone: String,
    /// The server workload.
    pub server: Workload,
    /// Its zone.
    pub server_zone: String,
    /// `in-zone`, `cross-zone`, `cross-region` or `internet`.
    pub class: String,
}

impl PairSeriesKey {
    /// The key of an agent's exported pair counter on `node`.
    pub fn of(pair: &ExportedPair, node: &str) -> PairSeriesKey {
        let workload = |p: &netcost_core::pairs::Peer| Workload {
            namespace: p.namespace.to_string(),
            kind: p.kind.to_string(),
            name: p.name.to_string(),
        };
        PairSeriesKey {
            pair_node: node.to_owned(),
            client: workload(&pair.key.client),
            client_zone: pair.key.client.zone.to_string(),
            server: workload(&pair.key.server),
            server_zone: pair.key.server.zone.to_string(),
            class: pair.key.class.as_str().to_owned(),
        }
    }
}

/// Any stored series. Untagged, so logs written before pairs existed read as [`SeriesKey`]s.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StoredKey {
    /// A pod's or node's byte counter.
    Series(SeriesKey),
    /// A workload pair counter.
    Pair(PairSeriesKey),
}

impl From<SeriesKey> for StoredKey {
    fn from(key: SeriesKey) -> Self {
        StoredKey::Series(key)
    }
}

impl From<PairSeriesKey> for StoredKey {
    fn from(key: PairSeriesKey) -> Self {
        StoredKey::Pair(key)
    }
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading or writing the log failed.
    #[error("{}: {error}", path.display())]
    Io {
        /// The log file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A line of the log is not valid (other than a torn last line).
    #[error("{}: line {line}: {reason}", path.display())]
    Corrupt {
        /// The log file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Why.
        reason: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum LogLine {
    Series {
        series: u32,
        key: Box<StoredKey>,
    },
    Minute {
        minute: i64,
        points: Vec<(u32, u64)>,
    },
}

/// Minute-resolution counter history. See the module docs.
#[derive(Debug)]
pub struct Store {
    keys: Vec<StoredKey>,
    index: HashMap<StoredKey, u32>,
    /// Per series, `(minute, cumulative value)` in minute order.
    points: Vec<Vec<(i64, u64)>>,
    retention_minutes: i64,
    log: Option<Log>,
    /// The newest minute recorded, the "now" of live rates.
    last_minute: Option<i64>,
    /// The in-process agents' state by node, with when their last cycle ended (Unix ms).
    /// Not persisted: it describes the running process.
    agents: std::collections::BTreeMap<String, (AgentStatus, Option<i64>)>,
    /// The region of each zone and node of the recorded agents' topology, which prices a pair
    /// counter's cross-region bytes. Not persisted: the topology is handed in with every
    /// recorded minute (and a node's region is in its series' keys too).
    regions: Regions,
}

#[derive(Debug, Default)]
struct Regions {
    by_zone: std::collections::BTreeMap<String, String>,
    by_node: std::collections::BTreeMap<String, String>,
}

#[derive(Debug)]
struct Log {
    path: PathBuf,
    writer: BufWriter<File>,
    lines: usize,
}

/// Retention of the demo and single-host mode: 7 days.
pub const DEFAULT_RETENTION_MINUTES: i64 = 7 * 24 * 60;

impl Store {
    /// A store in memory only.
    pub fn in_memory(retention_minutes: i64) -> Store {
        Store {
            keys: Vec::new(),
            index: HashMap::new(),
            points: Vec::new(),
            retention_minutes,
            log: None,
            last_minute: None,
            agents: Default::default(),
            regions: Regions::default(),
        }
    }

    /// A store persisted at `path`, replaying what is there.
    pub fn open(path: &Path, retention_minutes: i64) -> Result<Store, StoreError> {
        let mut store = Store::in_memory(retention_minutes);
        let io = |error| StoreError::Io {
            path: path.to_owned(),
            error,
        };
        let mut lines_read = 0;
        if path.exists() {
            let file = File::open(path).map_err(io)?;
            let lines: Vec<String> = BufReader::new(file)
                .lines()
                .collect::<Result<_, _>>()
                .map_err(io)?;
            let last = lines.len();
            for (n, text) in lines.iter().enumerate() {
                if text.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<LogLine>(text) {
                    Ok(line) => store.apply(line),
                    // A crash while appending leaves a torn last line; the minute it held is lost.
                    Err(_) if n + 1 == last => break,
                    Err(e) => {
                        return Err(StoreError::Corrupt {
                            path: path.to_owned(),
                            line: n + 1,
                            reason: e.to_string(),
                        });
                    }
                }
                lines_read += 1;
            }
        }
        truncate_torn_tail(path).map_err(io)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        store.log = Some(Log {
            path: path.to_owned(),
            writer: BufWriter::new(file),
            lines: lines_read,
        });
        Ok(store)
    }

    fn apply(&mut self, line: LogLine) {
        match line {
            LogLine::Series { series, key } => {
                if series as usize == self.keys.len() {
                    self.index.insert((*key).clone(), series);
                    self.keys.push(*key);
                    self.points.push(Vec::new());
                }
            }
            LogLine::Minute { minute, points } => {
                for (id, value) in points {
                    if let Some(p) = self.points.get_mut(id as usize) {
                        push_point(p, minute, value);
                    }
                }
            }
        }
    }

    /// Records the cumulative values of `series` at `minute` (Unix minutes). Only series whose
    /// value changed since their last point are stored.
    pub fn record<K: Into<StoredKey>>(
        &mut self,
        minute: i64,
        series: impl IntoIterator<Item = (K, u64)>,
    ) -> Result<(), StoreError> {
        let mut lines = Vec::new();
        let mut points = Vec::new();
        for (key, value) in series {
            let key = key.into();
            let id = match self.index.get(&key) {
                Some(id) => *id,
                None => {
                    let id = self.keys.len() as u32;
                    self.index.insert(key.clone(), id);
                    self.keys.push(key.clone());
                    self.points.push(Vec::new());
                    lines.push(LogLine::Series {
                        series: id,
                        key: Box::new(key),
                    });
                    id
                }
            };
            let history = &mut self.points[id as usize];
            if history.last().map(|p| p.1) != Some(value) {
                push_point(history, minute, value);
                points.push((id, value));
            }
        }
        self.expire(minute);
        self.last_minute = self.last_minute.max(Some(minute));
        if !points.is_empty() {
            lines.push(LogLine::Minute { minute, points });
        }
        self.append(&lines)?;
        self.compact_if_large()
    }

    fn append(&mut self, lines: &[LogLine]) -> Result<(), StoreError> {
        let Some(log) = &mut self.log else {
            return Ok(());
        };
        let io = |error| StoreError::Io {
            path: log.path.clone(),
            error,
        };
        for line in lines {
            let text = serde_json::to_string(line).map_err(|e| io(std::io::Error::other(e)))?;
            writeln!(log.writer, "{text}").map_err(io)?;
            log.lines += 1;
        }
        log.writer.flush().map_err(io)
    }

    /// Drops points older than the retention, keeping the last one before the cutoff as the
    /// baseline of a window that starts there.
    fn expire(&mut self, now_minute: i64) {
        let cutoff = now_minute - self.retention_minutes;
        for history in &mut self.points {
            let old = history.partition_point(|p| p.0 < cutoff);
            if old > 1 {
                history.drain(..old - 1);
            }
        }
    }

    /// Points held in memory, over all series.
    pub fn live_points(&self) -> usize {
        self.points.iter().map(Vec::len).sum()
    }

    /// Rewrites the log once it holds more than twice what a fresh one would: one line per
    /// series plus at most one per retained minute.
    fn compact_if_large(&mut self) -> Result<(), StoreError> {
        let fresh = self.keys.len() + self.retention_minutes.max(0) as usize;
        let Some(log) = &self.log else { return Ok(()) };
        if log.lines <= 2 * fresh.max(512) {
            return Ok(());
        }
        let path = log.path.clone();
        let io = |error| StoreError::Io {
            path: path.clone(),
            error,
        };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".tmp.{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let mut lines = 0;
        {
            let mut w = BufWriter::new(File::create(&tmp).map_err(io)?);
            let mut write = |line: &LogLine| -> Result<(), StoreError> {
                let text = serde_json::to_string(line).map_err(|e| io(std::io::Error::other(e)))?;
                writeln!(w, "{text}").map_err(io)?;
                lines += 1;
                Ok(())
            };
            for (id, key) in self.keys.iter().enumerate() {
                write(&LogLine::Series {
                    series: id as u32,
                    key: Box::new(key.clone()),
                })?;
            }
            let mut by_minute: std::collections::BTreeMap<i64, Vec<(u32, u64)>> =
                Default::default();
            for (id, history) in self.points.iter().enumerate() {
                for (minute, value) in history {
                    by_minute
                        .entry(*minute)
                        .or_default()
                        .push((id as u32, *value));
                }
            }
            for (minute, points) in by_minute {
                write(&LogLine::Minute { minute, points })?;
            }
            w.flush().map_err(io)?;
            w.get_ref().sync_all().map_err(io)?;
        }
        fs::rename(&tmp, &path).map_err(io)?;
        let file = OpenOptions::new().append(true).open(&path).map_err(io)?;
        self.log = Some(Log {
            path,
            writer: BufWriter::new(file),
            lines,
        });
        Ok(())
    }

    /// The growth of every series over `(start_minute, end_minute]`, with resets counted like
    /// Prometheus's `increase()` (a drop means the counter restarted; its new value is growth).
    pub fn increase(&self, start_minute: i64, end_minute: i64) -> Vec<(&StoredKey, u64)> {
        let mut out = Vec::new();
        for (id, history) in self.points.iter().enumerate() {
            let first_in = history.partition_point(|p| p.0 <= start_minute);
            let mut previous = if first_in > 0 {
                history[first_in - 1].1
            } else {
                // Born inside the window: every series starts at zero.
                0
            };
            let mut growth: u64 = 0;
            for &(minute, value) in &history[first_in..] {
                if minute > end_minute {
                    break;
                }
                growth = growth.saturating_add(if value >= previous {
                    value - previous
                } else {
                    value
                });
                previous = value;
            }
            if growth > 0 {
                out.push((&self.keys[id], growth));
            }
        }
        out
    }

    /// The usage of a month segment, in the form the cost engine prices.
    pub fn segment_usage(&self, segment: &Segment) -> SegmentUsage {
        let minute = |t: jiff::Timestamp| t.as_second().div_euclid(60);
        let to_usage = |(key, bytes): (&StoredKey, u64)| -> Option<Usage> {
            let StoredKey::Series(key) = key else {
                return None;
            };
            Some(Usage {
                pod: PodIdentity {
                    namespace: key.namespace.clone(),
                    pod: key.pod.clone(),
                    node: Some(key.node.clone()).filter(|n| !n.is_empty()),
                    region: Some(key.region.clone()).filter(|r| !r.is_empty()),
                    workload: key.workload.clone(),
                    labels: Default::default(),
                },
                direction: key.direction()?,
                class: key.class()?,
                service: Some(key.service.clone()).filter(|s| !s.is_empty()),
                remote_region: Some(key.remote_region.clone()).filter(|r| !r.is_empty()),
                remote_has_agent: remote_has_agent(
                    Some(key.service.as_str()).filter(|s| !s.is_empty()),
                ),
                nat_gateway: key.nat_gateway,
                bytes,
            })
        };
        let usages = self
            .increase(minute(segment.start), minute(segment.end))
            .into_iter()
            .filter_map(to_usage)
            .collect();
        let internet_egress_before = self
            .increase(minute(segment.month_start), minute(segment.start))
            .into_iter()
            .filter(|(k, _)| {
                matches!(k, StoredKey::Series(k) if k.direction == "egress" && k.class == "internet")
            })
            .map(|(_, b)| b)
            .sum();
        SegmentUsage {
            internet_egress_before,
            usages,
            ..SegmentUsage::default()
        }
    }
}

impl Store {
    /// Records the counters and pair counters of the agent of `node` at `minute`.
    pub fn record_snapshot(
        &mut self,
        minute: i64,
        snapshot: &Snapshot,
        topology: &Topology,
        node: &str,
    ) -> Result<(), StoreError> {
        let series = snapshot
            .series
            .iter()
            .map(|s| (StoredKey::from(SeriesKey::of(s, topology, node)), s.value));
        let pairs = snapshot
            .pairs
            .iter()
            .map(|p| (StoredKey::from(PairSeriesKey::of(p, node)), p.value));
        for n in topology.nodes() {
            let Some(region) = n.locality.region.as_deref() else {
                continue;
            };
            if let Some(zone) = n.locality.zone.as_deref() {
                self.regions.by_zone.insert(zone.into(), region.into());
            }
            self.regions
                .by_node
                .insert(n.name.to_string(), region.into());
        }
        self.record(minute, series.chain(pairs))
    }

    /// Sets the state of the in-process agent of `status.node`; its last cycle ended at
    /// `last_cycle_unix_ms`.
    pub fn set_agent(&mut self, status: AgentStatus, last_cycle_unix_ms: Option<i64>) {
        self.agents
            .insert(status.node.clone(), (status, last_cycle_unix_ms));
    }

    /// The in-process agents' state, and the busiest pods and nodes over the last
    /// [`RATE_SECONDS`] of recorded minutes, at `now_ms`.
    pub fn live(&self, now_ms: i64) -> LiveStatus {
        let agents = self
            .agents
            .values()
            .map(|(status, at)| AgentStatus {
                last_cycle_age_seconds: at.map(|at| (now_ms - at).max(0) as f64 / 1000.0),
                ..status.clone()
            })
            .collect();
        let mut talkers = TalkerTally::default();
        if let Some(end) = self.last_minute {
            let minutes = RATE_SECONDS / 60;
            for (key, bytes) in self.increase(end - minutes, end) {
                let StoredKey::Series(k) = key else { continue };
                let Some(class) = k.class() else { continue };
                talkers.add(
                    &k.namespace,
                    &k.pod,
                    class,
                    bytes as f64 / RATE_SECONDS as f64,
                );
            }
        }
        LiveStatus {
            agents,
            talkers: talkers.top(),
            rate_seconds: RATE_SECONDS,
        }
    }

    /// The growth of every workload pair counter during `segment`, summed per counting agent's
    /// region, with each end's region where its zone's is known.
    pub fn segment_pairs(&self, segment: &Segment) -> Vec<PairUsage> {
        let minute = |t: jiff::Timestamp| t.as_second().div_euclid(60);
        let mut node_regions: HashMap<&str, &str> = HashMap::new();
        for k in &self.keys {
            if let StoredKey::Series(k) = k
                && !k.region.is_empty()
            {
                node_regions.insert(&k.node, &k.region);
            }
        }
        for (node, region) in &self.regions.by_node {
            node_regions.insert(node, region);
        }
        type PairKey<'a> = (
            &'a Workload,
            &'a str,
            &'a Workload,
            &'a str,
            TrafficClass,
            Option<&'a str>,
        );
        let mut sums: HashMap<PairKey<'_>, u64> = HashMap::new();
        for (key, bytes) in self.increase(minute(segment.start), minute(segment.end)) {
            let StoredKey::Pair(k) = key else { continue };
            let Some(class) = TrafficClass::from_label(&k.class) else {
                continue;
            };
            let counted_in = node_regions.get(k.pair_node.as_str()).copied();
            *sums
                .entry((
                    &k.client,
                    &k.client_zone,
                    &k.server,
                    &k.server_zone,
                    class,
                    counted_in,
                ))
                .or_default() += bytes;
        }
        let region_of_zone = |zone: &str| self.regions.by_zone.get(zone).cloned();
        sums.into_iter()
            .map(
                |((client, cz, server, sz, class, counted_in), bytes)| PairUsage {
                    client: client.clone(),
                    client_zone: cz.to_owned(),
                    server: server.clone(),
                    server_zone: sz.to_owned(),
                    class,
                    bytes,
                    client_region: region_of_zone(cz),
                    server_region: region_of_zone(sz),
                    counted_in_region: counted_in.map(str::to_owned),
                },
            )
            .collect()
    }
}

/// Cuts a partial last line (a crash mid-append) so the next append starts on a line of its own.
fn truncate_torn_tail(path: &Path) -> std::io::Result<()> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(());
    }
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    OpenOptions::new()
        .write(true)
        .open(path)?
        .set_len(keep as u64)
}

fn push_point(history: &mut Vec<(i64, u64)>, minute: i64, value: u64) {
    match history.last_mut() {
        // One point per minute: a later record in the same minute replaces it.
        Some(last) if last.0 == minute => last.1 = value,
        Some(last) if last.0 > minute => {}
        _ => history.push((minute, value)),
    }
}

/// A store shared between the thread that records and the API that queries.
#[derive(Debug, Clone)]
pub struct SharedStore(pub std::sync::Arc<std::sync::Mutex<Store>>);

impl SharedStore {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Store>, BackendError> {
        self.0
            .lock()
            .map_err(|_| BackendError::Store("a writer panicked".into()))
    }
}

impl UsageBackend for SharedStore {
    fn describe(&self) -> String {
        "the embedded store".into()
    }

    fn usage(&self, segment: &Segment) -> Result<SegmentUsage, BackendError> {
        Ok(self.lock()?.segment_usage(segment))
    }

    fn pairs(&self, segment: &Segment) -> Result<Vec<PairUsage>, BackendError> {
        Ok(self.lock()?.segment_pairs(segment))
    }

    fn live(&self) -> Result<LiveStatus, BackendError> {
        Ok(self.lock()?.live(jiff::Timestamp::now().as_millisecond()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pod: &str, class: &str) -> SeriesKey {
        SeriesKey {
            namespace: "shop".into(),
            pod: pod.into(),
            node: "node-a".into(),
            region: "r1".into(),
            workload: None,
            direction: "egress".into(),
            class: class.into(),
            service: String::new(),
            remote_region: String::new(),
            nat_gateway: false,
        }
    }

    fn growth(store: &Store, start: i64, end: i64, pod: &str) -> u64 {
        store
            .increase(start, end)
            .into_iter()
            .filter(|(k, _)| matches!(k, StoredKey::Series(k) if k.pod == pod))
            .map(|(_, b)| b)
            .sum()
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("netcost-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        dir.join("history.log")
    }

    #[test]
    fn growth_over_a_window_is_the_difference_of_cumulative_values() {
        let mut s = Store::in_memory(DEFAULT_RETENTION_MINUTES);
        for (minute, value) in [(100, 0), (101, 500), (102, 900), (103, 1_400)] {
            s.record(minute, [(key("web", "cross-zone"), value)])
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(growth(&s, 100, 103, "web"), 1_400);
        assert_eq!(growth(&s, 101, 102, "web"), 400);
        assert_eq!(growth(&s, 103, 200, "web"), 0);
    }

    #[test]
    fn a_counter_reset_counts_the_new_value_like_increase() {
        let mut s = Store::in_memory(DEFAULT_RETENTION_MINUTES);
        for (minute, value) in [(1, 0), (2, 1_000), (3, 300), (4, 700)] {
            s.record(minute, [(key("web", "internet"), value)])
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(growth(&s, 1, 4, "web"), 1_000 + 300 + 400);
    }

    #[test]
    fn the_store_survives_a_restart_and_a_torn_last_line() {
        let path = temp("restart");
        {
            let mut s =
                Store::open(&path, DEFAULT_RETENTION_MINUTES).unwrap_or_else(|e| panic!("{e}"));
            s.record(10, [(key("web", "cross-zone"), 0)])
                .unwrap_or_else(|e| panic!("{e}"));
            s.record(11, [(key("web", "cross-zone"), 2_500)])
                .unwrap_or_else(|e| panic!("{e}"));
        }
        // A crash in the middle of appending the next minute.
        let mut f = OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = f.write_all(b"{\"minute\": 12, \"points\": [[0, 99");
        drop(f);
        let mut s = Store::open(&path, DEFAULT_RETENTION_MINUTES).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(growth(&s, 9, 12, "web"), 2_500);
        s.record(13, [(key("web", "cross-zone"), 3_000)])
            .unwrap_or_else(|e| panic!("{e}"));
        drop(s);
        let s = Store::open(&path, DEFAULT_RETENTION_MINUTES).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(growth(&s, 9, 13, "web"), 3_000);
    }

    #[test]
    fn a_corrupt_line_in_the_middle_is_refused_with_its_number() {
        let path = temp("corrupt");
        fs::write(
            &path,
            "{\"minute\": 1, \"points\": []}\nnot json\n{\"minute\": 2, \"points\": []}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let err = Store::open(&path, 60).expect_err("refused").to_string();
        assert!(
            err.contains("history.log") && err.contains("line 2"),
            "{err}"
        );
    }

    #[test]
    fn old_points_expire_but_keep_a_baseline() {
        let mut s = Store::in_memory(10);
        for minute in 0..100 {
            s.record(minute, [(key("web", "cross-zone"), minute as u64 * 10)])
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(s.live_points() <= 12, "{} points", s.live_points());
        assert_eq!(growth(&s, 90, 99, "web"), 90);
    }

    #[test]
    fn compaction_keeps_every_live_point() {
        let path = temp("compact");
        let mut s = Store::open(&path, 30).unwrap_or_else(|e| panic!("{e}"));
        for minute in 0..3_000 {
            s.record(minute, [(key("web", "cross-zone"), minute as u64)])
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let before = growth(&s, 2_980, 2_999, "web");
        drop(s);
        let lines = fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .count();
        assert!(lines < 1_200, "log was not compacted: {lines} lines");
        let s = Store::open(&path, 30).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(growth(&s, 2_980, 2_999, "web"), before);
        assert_eq!(before, 19);
    }

    fn pair_key(node: &str, class: &str) -> PairSeriesKey {
        let w = |name: &str| Workload {
            namespace: "shop".into(),
            kind: "Deployment".into(),
            name: name.into(),
        };
        PairSeriesKey {
            pair_node: node.into(),
            client: w("web"),
            client_zone: "a".into(),
            server: w("db"),
            server_zone: "b".into(),
            class: class.into(),
        }
    }

    fn segment(start_minute: i64, end_minute: i64) -> Segment {
        let t = |m: i64| jiff::Timestamp::from_second(m * 60).unwrap_or_else(|e| panic!("{e}"));
        Segment {
            start: t(start_minute),
            end: t(end_minute),
            month_start: t(start_minute),
        }
    }

    #[test]
    fn pair_growth_is_summed_over_agents_and_one_agents_pair_vanishing_is_no_reset() {
        let mut s = Store::in_memory(DEFAULT_RETENTION_MINUTES);
        // Two agents count the same pair; node-b's goes idle and disappears after minute 2.
        let points = [
            (
                1,
                vec![
                    (pair_key("node-a", "cross-zone"), 100),
                    (pair_key("node-b", "cross-zone"), 1_000),
                ],
            ),
            (
                2,
                vec![
                    (pair_key("node-a", "cross-zone"), 300),
                    (pair_key("node-b", "cross-zone"), 1_500),
                ],
            ),
            (3, vec![(pair_key("node-a", "cross-zone"), 700)]),
        ];
        for (minute, series) in points {
            s.record(minute, series).unwrap_or_else(|e| panic!("{e}"));
        }
        let pairs = s.segment_pairs(&segment(0, 3));
        assert_eq!(pairs.len(), 1, "{pairs:?}");
        assert_eq!(pairs[0].bytes, 700 + 1_500);
        assert_eq!(pairs[0].class, TrafficClass::CrossZone);
        // Pod series are not pairs (though node-a's now says its region, which splits the
        // pair by counting agent), and a log written before pairs existed still reads.
        s.record(3, [(key("web", "cross-zone"), 5)])
            .unwrap_or_else(|e| panic!("{e}"));
        let pairs = s.segment_pairs(&segment(0, 3));
        assert_eq!(pairs.iter().map(|p| p.bytes).sum::<u64>(), 700 + 1_500);
        let old_line =
            serde_json::to_string(&serde_json::json!({"series": 0, "key": key("web", "in-zone")}))
                .unwrap_or_else(|e| panic!("{e}"));
        let parsed: LogLine = serde_json::from_str(&old_line).unwrap_or_else(|e| panic!("{e}"));
        let LogLine::Series { key, .. } = parsed else {
            panic!("not a series line: {parsed:?}")
        };
        assert!(matches!(*key, StoredKey::Series(_)));
    }

    /// Three nodes in two regions: node-a in us-east-1a, node-c in us-east-1b, node-b in
    /// us-east-2a.
    fn two_region_topology() -> Topology {
        let node = |name: &str, region: &str, zone: &str, ip: &str| {
            format!(
                "- apiVersion: v1\n  kind: Node\n  metadata:\n    name: {name}\n    labels:\n      \
                 topology.kubernetes.io/region: {region}\n      topology.kubernetes.io/zone: {zone}\n  \
                 status:\n    addresses:\n    - type: InternalIP\n      address: {ip}\n"
            )
        };
        let yaml = format!(
            "apiVersion: v1\nkind: List\nitems:\n{}{}{}",
            node("node-a", "us-east-1", "us-east-1a", "10.0.1.10"),
            node("node-b", "us-east-2", "us-east-2a", "10.1.1.10"),
            node("node-c", "us-east-1", "us-east-1b", "10.0.2.10"),
        );
        netcost_core::inventory::Inventory::from_yaml_str(&yaml, Path::new("inventory.yaml"))
            .and_then(|i| i.topology())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn pair_snapshot(node: &str, bytes: u64) -> Snapshot {
        use netcost_core::pairs::{ExportedPair, PairKey, Peer};
        Snapshot {
            generation: 1,
            node_name: node.into(),
            series: Vec::new(),
            pairs: vec![ExportedPair {
                key: PairKey {
                    client: Peer::new("shop", "Deployment", "web", "us-east-1a"),
                    server: Peer::new("shop", "Deployment", "db", "us-east-2a"),
                    class: TrafficClass::CrossRegion,
                },
                value: bytes,
            }],
            stats: Default::default(),
            node_has_zone: true,
        }
    }

    #[test]
    fn pair_counters_carry_both_ends_regions_and_the_counting_agents() {
        use netcost_cost::edges::cross_zone_edges;
        use netcost_cost::pricing::PriceSheet;
        // AWS's GB: 2^30 bytes.
        const GB: u64 = 1 << 30;
        let topology = two_region_topology();
        let mut s = Store::in_memory(DEFAULT_RETENTION_MINUTES);
        // web (node-a) sends 10 GB to db (node-b), db sends 30 GB back: each agent counts what
        // its own end sent.
        for (minute, (a, b)) in [(1, (0, 0)), (2, (10 * GB, 30 * GB))] {
            s.record_snapshot(minute, &pair_snapshot("node-a", a), &topology, "node-a")
                .unwrap_or_else(|e| panic!("{e}"));
            s.record_snapshot(minute, &pair_snapshot("node-b", b), &topology, "node-b")
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let mut pairs = s.segment_pairs(&segment(0, 2));
        pairs.sort_by_key(|p| p.bytes);
        assert_eq!(pairs.len(), 2, "{pairs:?}");
        for (pair, counted_in) in pairs.iter().zip(["us-east-1", "us-east-2"]) {
            assert_eq!(pair.client_region.as_deref(), Some("us-east-1"));
            assert_eq!(pair.server_region.as_deref(), Some("us-east-2"));
            assert_eq!(pair.counted_in_region.as_deref(), Some(counted_in));
        }
        // AWS: $0.01/GB from N. Virginia to Ohio and back (EC2 on-demand pricing, "Data
        // Transfer to other AWS regions"): 40 GB × $0.01 = $0.40.
        let edges = cross_zone_edges(&pairs, &PriceSheet::aws(), 120);
        assert!((edges[0].cost - 0.40).abs() < 1e-9, "{edges:?}");
        // Source-region prices apply to what each region sent: 10 GB × $0.05 + 30 GB × $0.03.
        let mut by_source = PriceSheet::aws();
        by_source.cross_region.pairs.clear();
        by_source.cross_region.by_source_region =
            [("us-east-1".into(), 0.05), ("us-east-2".into(), 0.03)].into();
        let edges = cross_zone_edges(&pairs, &by_source, 120);
        assert!((edges[0].cost - 1.40).abs() < 1e-9, "{edges:?}");
    }

    #[test]
    fn allocation_and_edges_read_from_the_store_cost_the_same_with_and_without_region_pairs() {
        use netcost_cost::allocate::{Aggregate, allocate};
        use netcost_cost::edges::cross_zone_edges;
        use netcost_cost::pricing::PriceSheet;
        // AWS's GB: 2^30 bytes.
        const GB: u64 = 1 << 30;
        let topology = two_region_topology();
        let series =
            |pod: &str, node: &str, region: &str, direction: &str, class: &str| SeriesKey {
                namespace: "shop".into(),
                pod: format!("{pod}-0"),
                node: node.into(),
                region: region.into(),
                workload: Some(("Deployment".into(), pod.into())),
                direction: direction.into(),
                class: class.into(),
                service: String::new(),
                remote_region: String::new(),
                nat_gateway: false,
            };
        let tagged = |direction: &str, service: &str| SeriesKey {
            service: service.into(),
            ..series("web", "node-a", "us-east-1", direction, "cross-zone")
        };
        let far = |key: SeriesKey, remote_region: &str| SeriesKey {
            remote_region: remote_region.into(),
            ..key
        };
        let w = |name: &str, zone: &str| {
            let workload = Workload {
                namespace: "shop".into(),
                kind: "Deployment".into(),
                name: name.into(),
            };
            (workload, zone.to_owned())
        };
        let external = |service: &str| {
            let workload = Workload {
                namespace: String::new(),
                kind: "External".into(),
                name: service.into(),
            };
            (workload, String::new())
        };
        let pair =
            |node: &str, client: (Workload, String), server: (Workload, String), class: &str| {
                PairSeriesKey {
                    pair_node: node.into(),
                    client: client.0,
                    client_zone: client.1,
                    server: server.0,
                    server_zone: server.1,
                    class: class.into(),
                }
            };
        let web = || w("web", "us-east-1a");
        let (a, b, c) = ("node-a", "node-b", "node-c");
        let pods = [
            // web (us-east-1a) and db (us-east-1b): 7 GB up, 3 GB down.
            (
                series("web", a, "us-east-1", "egress", "cross-zone"),
                7 * GB,
            ),
            (
                series("db", c, "us-east-1", "ingress", "cross-zone"),
                7 * GB,
            ),
            (series("db", c, "us-east-1", "egress", "cross-zone"), 3 * GB),
            (
                series("web", a, "us-east-1", "ingress", "cross-zone"),
                3 * GB,
            ),
            // web and a database outside the cluster in another zone: 8 GB up, 12 GB down.
            (tagged("egress", "orders-db"), 8 * GB),
            (tagged("ingress", "orders-db"), 12 * GB),
            // web and SQS in its region: 4 GB up, 6 GB down.
            (tagged("egress", "aws-sqs"), 4 * GB),
            (tagged("ingress", "aws-sqs"), 6 * GB),
            // web (us-east-1) and api (us-east-2): 10 GB up, 30 GB down. The agents name the
            // far region of cross-region counters.
            (
                far(
                    series("web", a, "us-east-1", "egress", "cross-region"),
                    "us-east-2",
                ),
                10 * GB,
            ),
            (
                far(
                    series("api", b, "us-east-2", "ingress", "cross-region"),
                    "us-east-1",
                ),
                10 * GB,
            ),
            (
                far(
                    series("api", b, "us-east-2", "egress", "cross-region"),
                    "us-east-1",
                ),
                30 * GB,
            ),
            (
                far(
                    series("web", a, "us-east-1", "ingress", "cross-region"),
                    "us-east-2",
                ),
                30 * GB,
            ),
        ];
        let pairs = [
            (pair(a, web(), w("db", "us-east-1b"), "cross-zone"), 7 * GB),
            (pair(c, web(), w("db", "us-east-1b"), "cross-zone"), 3 * GB),
            (pair(a, web(), external("orders-db"), "cross-zone"), 20 * GB),
            (pair(a, web(), external("aws-sqs"), "cross-zone"), 10 * GB),
            (
                pair(a, web(), w("api", "us-east-2a"), "cross-region"),
                10 * GB,
            ),
            (
                pair(b, web(), w("api", "us-east-2a"), "cross-region"),
                30 * GB,
            ),
        ];
        let mut s = Store::in_memory(DEFAULT_RETENTION_MINUTES);
        let empty = |node: &str| Snapshot {
            pairs: Vec::new(),
            node_name: node.into(),
            ..pair_snapshot(node, 0)
        };
        for (minute, grown) in [(1, false), (2, true)] {
            for node in [a, b, c] {
                s.record_snapshot(minute, &empty(node), &topology, node)
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            let at = |bytes: u64| if grown { bytes } else { 0 };
            s.record(minute, pods.iter().map(|(k, v)| (k.clone(), at(*v))))
                .unwrap_or_else(|e| panic!("{e}"));
            s.record(minute, pairs.iter().map(|(k, v)| (k.clone(), at(*v))))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let window = segment(0, 2);
        let cost = |sheet: &PriceSheet| {
            let usage = s.segment_usage(&window);
            let (_, total) = allocate(&[usage], sheet, &Aggregate::Namespace, 120);
            let edges: f64 = cross_zone_edges(&s.segment_pairs(&window), sheet, 120)
                .iter()
                .map(|e| e.cost)
                .sum();
            (total.total_cost, edges)
        };
        // AWS without its us-east-1 <-> us-east-2 pair: web and db 10 GB × $0.02 = $0.20; web
        // and the database 20 GB × $0.02 = $0.40 (its side counted with web's); SQS $0; web
        // and api 40 GB × $0.02 out of US regions = $0.80. Total $1.40, in both views.
        let mut no_pairs = PriceSheet::aws();
        no_pairs.cross_region.pairs.clear();
        let (allocation, edges) = cost(&no_pairs);
        assert!((allocation - 1.40).abs() < 1e-9, "allocation {allocation}");
        assert!((edges - 1.40).abs() < 1e-9, "edges {edges}");
        // With the pair, N. Virginia <-> Ohio is $0.01/GB: 40 GB × $0.01 = $0.40, total $1.00.
        // The edges view knows api's region from its zone, allocation from the counters'
        // remote region.
        let (allocation, edges) = cost(&PriceSheet::aws());
        assert!((allocation - 1.00).abs() < 1e-9, "allocation {allocation}");
        assert!((edges - 1.00).abs() < 1e-9, "edges {edges}");
    }

    #[test]
    fn live_rates_are_the_last_five_recorded_minutes_and_agents_report_their_age() {
        let mut s = Store::in_memory(DEFAULT_RETENTION_MINUTES);
        for (minute, value) in [(10, 0), (11, 30_000), (15, 90_000)] {
            s.record(
                minute,
                [
                    (key("web", "cross-zone"), value),
                    (key("api", "in-zone"), minute as u64),
                ],
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
        s.set_agent(
            AgentStatus {
                node: "node-a".into(),
                instance: String::new(),
                up: true,
                last_cycle_age_seconds: None,
                cycle_ms: 3.0,
                entries: 10,
                cycle_failures: 0,
                malformed_entries: 0,
                events_lost: 0,
                workload_pairs: 1,
            },
            Some(15 * 60_000),
        );
        let live = s.live(15 * 60_000 + 2_500);
        assert_eq!(live.agents[0].last_cycle_age_seconds, Some(2.5));
        // (10, 15]: web grew 90_000 bytes, api 5 bytes, over 300 s.
        assert_eq!(live.talkers[0].pod, "web");
        assert!((live.talkers[0].bytes_per_second - 300.0).abs() < 1e-9);
        assert_eq!(live.talkers[0].by_class.get("cross-zone"), Some(&300.0));
        assert_eq!(live.talkers[1].pod, "api");
    }
}
