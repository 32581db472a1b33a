//! The embedded store as a usage backend: [`netcost_store`] keeps the minute-resolution counter
//! history; this module adds what the cost engine and the live view need on top of it (the
//! agents' state, the regions of zones and nodes) and implements [`UsageBackend`] over it.
//!
//! The store's types are re-exported here, so `netcost_server::store` names everything.
//!
//! What it does not do: keep the log or compute growth (`netcost-store` does), or price bytes.

use std::collections::HashMap;
use std::path::Path;

use netcost_core::class::{Direction, TrafficClass};
use netcost_core::pipeline::Snapshot;
use netcost_core::topology::Topology;
use netcost_cost::allocate::{PodIdentity, SegmentUsage, Usage, remote_has_agent};
use netcost_cost::edges::{PairUsage, Workload};
use netcost_cost::window::Segment;
pub use netcost_store::{
    DEFAULT_RETENTION_MINUTES, PairSeriesKey, SeriesKey, StoreError, StoredKey,
    Workload as StoredWorkload,
};

use crate::backend::{
    AgentStatus, BackendError, LiveStatus, RATE_SECONDS, TalkerTally, UsageBackend,
};

/// The counter history and the in-process agents' state. See the module docs.
#[derive(Debug)]
pub struct Store {
    history: netcost_store::Store,
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

/// The cost engine's workload of a stored pair end.
fn workload(w: &StoredWorkload) -> Workload {
    Workload {
        namespace: w.namespace.clone(),
        kind: w.kind.clone(),
        name: w.name.clone(),
    }
}

impl Store {
    fn over(history: netcost_store::Store) -> Store {
        Store {
            history,
            agents: Default::default(),
            regions: Regions::default(),
        }
    }

    /// A store in memory only.
    pub fn in_memory(retention_minutes: i64) -> Store {
        Store::over(netcost_store::Store::in_memory(retention_minutes))
    }

    /// A store persisted at `path`, replaying what is there.
    pub fn open(path: &Path, retention_minutes: i64) -> Result<Store, StoreError> {
        netcost_store::Store::open(path, retention_minutes).map(Store::over)
    }

    /// Records the cumulative values of `series` at `minute` (Unix minutes); see
    /// [`netcost_store::Store::record`].
    pub fn record<K: Into<StoredKey>>(
        &mut self,
        minute: i64,
        series: impl IntoIterator<Item = (K, u64)>,
    ) -> Result<(), StoreError> {
        self.history.record(minute, series)
    }

    /// The counter history.
    pub fn history(&self) -> &netcost_store::Store {
        &self.history
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
                direction: key.direction,
                class: key.class,
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
            .history
            .increase(minute(segment.start), minute(segment.end))
            .into_iter()
            .filter_map(to_usage)
            .collect();
        let internet_egress_before = self
            .history
            .increase(minute(segment.month_start), minute(segment.start))
            .into_iter()
            .filter(|(k, _)| {
                matches!(k, StoredKey::Series(k)
                    if k.direction == Direction::Egress && k.class == TrafficClass::Internet)
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
        self.history.record(minute, series.chain(pairs))
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
        if let Some(end) = self.history.last_minute() {
            let minutes = RATE_SECONDS / 60;
            for (key, bytes) in self.history.increase(end - minutes, end) {
                let StoredKey::Series(k) = key else { continue };
                talkers.add(
                    &k.namespace,
                    &k.pod,
                    k.class,
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
        for k in self.history.keys() {
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
            &'a StoredWorkload,
            &'a str,
            &'a StoredWorkload,
            &'a str,
            TrafficClass,
            Option<&'a str>,
        );
        let mut sums: HashMap<PairKey<'_>, u64> = HashMap::new();
        for (key, bytes) in self
            .history
            .increase(minute(segment.start), minute(segment.end))
        {
            let StoredKey::Pair(k) = key else { continue };
            let class = k.class;
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
                    client: workload(client),
                    client_zone: cz.to_owned(),
                    server: workload(server),
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

    /// shop/`pod`'s egress of `class` on node-a, in region r1.
    fn key(pod: &str, class: &str) -> SeriesKey {
        let s = str::to_owned;
        SeriesKey {
            pod: s(pod),
            class: class_of(class),
            direction: Direction::Egress,
            region: s("r1"),
            node: s("node-a"),
            namespace: s("shop"),
            workload: None,
            service: String::new(),
            remote_region: String::new(),
            nat_gateway: false,
        }
    }

    fn class_of(text: &str) -> TrafficClass {
        TrafficClass::from_label(text).unwrap_or_else(|| panic!("class {text}"))
    }

    fn pair_key(node: &str, class: &str) -> PairSeriesKey {
        let w = |name: &str| StoredWorkload {
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
            class: class_of(class),
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
        // pair by counting agent).
        s.record(3, [(key("web", "cross-zone"), 5)])
            .unwrap_or_else(|e| panic!("{e}"));
        let pairs = s.segment_pairs(&segment(0, 3));
        assert_eq!(pairs.iter().map(|p| p.bytes).sum::<u64>(), 700 + 1_500);
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
                direction: Direction::from_label(direction)
                    .unwrap_or_else(|| panic!("direction {direction}")),
                class: class_of(class),
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
            let workload = StoredWorkload {
                namespace: "shop".into(),
                kind: "Deployment".into(),
                name: name.into(),
            };
            (workload, zone.to_owned())
        };
        let external = |service: &str| {
            let workload = StoredWorkload {
                namespace: String::new(),
                kind: "External".into(),
                name: service.into(),
            };
            (workload, String::new())
        };
        let pair = |node: &str,
                    client: (StoredWorkload, String),
                    server: (StoredWorkload, String),
                    class: &str| {
            PairSeriesKey {
                pair_node: node.into(),
                client: client.0,
                client_zone: client.1,
                server: server.0,
                server_zone: server.1,
                class: class_of(class),
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
