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
use netcost_core::topology::Topology;
use netcost_cost::allocate::{PodIdentity, SegmentUsage, Usage};
use netcost_cost::window::Segment;
use serde::{Deserialize, Serialize};

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
        TrafficClass::ALL
            .into_iter()
            .find(|c| c.as_str() == self.class)
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
        key: SeriesKey,
    },
    Minute {
        minute: i64,
        points: Vec<(u32, u64)>,
    },
}

/// Minute-resolution counter history. See the module docs.
#[derive(Debug)]
pub struct Store {
    keys: Vec<SeriesKey>,
    index: HashMap<SeriesKey, u32>,
    /// Per series, `(minute, cumulative value)` in minute order.
    points: Vec<Vec<(i64, u64)>>,
    retention_minutes: i64,
    log: Option<Log>,
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
                    self.index.insert(key.clone(), series);
                    self.keys.push(key);
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
    pub fn record(
        &mut self,
        minute: i64,
        series: impl IntoIterator<Item = (SeriesKey, u64)>,
    ) -> Result<(), StoreError> {
        let mut lines = Vec::new();
        let mut points = Vec::new();
        for (key, value) in series {
            let id = match self.index.get(&key) {
                Some(id) => *id,
                None => {
                    let id = self.keys.len() as u32;
                    self.index.insert(key.clone(), id);
                    self.keys.push(key.clone());
                    self.points.push(Vec::new());
                    lines.push(LogLine::Series { series: id, key });
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
                    key: key.clone(),
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
    pub fn increase(&self, start_minute: i64, end_minute: i64) -> Vec<(&SeriesKey, u64)> {
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
        let to_usage = |(key, bytes): (&SeriesKey, u64)| -> Option<Usage> {
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
            .filter(|(k, _)| k.direction == "egress" && k.class == "internet")
            .map(|(_, b)| b)
            .sum();
        SegmentUsage {
            internet_egress_before,
            usages,
        }
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

impl crate::backend::UsageBackend for SharedStore {
    fn describe(&self) -> String {
        "the embedded store".into()
    }

    fn usage(&self, segment: &Segment) -> Result<SegmentUsage, crate::backend::BackendError> {
        let store = self
            .0
            .lock()
            .map_err(|_| crate::backend::BackendError::Store("a writer panicked".into()))?;
        Ok(store.segment_usage(segment))
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
        }
    }

    fn growth(store: &Store, start: i64, end: i64, pod: &str) -> u64 {
        store
            .increase(start, end)
            .into_iter()
            .filter(|(k, _)| k.pod == pod)
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
}
