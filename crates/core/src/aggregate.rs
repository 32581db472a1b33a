//! Aggregation: the exported byte counters, per local endpoint × direction × class × service
//! (and, for cross-region bytes, the far region).
//!
//! Two Prometheus habits shape this module:
//! - `increase()` ignores the first sample of a series. A series born with bytes in it would hide
//!   them. So every local pod gets its eight `service=""` series (4 classes × 2 directions) at zero
//!   as soon as it appears, and a series born later (a new `service` label) holds its first bytes
//!   as *pending* until a scrape has seen it at zero.
//! - A series of a pod that is gone stays for a grace period, so the last bytes are scraped, then
//!   goes away. Series are keyed by pod uid, so a new pod with the same name never inherits them.
//!
//! The same rules hold for the workload pair counters of [`crate::pairs`], with two more:
//! - At most `pair_limit` pairs exist. Bytes of a new pair past the cap go to one pair per class
//!   whose every label is `__other__`, so the series count stays bounded whatever the cluster
//!   does, and no byte is dropped.
//! - A pair with no new bytes for `pair_idle_ms` goes away and frees its place.
//!
//! The aggregator does not know about HTTP: the agent publishes a [`Snapshot`] after each step and
//! reports back, through [`Aggregator::note_scraped`], which snapshot generation a scrape served.
//!
//! [`Snapshot`]: crate::pipeline::Snapshot

use std::collections::HashMap;
use std::sync::Arc;

use crate::class::{Direction, TrafficClass};
use crate::pairs::{ExportedPair, PairKey, Peer, SavedPair};
use crate::topology::PodInfo;

/// Who a series belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// A pod, by uid.
    Pod(Arc<str>),
    /// The node the agent runs on.
    Node,
}

/// The identity of one exported counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// Who the bytes belong to.
    pub owner: Owner,
    /// Sent or received.
    pub direction: Direction,
    /// Billing class of the remote end.
    pub class: TrafficClass,
    /// Cloud or user service of the remote end, if any.
    pub service: Option<Arc<str>>,
    /// The remote end's region, for cross-region bytes whose far region is known (see
    /// [`crate::classify::Classification::remote_region`]).
    pub remote_region: Option<Arc<str>>,
    /// True when the bytes went through a NAT gateway (the config's `nat-gateway` block).
    pub nat_gateway: bool,
}

/// The identifying labels of a pod, kept while its series exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLabels {
    /// Namespace.
    pub namespace: Arc<str>,
    /// Name.
    pub name: Arc<str>,
    /// Uid.
    pub uid: Arc<str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct SeriesValue {
    /// What is exported.
    exported: u64,
    /// Bytes waiting until a scrape has seen the series at zero.
    pending: u64,
    /// The snapshot generation the series first appeared in.
    born_generation: u64,
    /// When the pending bytes started waiting, to release them even if nobody scrapes.
    pending_since_ms: Option<u64>,
}

impl SeriesValue {
    fn born(generation: u64) -> Self {
        SeriesValue {
            born_generation: generation,
            ..SeriesValue::default()
        }
    }

    /// Adds bytes: they wait while no scrape has seen the series at zero.
    fn add(&mut self, bytes: u64, scraped_generation: u64, now_ms: u64) {
        if self.born_generation > scraped_generation && self.exported == 0 {
            self.pending = self.pending.saturating_add(bytes);
            self.pending_since_ms.get_or_insert(now_ms);
        } else {
            self.exported = self.exported.saturating_add(bytes);
        }
    }

    /// Releases pending bytes once a scrape has seen the zero, or they waited `timeout_ms`.
    fn release(&mut self, scraped_generation: u64, timeout_ms: u64, now_ms: u64) {
        let waited_long = self
            .pending_since_ms
            .is_some_and(|since| now_ms.saturating_sub(since) >= timeout_ms);
        if self.pending > 0 && (self.born_generation <= scraped_generation || waited_long) {
            self.exported = self.exported.saturating_add(self.pending);
            self.pending = 0;
            self.pending_since_ms = None;
        }
    }

    fn restored(value: u64, pending: u64, generation: u64, now_ms: u64) -> Self {
        SeriesValue {
            exported: value,
            pending,
            // Restored values are served at once; pending ones wait for a new scrape.
            born_generation: if pending > 0 { generation } else { 0 },
            pending_since_ms: (pending > 0).then_some(now_ms),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct PairValue {
    counter: SeriesValue,
    last_bytes_ms: u64,
}

/// Default cap on workload pairs per agent.
pub const DEFAULT_PAIR_LIMIT: usize = 2000;
/// Default time after which a pair without new bytes goes away: one hour.
pub const DEFAULT_PAIR_IDLE_MS: u64 = 60 * 60 * 1000;

#[derive(Debug, Clone)]
struct PodEntry {
    labels: PodLabels,
    gone_since_ms: Option<u64>,
    /// For a pod on another node whose traffic this node translated: when it last had bytes
    /// here. Such a pod is never among the local pods; its series stay while it has bytes,
    /// then for the grace period.
    served_last_ms: Option<u64>,
}

/// A counter as saved in a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedSeries {
    /// Which counter.
    pub key: SeriesKey,
    /// Its exported value.
    pub value: u64,
    /// Bytes that were still waiting for a scrape to see the series at zero. They wait again
    /// after a restart: if the series was never scraped, its zero must be seen first.
    pub pending: u64,
}

/// One exported counter with its labels resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedSeries {
    /// The pod, or `None` for the node.
    pub pod: Option<PodLabels>,
    /// Sent or received.
    pub direction: Direction,
    /// Billing class.
    pub class: TrafficClass,
    /// Service label value, `None` for `""`.
    pub service: Option<Arc<str>>,
    /// The `remote_region` label value: the far region of cross-region bytes, when known.
    pub remote_region: Option<Arc<str>>,
    /// The `nat_gateway` label value.
    pub nat_gateway: bool,
    /// Counter value in bytes.
    pub value: u64,
}

/// The exported counters. See the module docs.
#[derive(Debug)]
pub struct Aggregator {
    series: HashMap<SeriesKey, SeriesValue>,
    pods: HashMap<Arc<str>, PodEntry>,
    generation: u64,
    scraped_generation: u64,
    grace_ms: u64,
    pending_timeout_ms: u64,
    pairs: HashMap<PairKey, PairValue>,
    pair_limit: usize,
    pair_idle_ms: u64,
    /// Pairs refused a place of their own since the start (their bytes went to `__other__`).
    pairs_over_limit: u64,
    /// The `__other__` peer, built once: pairs past the cap may reach it every cycle.
    other: Peer,
}

impl Aggregator {
    /// An aggregator that drops a gone pod's series `grace_ms` after it disappeared, and releases
    /// pending bytes after `pending_timeout_ms` even if no scrape came.
    pub fn new(grace_ms: u64, pending_timeout_ms: u64) -> Self {
        let mut aggregator = Aggregator {
            series: HashMap::new(),
            pods: HashMap::new(),
            generation: 1,
            scraped_generation: 0,
            grace_ms,
            pending_timeout_ms,
            pairs: HashMap::new(),
            pair_limit: DEFAULT_PAIR_LIMIT,
            pair_idle_ms: DEFAULT_PAIR_IDLE_MS,
            pairs_over_limit: 0,
            other: Peer::other(),
        };
        aggregator.create_zero_series(&Owner::Node);
        aggregator
    }

    /// Sets the cap on workload pairs and how long an idle pair stays.
    pub fn with_pair_limits(mut self, limit: usize, idle_ms: u64) -> Self {
        self.pair_limit = limit;
        self.pair_idle_ms = idle_ms;
        self
    }

    /// The open generation: series created now are born in it. [`Self::advance`] closes it.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Records that a scrape served the snapshot of `generation`.
    pub fn note_scraped(&mut self, generation: u64) {
        self.scraped_generation = self.scraped_generation.max(generation);
    }

    /// Brings the set of local pods up to date: new pods get their zero series, pods no longer
    /// present start their grace period, and pods past it are removed.
    pub fn sync_pods<'a>(
        &mut self,
        local_pods: impl IntoIterator<Item = &'a PodInfo>,
        now_ms: u64,
    ) {
        let mut present: HashMap<Arc<str>, ()> = HashMap::new();
        for pod in local_pods {
            present.insert(pod.uid.clone(), ());
            match self.pods.get_mut(&pod.uid) {
                Some(entry) => entry.gone_since_ms = None,
                None => {
                    self.pods.insert(
                        pod.uid.clone(),
                        PodEntry {
                            labels: PodLabels {
                                namespace: pod.namespace.clone(),
                                name: pod.name.clone(),
                                uid: pod.uid.clone(),
                            },
                            gone_since_ms: None,
                            served_last_ms: None,
                        },
                    );
                    self.create_zero_series(&Owner::Pod(pod.uid.clone()));
                }
            }
        }
        let mut expired = Vec::new();
        for (uid, entry) in &mut self.pods {
            if present.contains_key(uid) {
                continue;
            }
            // A served pod is gone from the moment of its last byte here.
            let since = *entry
                .gone_since_ms
                .get_or_insert(entry.served_last_ms.unwrap_or(now_ms));
            if now_ms.saturating_sub(since) >= self.grace_ms {
                expired.push(uid.clone());
            }
        }
        for uid in expired {
            self.pods.remove(&uid);
            self.series
                .retain(|key, _| !matches!(&key.owner, Owner::Pod(u) if *u == uid));
        }
    }

    /// Restores a pod known from a checkpoint; it counts as gone until [`Self::sync_pods`] sees it.
    pub fn restore_pod(&mut self, labels: PodLabels, now_ms: u64) {
        self.pods.entry(labels.uid.clone()).or_insert(PodEntry {
            labels,
            gone_since_ms: Some(now_ms),
            served_last_ms: None,
        });
    }

    /// Notes bytes of a pod on another node whose traffic this node translated: the pod may
    /// receive bytes, and its series stay for the grace period after the last of them.
    pub fn note_served_pod(&mut self, labels: PodLabels, now_ms: u64) {
        let entry = self.pods.entry(labels.uid.clone()).or_insert(PodEntry {
            labels,
            gone_since_ms: None,
            served_last_ms: None,
        });
        entry.served_last_ms = Some(now_ms);
        entry.gone_since_ms = None;
    }

    /// Restores a counter from a checkpoint.
    pub fn restore_series(&mut self, saved: SavedSeries, now_ms: u64) {
        self.series.insert(
            saved.key,
            SeriesValue::restored(saved.value, saved.pending, self.generation, now_ms),
        );
    }

    /// Restores a pair counter from a checkpoint. Its idle time starts over now.
    pub fn restore_pair(&mut self, saved: SavedPair, now_ms: u64) {
        self.pairs.insert(
            saved.key,
            PairValue {
                counter: SeriesValue::restored(saved.value, saved.pending, self.generation, now_ms),
                last_bytes_ms: now_ms,
            },
        );
    }

    /// True when `owner` may receive bytes: the node, or a pod this aggregator knows.
    pub fn knows(&self, owner: &Owner) -> bool {
        match owner {
            Owner::Node => true,
            Owner::Pod(uid) => self.pods.contains_key(uid),
        }
    }

    /// Adds bytes to a counter, creating it if needed.
    pub fn add(&mut self, key: SeriesKey, bytes: u64, now_ms: u64) {
        let generation = self.generation;
        self.series
            .entry(key)
            .or_insert(SeriesValue::born(generation))
            .add(bytes, self.scraped_generation, now_ms);
    }

    /// Adds bytes to a workload pair, creating it if the cap allows, else adding them to the
    /// class's `__other__` pair.
    pub fn add_pair(&mut self, key: PairKey, bytes: u64, now_ms: u64) {
        let key = if self.pairs.contains_key(&key) || self.pairs.len() < self.pair_limit {
            key
        } else {
            self.pairs_over_limit += 1;
            let other = self.other.clone();
            PairKey {
                client: other.clone(),
                server: other,
                class: key.class,
            }
        };
        let generation = self.generation;
        let value = self.pairs.entry(key).or_insert(PairValue {
            counter: SeriesValue::born(generation),
            last_bytes_ms: now_ms,
        });
        value.counter.add(bytes, self.scraped_generation, now_ms);
        value.last_bytes_ms = now_ms;
    }

    /// Pairs with a place of their own or under `__other__`, and how many times a new pair found
    /// the cap reached.
    pub fn pair_counts(&self) -> (usize, u64) {
        (self.pairs.len(), self.pairs_over_limit)
    }

    /// Moves pending bytes into the exported value of series a scrape has seen at zero (or that
    /// waited longer than the timeout), and starts a new snapshot generation.
    pub fn advance(&mut self, now_ms: u64) {
        let scraped = self.scraped_generation;
        let timeout = self.pending_timeout_ms;
        for value in self.series.values_mut() {
            value.release(scraped, timeout, now_ms);
        }
        let idle = self.pair_idle_ms;
        self.pairs.retain(|_, value| {
            value.counter.release(scraped, timeout, now_ms);
            value.counter.pending > 0 || now_ms.saturating_sub(value.last_bytes_ms) < idle
        });
        self.generation += 1;
    }

    /// The exported pair counters, in a stable order.
    pub fn export_pairs(&self) -> Vec<ExportedPair> {
        let mut out: Vec<ExportedPair> = self
            .pairs
            .iter()
            .map(|(key, value)| ExportedPair {
                key: key.clone(),
                value: value.counter.exported,
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// Every pair counter, for a checkpoint.
    pub fn saved_pairs(&self) -> Vec<SavedPair> {
        self.pairs
            .iter()
            .map(|(key, value)| SavedPair {
                key: key.clone(),
                value: value.counter.exported,
                pending: value.counter.pending,
            })
            .collect()
    }

    /// The exported counters, with labels, in a stable order.
    pub fn export(&self) -> Vec<ExportedSeries> {
        let mut out: Vec<(&SeriesKey, &SeriesValue)> = self.series.iter().collect();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out.into_iter()
            .filter_map(|(key, value)| {
                let pod = match &key.owner {
                    Owner::Node => None,
                    Owner::Pod(uid) => Some(self.pods.get(uid)?.labels.clone()),
                };
                Some(ExportedSeries {
                    pod,
                    direction: key.direction,
                    class: key.class,
                    service: key.service.clone(),
                    remote_region: key.remote_region.clone(),
                    nat_gateway: key.nat_gateway,
                    value: value.exported,
                })
            })
            .collect()
    }

    /// Every counter and known pod, for a checkpoint.
    pub fn saved(&self) -> (Vec<SavedSeries>, Vec<PodLabels>) {
        let series = self
            .series
            .iter()
            .map(|(key, value)| SavedSeries {
                key: key.clone(),
                value: value.exported,
                pending: value.pending,
            })
            .collect();
        let pods = self.pods.values().map(|p| p.labels.clone()).collect();
        (series, pods)
    }

    fn create_zero_series(&mut self, owner: &Owner) {
        for class in TrafficClass::ALL {
            for direction in Direction::ALL {
                self.series
                    .entry(SeriesKey {
                        owner: owner.clone(),
                        direction,
                        class,
                        service: None,
                        remote_region: None,
                        nat_gateway: false,
                    })
                    .or_insert(SeriesValue::born(self.generation));
            }
        }
    }
}
