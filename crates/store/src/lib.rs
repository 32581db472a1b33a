//! The embedded store: minute-resolution history of byte counters for single hosts and the
//! demo, where no Prometheus runs.
//!
//! Like Prometheus it keeps *cumulative* counter values per series, and computes the growth
//! over a window at query time ([`Store::increase`]), treating a drop as a counter reset (the
//! new value counts in full). Unlike Prometheus it stores a point only when a counter moved, at
//! most one per series per minute, so idle series cost nothing.
//!
//! Memory: 16 bytes per stored point. A node whose 200 busiest series move every minute for
//! the default retention of 7 days holds 200 × 10,080 points ≈ 31 MiB; points older than the
//! retention are dropped (keeping one as the baseline of the oldest window).
//!
//! - [`key`]: what a series is. Pair series are keyed by the agent's node too: two agents count
//!   the same pair separately, and one agent's pair may go idle and vanish while the other's
//!   goes on, which a summed series would read as a reset.
//! - `log`: the append-only JSON-lines log, replayed on open (a torn last line from a crash is
//!   cut off) and rewritten once it holds twice the live points;
//! - [`atomic`]: [`atomic_write`], the temporary-file, fsync, rename, fsync-the-directory
//!   replacement the compaction and the agent's state file both use.
//!
//! What it does not do: price anything, or know about agents, segments of a month or the HTTP
//! API; `netcost-server` turns its growth figures into the cost engine's usage.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod atomic;
pub mod key;
mod log;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use atomic::{Durability, atomic_write};
pub use key::{PairSeriesKey, SeriesKey, StoredKey, Workload};

use log::{Log, LogLine};

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

/// Minute-resolution counter history. See the crate docs.
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
        }
    }

    /// A store persisted at `path`, replaying what is there.
    pub fn open(path: &Path, retention_minutes: i64) -> Result<Store, StoreError> {
        let mut store = Store::in_memory(retention_minutes);
        let log = Log::open(path, &mut |line| store.apply(line))?;
        store.log = Some(log);
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
        if let Some(log) = &mut self.log {
            log.append(&lines)?;
        }
        self.compact_if_large()
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

    /// Every series ever recorded, in the order first seen.
    pub fn keys(&self) -> &[StoredKey] {
        &self.keys
    }

    /// The newest minute recorded.
    pub fn last_minute(&self) -> Option<i64> {
        self.last_minute
    }

    /// Rewrites the log once it holds more than twice what a fresh one would: one line per
    /// series plus at most one per retained minute.
    fn compact_if_large(&mut self) -> Result<(), StoreError> {
        let fresh = self.keys.len() + self.retention_minutes.max(0) as usize;
        let Some(log) = &mut self.log else {
            return Ok(());
        };
        if log.lines <= 2 * fresh.max(512) {
            return Ok(());
        }
        let series = self
            .keys
            .iter()
            .enumerate()
            .map(|(id, key)| LogLine::Series {
                series: id as u32,
                key: Box::new(key.clone()),
            });
        let mut by_minute: std::collections::BTreeMap<i64, Vec<(u32, u64)>> = Default::default();
        for (id, history) in self.points.iter().enumerate() {
            for (minute, value) in history {
                by_minute
                    .entry(*minute)
                    .or_default()
                    .push((id as u32, *value));
            }
        }
        let minutes = by_minute
            .into_iter()
            .map(|(minute, points)| LogLine::Minute { minute, points });
        log.rewrite(series.chain(minutes))
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
}

fn push_point(history: &mut Vec<(i64, u64)>, minute: i64, value: u64) {
    match history.last_mut() {
        // One point per minute: a later record in the same minute replaces it.
        Some(last) if last.0 == minute => last.1 = value,
        Some(last) if last.0 > minute => {}
        _ => history.push((minute, value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netcost_core::class::{Direction, TrafficClass};
    use std::fs::{self, OpenOptions};
    use std::io::Write;

    fn key(pod: &str, class: &str) -> SeriesKey {
        SeriesKey {
            namespace: "shop".into(),
            pod: pod.into(),
            node: "node-a".into(),
            region: "r1".into(),
            workload: None,
            direction: Direction::Egress,
            class: TrafficClass::from_label(class).unwrap_or_else(|| panic!("class {class}")),
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
    fn a_class_or_direction_this_version_does_not_know_is_refused_naming_the_record() {
        // A log written by this version, then one key's class and one pair's direction edited
        // to values no version writes.
        let path = temp("unknown-class");
        let mut s = Store::open(&path, 60).unwrap_or_else(|e| panic!("{e}"));
        s.record(5, [(key("web", "cross-zone"), 100)])
            .unwrap_or_else(|e| panic!("{e}"));
        drop(s);
        let written = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(written.contains("\"class\":\"cross-zone\""), "{written}");
        assert!(written.contains("\"direction\":\"egress\""), "{written}");
        for (from, to, reason) in [
            (
                "\"class\":\"cross-zone\"",
                "\"class\":\"cross-galaxy\"",
                "unknown class \"cross-galaxy\"",
            ),
            (
                "\"direction\":\"egress\"",
                "\"direction\":\"sideways\"",
                "unknown direction \"sideways\"",
            ),
        ] {
            fs::write(&path, written.replacen(from, to, 1)).unwrap_or_else(|e| panic!("{e}"));
            let err = Store::open(&path, 60).expect_err("refused").to_string();
            assert!(
                err.contains("unknown-class") && err.contains("line 1") && err.contains(reason),
                "{err}"
            );
        }
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

    #[test]
    fn a_log_written_before_pairs_existed_reads_its_keys_as_pod_series() {
        let old_line =
            serde_json::to_string(&serde_json::json!({"series": 0, "key": key("web", "in-zone")}))
                .unwrap_or_else(|e| panic!("{e}"));
        let parsed: LogLine = serde_json::from_str(&old_line).unwrap_or_else(|e| panic!("{e}"));
        let LogLine::Series { key, .. } = parsed else {
            panic!("not a series line: {parsed:?}")
        };
        assert!(matches!(*key, StoredKey::Series(_)));
    }
}
