//! The pipeline driven by hand over a scripted source: every case feeds conntrack entries whose
//! counters the test chose, and checks the exported counters against those figures.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use netcost_core::attribute::Unattributed;
use netcost_core::checkpoint::{CheckpointError, Interim};
use netcost_core::class::{Direction, TrafficClass};
use netcost_core::classify::Classifier;
use netcost_core::config::ClassificationConfig;
use netcost_core::flow::{FlowRecord, FlowSource, ReadStats};
use netcost_core::inventory::Inventory;
use netcost_core::pipeline::{Pipeline, PipelineConfig, Snapshot};
use netcost_core::topology::Topology;

const CLUSTER: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata:
    name: node-a
    labels: {topology.kubernetes.io/zone: zone-a, topology.kubernetes.io/region: region-1}
  spec: {podCIDRs: [10.0.1.0/24]}
  status: {addresses: [{type: InternalIP, address: 192.168.0.1}]}
- apiVersion: v1
  kind: Node
  metadata:
    name: node-b
    labels: {topology.kubernetes.io/zone: zone-b, topology.kubernetes.io/region: region-1}
  spec: {podCIDRs: [10.0.2.0/24]}
  status: {addresses: [{type: InternalIP, address: 192.168.0.2}]}
- apiVersion: v1
  kind: Node
  metadata:
    name: node-c
    labels: {topology.kubernetes.io/zone: zone-c, topology.kubernetes.io/region: region-2}
  spec: {podCIDRs: [10.0.3.0/24]}
  status: {addresses: [{type: InternalIP, address: 192.168.0.3}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: web-a, namespace: shop, uid: uid-web-a}
  spec: {nodeName: node-a, containers: []}
  status: {phase: Running, podIP: 10.0.1.10, podIPs: [{ip: 10.0.1.10}, {ip: "fd00:1::10"}], hostIP: 192.168.0.1}
- apiVersion: v1
  kind: Pod
  metadata: {name: api-a, namespace: shop, uid: uid-api-a}
  spec: {nodeName: node-a, containers: []}
  status: {phase: Running, podIP: 10.0.1.11, podIPs: [{ip: 10.0.1.11}], hostIP: 192.168.0.1}
- apiVersion: v1
  kind: Pod
  metadata: {name: db-b, namespace: shop, uid: uid-db-b}
  spec: {nodeName: node-b, containers: []}
  status: {phase: Running, podIP: 10.0.2.20, podIPs: [{ip: 10.0.2.20}, {ip: "fd00:2::20"}], hostIP: 192.168.0.2}
- apiVersion: v1
  kind: Pod
  metadata: {name: far-c, namespace: batch, uid: uid-far-c}
  spec: {nodeName: node-c, containers: []}
  status: {phase: Running, podIP: 10.0.3.30, podIPs: [{ip: 10.0.3.30}], hostIP: 192.168.0.3}
- apiVersion: v1
  kind: Pod
  metadata: {name: agent-a, namespace: kube-system, uid: uid-agent-a}
  spec: {nodeName: node-a, hostNetwork: true, containers: []}
  status: {phase: Running, podIP: 192.168.0.1, podIPs: [{ip: 192.168.0.1}], hostIP: 192.168.0.1}
- apiVersion: v1
  kind: Service
  metadata: {name: db, namespace: shop}
  spec: {clusterIP: 10.96.0.10, clusterIPs: [10.96.0.10]}
"#;

fn topology(yaml: &str) -> Arc<Topology> {
    let inventory = Inventory::from_yaml_str(yaml, Path::new("test-cluster.yaml"))
        .unwrap_or_else(|e| panic!("test inventory: {e}"));
    Arc::new(
        inventory
            .topology()
            .unwrap_or_else(|e| panic!("test topology: {e}")),
    )
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// A conntrack entry: `client:cport -> to:port`, answered by `reply_from` (differs after DNAT)
/// towards `reply_to` (differs after SNAT).
#[derive(Clone)]
struct Entry {
    id: u32,
    client: &'static str,
    to: &'static str,
    reply_from: &'static str,
    reply_to: &'static str,
    sent: u64,
    received: u64,
}

impl Entry {
    fn record(&self) -> FlowRecord {
        let (client, to) = (ip(self.client), ip(self.to));
        FlowRecord::tcp(
            self.id,
            SocketAddr::new(client, 40000),
            SocketAddr::new(to, 80),
            self.sent,
            self.received,
        )
        .natted(ip(self.reply_from), ip(self.reply_to))
    }
}

fn flow(id: u32, client: &'static str, to: &'static str, sent: u64, received: u64) -> Entry {
    Entry {
        id,
        client,
        to,
        reply_from: to,
        reply_to: client,
        sent,
        received,
    }
}

/// web-a calls db's ClusterIP and kube-proxy's DNAT picks db-b in zone-b: 3_000 bytes of
/// requests, 70_000 of responses.
fn web_calls_db_through_its_cluster_ip() -> Entry {
    Entry {
        id: 1,
        client: "10.0.1.10",
        to: "10.96.0.10",
        reply_from: "10.0.2.20",
        reply_to: "10.0.1.10",
        sent: 3_000,
        received: 70_000,
    }
}

/// Hands out one scripted dump (and the events queued before it) per call.
#[derive(Default)]
struct Script {
    dumps: VecDeque<Vec<FlowRecord>>,
    events: VecDeque<Vec<FlowRecord>>,
}

impl FlowSource for Script {
    type Error = Infallible;
    fn dump(&mut self, sink: &mut dyn FnMut(&FlowRecord)) -> Result<ReadStats, Infallible> {
        let records = self.dumps.pop_front().unwrap_or_default();
        records.iter().for_each(&mut *sink);
        Ok(ReadStats {
            entries: records.len() as u64,
            ..ReadStats::default()
        })
    }
    fn drain_destroyed(
        &mut self,
        sink: &mut dyn FnMut(&FlowRecord),
    ) -> Result<ReadStats, Infallible> {
        let records = self.events.pop_front().unwrap_or_default();
        records.iter().for_each(&mut *sink);
        Ok(ReadStats {
            entries: records.len() as u64,
            ..ReadStats::default()
        })
    }
}

fn pipeline_on(node: &str, config: ClassificationConfig) -> Pipeline {
    Pipeline::new(
        PipelineConfig::new(node),
        topology(CLUSTER),
        Classifier::new(config),
    )
}

/// Runs the priming dump (empty table), then one dump of `entries`, scraping in between so new
/// series hand out their bytes at once.
fn run(node: &str, entries: &[Entry]) -> Pipeline {
    run_with(node, ClassificationConfig::kubecost_default(), entries)
}

/// [`run`] with the classification config `config`.
fn run_with(node: &str, config: ClassificationConfig, entries: &[Entry]) -> Pipeline {
    let mut p = pipeline_on(node, config);
    let mut source = Script::default();
    source.dumps.push_back(vec![]);
    source
        .dumps
        .push_back(entries.iter().map(Entry::record).collect());
    cycle(&mut p, &mut source, 1_000);
    cycle(&mut p, &mut source, 2_000);
    p
}

fn cycle(p: &mut Pipeline, source: &mut Script, now_ms: u64) {
    let generation = p.snapshot().generation;
    p.note_scraped(generation);
    match p.dump_cycle(source, now_ms) {
        Ok(_) => {}
        Err(never) => match never {},
    }
}

fn pod_value(s: &Snapshot, pod: &str, direction: Direction, class: TrafficClass) -> u64 {
    s.series
        .iter()
        .filter(|x| x.pod.as_ref().is_some_and(|p| &*p.name == pod))
        .filter(|x| x.direction == direction && x.class == class && x.service.is_none())
        .map(|x| x.value)
        .sum()
}

fn node_value(s: &Snapshot, direction: Direction, class: TrafficClass) -> u64 {
    s.series
        .iter()
        .filter(|x| x.pod.is_none() && x.direction == direction && x.class == class)
        .map(|x| x.value)
        .sum()
}

fn total_of_pod(s: &Snapshot, pod: &str) -> u64 {
    s.series
        .iter()
        .filter(|x| x.pod.as_ref().is_some_and(|p| &*p.name == pod))
        .map(|x| x.value)
        .sum()
}

use Direction::{Egress, Ingress};
use TrafficClass::{CrossRegion, CrossZone, InZone, Internet};

#[test]
fn dnat_flow_is_classified_by_the_real_backend_zone() {
    // web-a calls the Service's ClusterIP; kube-proxy's DNAT picked db-b in zone-b.
    let p = run("node-a", &[web_calls_db_through_its_cluster_ip()]);
    let s = p.snapshot();
    assert_eq!(pod_value(&s, "web-a", Egress, CrossZone), 3_000);
    assert_eq!(pod_value(&s, "web-a", Ingress, CrossZone), 70_000);
    assert_eq!(total_of_pod(&s, "web-a"), 73_000);
}

#[test]
fn cross_zone_pod_traffic_is_not_in_zone_even_inside_kubecosts_default_10_slash_8() {
    let p = run("node-a", &[flow(1, "10.0.1.10", "10.0.2.20", 1_111, 2_222)]);
    let s = p.snapshot();
    assert_eq!(pod_value(&s, "web-a", Egress, CrossZone), 1_111);
    assert_eq!(pod_value(&s, "web-a", Ingress, CrossZone), 2_222);
    assert_eq!(pod_value(&s, "web-a", Egress, InZone), 0);
}

#[test]
fn a_flow_between_two_pods_of_the_node_counts_for_both() {
    let p = run("node-a", &[flow(1, "10.0.1.10", "10.0.1.11", 500, 9_000)]);
    let s = p.snapshot();
    assert_eq!(pod_value(&s, "web-a", Egress, InZone), 500);
    assert_eq!(pod_value(&s, "web-a", Ingress, InZone), 9_000);
    assert_eq!(pod_value(&s, "api-a", Egress, InZone), 9_000);
    assert_eq!(pod_value(&s, "api-a", Ingress, InZone), 500);
}

#[test]
fn only_the_local_end_of_a_cross_node_flow_is_counted() {
    let on_b = run("node-b", &[flow(1, "10.0.1.10", "10.0.2.20", 1_000, 4_000)]);
    let s = on_b.snapshot();
    assert_eq!(pod_value(&s, "db-b", Ingress, CrossZone), 1_000);
    assert_eq!(pod_value(&s, "db-b", Egress, CrossZone), 4_000);
    assert_eq!(total_of_pod(&s, "web-a"), 0, "web-a is not on node-b");
}

#[test]
fn masqueraded_internet_egress_belongs_to_the_pod() {
    // SNAT: the reply goes back to the node's address, not the pod's.
    let p = run(
        "node-a",
        &[Entry {
            id: 1,
            client: "10.0.1.10",
            to: "203.0.113.5",
            reply_from: "203.0.113.5",
            reply_to: "192.168.0.1",
            sent: 12_345,
            received: 678,
        }],
    );
    let s = p.snapshot();
    assert_eq!(pod_value(&s, "web-a", Egress, Internet), 12_345);
    assert_eq!(pod_value(&s, "web-a", Ingress, Internet), 678);
    assert_eq!(
        node_value(&s, Egress, Internet),
        0,
        "the node only translated the address"
    );
}

#[test]
fn a_nodeport_connection_from_the_internet_is_ingress_of_the_backend_pod() {
    let p = run(
        "node-a",
        &[Entry {
            id: 1,
            client: "198.51.100.7",
            to: "192.168.0.1",
            reply_from: "10.0.1.10",
            reply_to: "198.51.100.7",
            sent: 800,
            received: 50_000,
        }],
    );
    let s = p.snapshot();
    assert_eq!(pod_value(&s, "web-a", Ingress, Internet), 800);
    assert_eq!(pod_value(&s, "web-a", Egress, Internet), 50_000);
    assert_eq!(node_value(&s, Ingress, Internet), 0);
}

#[test]
fn host_network_traffic_is_attributed_to_the_node() {
    // agent-a is a hostNetwork pod: its address is the node's.
    // The far end is a pod on node-c, in region-2: its cross-region series names that region,
    // and (a series born with bytes) hands them out once a scrape has seen it at zero.
    let s = run_settled("node-a", &[flow(1, "192.168.0.1", "10.0.3.30", 2_000, 100)]);
    assert_eq!(node_value(&s, Egress, CrossRegion), 2_000);
    assert_eq!(node_value(&s, Ingress, CrossRegion), 100);
    assert!(
        s.series
            .iter()
            .filter(|x| x.pod.is_none() && x.class == CrossRegion && x.value > 0)
            .all(|x| x.remote_region.as_deref() == Some("region-2")),
        "{:?}",
        s.series
    );
    assert_eq!(total_of_pod(&s, "agent-a"), 0);
}

#[test]
fn ipv6_pod_traffic_is_classified_like_ipv4() {
    let p = run("node-a", &[flow(1, "fd00:1::10", "fd00:2::20", 640, 320)]);
    let s = p.snapshot();
    assert_eq!(pod_value(&s, "web-a", Egress, CrossZone), 640);
    assert_eq!(pod_value(&s, "web-a", Ingress, CrossZone), 320);
}

#[test]
fn forwarded_traffic_with_no_local_end_is_counted_as_transit() {
    let p = run("node-a", &[flow(1, "10.0.2.20", "10.0.3.30", 300, 200)]);
    assert_eq!(p.unattributed_bytes(Unattributed::Transit), 500);
    assert_eq!(p.snapshot().stats.attributed_bytes, 0);
}

#[test]
fn a_flow_that_lives_between_two_dumps_counts_through_its_destroy_event() {
    let mut p = pipeline_on("node-a", ClassificationConfig::kubecost_default());
    let mut source = Script::default();
    source.dumps.extend([vec![], vec![]]);
    // A cycle drains events before and after its dump; the flow's event arrives after the
    // first (priming) cycle.
    source.events.extend([
        vec![],
        vec![],
        vec![flow(5, "10.0.1.10", "10.0.2.20", 1_028, 528).record()],
    ]);
    cycle(&mut p, &mut source, 1_000);
    cycle(&mut p, &mut source, 2_000);
    let s = p.snapshot();
    assert_eq!(pod_value(&s, "web-a", Egress, CrossZone), 1_028);
    assert_eq!(pod_value(&s, "web-a", Ingress, CrossZone), 528);
}

#[test]
fn every_local_pod_has_its_series_at_zero_before_any_traffic() {
    let p = pipeline_on("node-a", ClassificationConfig::kubecost_default());
    let s = p.snapshot();
    for pod in ["web-a", "api-a"] {
        let series: Vec<_> = s
            .series
            .iter()
            .filter(|x| x.pod.as_ref().is_some_and(|p| &*p.name == pod))
            .collect();
        assert_eq!(series.len(), 8, "{pod}: 4 classes x 2 directions");
        assert!(series.iter().all(|x| x.value == 0));
    }
    assert!(
        s.series
            .iter()
            .all(|x| x.pod.as_ref().is_none_or(|p| &*p.name != "db-b"))
    );
}

#[test]
fn a_new_service_series_holds_its_bytes_until_a_scrape_saw_it_at_zero() {
    let config = ClassificationConfig::from_yaml_str(
        "services:\n  services:\n  - service: partner-api\n    ips: [\"203.0.113.0/24\"]\n",
        Path::new("services.yaml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut p = pipeline_on("node-a", config);
    let mut source = Script::default();
    source.dumps.extend([
        vec![],
        vec![flow(1, "10.0.1.10", "203.0.113.9", 4_000, 100).record()],
        vec![flow(1, "10.0.1.10", "203.0.113.9", 4_000, 100).record()],
    ]);
    let service_value = |s: &Snapshot| -> Option<u64> {
        s.series
            .iter()
            .find(|x| x.service.as_deref() == Some("partner-api") && x.direction == Egress)
            .map(|x| x.value)
    };
    cycle(&mut p, &mut source, 1_000);
    // The cycle that first sees the flow creates the series; nobody has scraped it yet.
    assert!(p.dump_cycle(&mut source, 2_000).is_ok());
    let first = p.snapshot();
    assert_eq!(service_value(&first), Some(0), "born at zero");
    // A scrape serves that snapshot; the next cycle releases the bytes.
    p.note_scraped(first.generation);
    assert!(p.dump_cycle(&mut source, 3_000).is_ok());
    assert_eq!(service_value(&p.snapshot()), Some(4_000));
}

#[test]
fn a_gone_pods_series_stay_for_the_grace_period_then_go_and_are_never_reused() {
    let mut p = pipeline_on("node-a", ClassificationConfig::kubecost_default());
    let mut source = Script::default();
    source.dumps.extend([
        vec![],
        vec![flow(1, "10.0.1.10", "10.0.2.20", 700, 70).record()],
    ]);
    cycle(&mut p, &mut source, 1_000);
    cycle(&mut p, &mut source, 2_000);

    // web-a is replaced by a pod of the same name with a new uid.
    let replaced = CLUSTER.replace("uid: uid-web-a", "uid: uid-web-a-2");
    p.set_topology(topology(&replaced), 3_000);
    let uids = |s: &Snapshot| -> Vec<String> {
        let mut u: Vec<String> = s
            .series
            .iter()
            .filter_map(|x| {
                x.pod
                    .as_ref()
                    .filter(|p| &*p.name == "web-a")
                    .map(|p| p.uid.to_string())
            })
            .collect();
        u.dedup();
        u
    };
    let during_grace = p.snapshot();
    assert_eq!(
        uids(&during_grace),
        vec!["uid-web-a".to_string(), "uid-web-a-2".to_string()]
    );
    let old_egress: u64 = during_grace
        .series
        .iter()
        .filter(|x| x.pod.as_ref().is_some_and(|p| &*p.uid == "uid-web-a") && x.direction == Egress)
        .map(|x| x.value)
        .sum();
    assert_eq!(old_egress, 700);

    let grace = PipelineConfig::new("node-a").pod_grace_ms;
    cycle(&mut p, &mut source, 3_000 + grace);
    let after = p.snapshot();
    assert_eq!(uids(&after), vec!["uid-web-a-2".to_string()]);
    assert_eq!(
        total_of_pod(&after, "web-a"),
        0,
        "the new pod starts from zero"
    );
}

#[test]
fn a_restored_pipeline_neither_double_counts_nor_drops_bytes() {
    let long = |sent| flow(1, "10.0.1.10", "10.0.2.20", sent, 0).record();
    let mut first = pipeline_on("node-a", ClassificationConfig::kubecost_default());
    let mut source = Script::default();
    source
        .dumps
        .extend([vec![], vec![long(1_000)], vec![long(5_000)]]);
    cycle(&mut first, &mut source, 1_000);
    cycle(&mut first, &mut source, 2_000);
    // The agent streams its checkpoint; the bytes are those of the in-memory encoding.
    let mut streamed = Vec::new();
    first
        .write_checkpoint(&mut streamed)
        .unwrap_or_else(|e| panic!("write checkpoint: {e}"));
    assert_eq!(streamed, first.checkpoint().encode());
    // The first agent counts on to 5_000 and dies before its next checkpoint.
    cycle(&mut first, &mut source, 3_000);
    assert_eq!(
        pod_value(&first.snapshot(), "web-a", Egress, CrossZone),
        5_000
    );

    let restore = |node: &str| {
        Pipeline::restore_from(
            PipelineConfig::new(node),
            topology(CLUSTER),
            Classifier::new(ClassificationConfig::kubecost_default()),
            (&streamed[..], streamed.len() as u64),
            None,
            4_000,
        )
    };
    assert!(matches!(
        restore("node-b"),
        Err(CheckpointError::OtherNode { found }) if found == "node-a"
    ));
    let mut second = restore("node-a")
        .unwrap_or_else(|e| panic!("restore: {e}"))
        .pipeline;
    let mut source = Script::default();
    source.dumps.push_back(vec![long(9_000)]);
    cycle(&mut second, &mut source, 5_000);
    assert_eq!(
        pod_value(&second.snapshot(), "web-a", Egress, CrossZone),
        9_000
    );
    // The pair series was born in the checkpointed cycle and never scraped: its bytes waited
    // through the restart, and come out once a scrape of the new agent has seen it at zero.
    cycle(&mut second, &mut source, 6_000);
    assert_eq!(
        pair_value(&second.snapshot(), "web-a", "db-b", CrossZone),
        Some(9_000)
    );
}

#[test]
fn the_traffic_log_lists_each_sources_top_destinations_by_bytes() {
    let entries: Vec<Entry> = [
        ("10.0.2.20", 600),
        ("10.0.3.30", 100),
        ("203.0.113.1", 900),
        ("203.0.113.2", 50),
        ("203.0.113.3", 300),
        ("203.0.113.4", 10),
    ]
    .iter()
    .enumerate()
    .map(|(i, (to, sent))| flow(i as u32 + 1, "10.0.1.10", to, *sent, 0))
    .collect();
    let mut p = run("node-a", &entries);
    let log = p.take_traffic_log(5);
    let web = log
        .iter()
        .find(|r| r.source == "shop/web-a")
        .unwrap_or_else(|| panic!("{log:?}"));
    let bytes: Vec<u64> = web.destinations.iter().map(|d| d.2).collect();
    assert_eq!(bytes, vec![900, 600, 300, 100, 50]);
    assert!(
        web.destinations[1].0.starts_with("shop/db-b"),
        "{:?}",
        web.destinations
    );
    assert_eq!(web.destinations[1].1, CrossZone);
    assert!(
        p.take_traffic_log(5).is_empty(),
        "the tally restarts after each log"
    );
}

/// [`run`], then one more scrape and cycle: a pair series is born with its first bytes, which
/// wait until a scrape has seen it at zero.
fn run_settled(node: &str, entries: &[Entry]) -> Snapshot {
    let mut p = run(node, entries);
    let mut source = Script::default();
    cycle(&mut p, &mut source, 3_000);
    p.snapshot()
}

fn pipeline_with(config: PipelineConfig) -> Pipeline {
    Pipeline::new(
        config,
        topology(CLUSTER),
        Classifier::new(ClassificationConfig::kubecost_default()),
    )
}

/// The bytes of pair `client → server` in `class`, by workload name (these pods have no owner,
/// so each is its own workload).
fn pair_value(s: &Snapshot, client: &str, server: &str, class: TrafficClass) -> Option<u64> {
    s.pairs
        .iter()
        .find(|p| {
            &*p.key.client.name == client && &*p.key.server.name == server && p.key.class == class
        })
        .map(|p| p.value)
}

#[test]
fn a_cross_node_pair_counts_each_byte_once_over_both_agents() {
    // web-a calls db through its ClusterIP: 3_000 bytes of requests, 70_000 of responses.
    let call = web_calls_db_through_its_cluster_ip();
    let on_a = run_settled("node-a", std::slice::from_ref(&call));
    let on_b = run_settled("node-b", &[call]);
    // Each agent adds what its own end sent, under the same client → server pair.
    assert_eq!(pair_value(&on_a, "web-a", "db-b", CrossZone), Some(3_000));
    assert_eq!(pair_value(&on_b, "web-a", "db-b", CrossZone), Some(70_000));
    let pair = on_a.pairs.iter().find(|p| &*p.key.server.name == "db-b");
    let pair = pair.unwrap_or_else(|| panic!("{:?}", on_a.pairs));
    assert_eq!(
        (&*pair.key.client.kind, &*pair.key.client.zone),
        ("Pod", "zone-a")
    );
    assert_eq!(&*pair.key.server.zone, "zone-b");
    assert_eq!(on_a.pairs.len(), 1, "{:?}", on_a.pairs);
}

#[test]
fn a_same_node_pair_counts_both_directions_once() {
    let s = run_settled("node-a", &[flow(1, "10.0.1.10", "10.0.1.11", 500, 9_000)]);
    assert_eq!(pair_value(&s, "web-a", "api-a", InZone), Some(9_500));
    assert_eq!(s.pairs.len(), 1, "{:?}", s.pairs);
}

#[test]
fn external_ends_count_both_directions_at_the_only_agent_that_sees_them() {
    let s = run_settled(
        "node-a",
        &[
            // web-a downloads through the node's masquerade.
            Entry {
                id: 1,
                client: "10.0.1.10",
                to: "203.0.113.5",
                reply_from: "203.0.113.5",
                reply_to: "192.168.0.1",
                sent: 12_345,
                received: 678,
            },
            // A NodePort client on the internet reaches web-a.
            Entry {
                id: 2,
                client: "198.51.100.7",
                to: "192.168.0.1",
                reply_from: "10.0.1.10",
                reply_to: "198.51.100.7",
                sent: 800,
                received: 50_000,
            },
        ],
    );
    assert_eq!(pair_value(&s, "web-a", "internet", Internet), Some(13_023));
    assert_eq!(pair_value(&s, "internet", "web-a", Internet), Some(50_800));
    assert!(s.pairs.iter().all(|p| p.key.class == Internet));
}

#[test]
fn node_and_host_network_traffic_pairs_as_the_node() {
    let s = run_settled("node-a", &[flow(1, "192.168.0.1", "10.0.3.30", 2_000, 100)]);
    assert_eq!(pair_value(&s, "node", "far-c", CrossRegion), Some(2_000));
    let on_c = run_settled("node-c", &[flow(1, "192.168.0.1", "10.0.3.30", 2_000, 100)]);
    assert_eq!(pair_value(&on_c, "node", "far-c", CrossRegion), Some(100));
}

#[test]
fn pairs_past_the_cap_go_to_other_and_no_byte_is_lost() {
    let mut config = PipelineConfig::new("node-a");
    config.max_workload_pairs = 2;
    let mut p = pipeline_with(config);
    let mut source = Script::default();
    source.dumps.extend([
        vec![],
        vec![
            flow(1, "10.0.1.10", "10.0.2.20", 100, 0).record(),
            flow(2, "10.0.1.10", "10.0.3.30", 200, 0).record(),
            flow(3, "10.0.1.11", "10.0.2.20", 400, 0).record(),
            flow(4, "10.0.1.11", "10.0.3.30", 800, 0).record(),
        ],
    ]);
    cycle(&mut p, &mut source, 1_000);
    cycle(&mut p, &mut source, 2_000);
    cycle(&mut p, &mut source, 3_000);
    let s = p.snapshot();
    let named = s
        .pairs
        .iter()
        .filter(|x| &*x.key.client.name != netcost_core::pairs::OTHER)
        .count();
    assert_eq!(named, 2, "{:?}", s.pairs);
    let total: u64 = s.pairs.iter().map(|x| x.value).sum();
    assert_eq!(total, 1_500);
    assert!(s.stats.workload_pairs_over_limit >= 1);
    assert!(s.pairs.len() <= 2 + TrafficClass::ALL.len());
}

#[test]
fn a_new_pair_is_seen_at_zero_first_then_idle_pairs_go_away() {
    let mut config = PipelineConfig::new("node-a");
    config.workload_pair_idle_ms = 60_000;
    let mut p = pipeline_with(config);
    let mut source = Script::default();
    let call = |sent| flow(1, "10.0.1.10", "10.0.2.20", sent, 0).record();
    source
        .dumps
        .extend([vec![], vec![call(1_000)], vec![call(1_000)]]);
    cycle(&mut p, &mut source, 1_000);
    assert!(p.dump_cycle(&mut source, 2_000).is_ok());
    let first = p.snapshot();
    assert_eq!(pair_value(&first, "web-a", "db-b", CrossZone), Some(0));
    p.note_scraped(first.generation);
    assert!(p.dump_cycle(&mut source, 3_000).is_ok());
    assert_eq!(
        pair_value(&p.snapshot(), "web-a", "db-b", CrossZone),
        Some(1_000)
    );
    // No more bytes since 2_000: a minute later the pair is gone.
    cycle(&mut p, &mut source, 61_999);
    assert!(pair_value(&p.snapshot(), "web-a", "db-b", CrossZone).is_some());
    cycle(&mut p, &mut source, 62_000);
    assert_eq!(pair_value(&p.snapshot(), "web-a", "db-b", CrossZone), None);
}

#[test]
fn an_interim_checkpoint_keeps_the_bytes_of_flows_that_ended_after_the_checkpoint() {
    let long = |sent| flow(1, "10.0.1.10", "10.0.2.20", sent, 0).record();
    let short = flow(2, "10.0.1.10", "10.0.2.20", 700, 0).record();
    let mut first = pipeline_on("node-a", ClassificationConfig::kubecost_default());
    let mut source = Script::default();
    source.dumps.extend([vec![], vec![long(1_000)]]);
    cycle(&mut first, &mut source, 1_000);
    cycle(&mut first, &mut source, 2_000);
    let mut checkpoint = Vec::new();
    let checksum = first
        .write_checkpoint(&mut checkpoint)
        .unwrap_or_else(|e| panic!("write checkpoint: {e}"));
    // After the checkpoint a short flow ends; its bytes exist only in memory and the interim.
    source.events.push_back(vec![short]);
    assert!(first.drain_events(&mut source, 2_500).is_ok());
    let mut interim = Vec::new();
    first
        .write_interim(&mut interim, checksum)
        .unwrap_or_else(|e| panic!("write interim: {e}"));
    let interim = Interim::decode(&interim).unwrap_or_else(|e| panic!("decode interim: {e}"));
    // The agent dies. Its successor sees the long flow at 5_000.
    let restart = |interim: Option<Interim>| {
        let restored = Pipeline::restore_from(
            PipelineConfig::new("node-a"),
            topology(CLUSTER),
            Classifier::new(ClassificationConfig::kubecost_default()),
            (&checkpoint[..], checkpoint.len() as u64),
            interim,
            3_000,
        )
        .unwrap_or_else(|e| panic!("restore: {e}"));
        let used = restored.used_interim;
        let mut p = restored.pipeline;
        let mut source = Script::default();
        source.dumps.push_back(vec![long(5_000)]);
        cycle(&mut p, &mut source, 4_000);
        (used, pod_value(&p.snapshot(), "web-a", Egress, CrossZone))
    };
    // 1_000 checkpointed + 700 from the interim + 4_000 the dump adds: every byte, once.
    assert_eq!(restart(Some(interim.clone())), (true, 5_700));
    // Without it the short flow's bytes are lost; an interim of another checkpoint is ignored.
    assert_eq!(restart(None), (false, 5_000));
    let stale = Interim {
        checkpoint: checksum ^ 1,
        ..interim
    };
    assert_eq!(restart(Some(stale)), (false, 5_000));
}

/// An internet client calls node-a's NodePort; node-a DNATs it to db-b on node-b and SNATs it
/// to its own address, as kube-proxy does for `externalTrafficPolicy: Cluster`: 800 bytes up,
/// 50,000 down.
fn internet_through_a_nodeport_on_node_a_to_db_b() -> [Entry; 2] {
    [
        // node-a sees both translations.
        Entry {
            id: 1,
            client: "198.51.100.7",
            to: "192.168.0.1",
            reply_from: "10.0.2.20",
            reply_to: "192.168.0.1",
            sent: 800,
            received: 50_000,
        },
        // node-b sees node-a calling db-b.
        flow(1, "192.168.0.1", "10.0.2.20", 800, 50_000),
    ]
}

#[test]
fn a_nodeport_with_snat_books_the_backends_internet_bytes_at_the_nat_node_once() {
    let [at_a, at_b] = internet_through_a_nodeport_on_node_a_to_db_b();
    let p = run("node-a", std::slice::from_ref(&at_a));
    let on_a = run_settled("node-a", &[at_a]);
    let on_b = run_settled("node-b", &[at_b]);
    assert_eq!(p.unattributed_bytes(Unattributed::Transit), 0);
    // The internet leg is db-b's, under its own name, booked by the NAT node's agent.
    assert_eq!(pod_value(&on_a, "db-b", Egress, Internet), 50_000);
    assert_eq!(pod_value(&on_a, "db-b", Ingress, Internet), 800);
    // The hop between the nodes: node-a's side as node traffic, db-b's side at its own node.
    assert_eq!(node_value(&on_a, Egress, CrossZone), 800);
    assert_eq!(node_value(&on_a, Ingress, CrossZone), 50_000);
    assert_eq!(pod_value(&on_b, "db-b", Egress, CrossZone), 50_000);
    assert_eq!(pod_value(&on_b, "db-b", Ingress, CrossZone), 800);
    // Over both agents: db-b's internet bytes once, nothing of them at node-b.
    assert_eq!(pod_value(&on_b, "db-b", Egress, Internet), 0);
    assert_eq!(node_value(&on_a, Egress, Internet), 0);
    // The pairs: the internet leg both ways at node-a (the client has no agent); the hop, each
    // node what its end sent.
    assert_eq!(
        pair_value(&on_a, "internet", "db-b", Internet),
        Some(50_800)
    );
    assert_eq!(pair_value(&on_a, "node", "db-b", CrossZone), Some(800));
    assert_eq!(pair_value(&on_b, "node", "db-b", CrossZone), Some(50_000));
}

#[test]
fn a_nodeport_with_snat_from_a_pod_of_the_cluster_is_node_traffic_on_both_legs() {
    // far-c (node-c, region-2) calls node-a's NodePort; node-a forwards to db-b with SNAT.
    let p = run_settled(
        "node-a",
        &[Entry {
            id: 1,
            client: "10.0.3.30",
            to: "192.168.0.1",
            reply_from: "10.0.2.20",
            reply_to: "192.168.0.1",
            sent: 800,
            received: 50_000,
        }],
    );
    // far-c's agent books far-c's side; node-a books its own sides of both legs, no pod's.
    assert_eq!(node_value(&p, Ingress, CrossRegion), 800);
    assert_eq!(node_value(&p, Egress, CrossRegion), 50_000);
    assert_eq!(node_value(&p, Egress, CrossZone), 800);
    assert_eq!(node_value(&p, Ingress, CrossZone), 50_000);
    assert_eq!(total_of_pod(&p, "db-b"), 0);
    assert_eq!(total_of_pod(&p, "far-c"), 0);
}

#[test]
fn a_pod_that_reaches_itself_through_its_service_is_loopback() {
    // web-a calls a ClusterIP whose DNAT picks web-a itself, masqueraded to the node: hairpin.
    let p = run(
        "node-a",
        &[Entry {
            id: 1,
            client: "10.0.1.10",
            to: "10.96.0.10",
            reply_from: "10.0.1.10",
            reply_to: "192.168.0.1",
            sent: 300,
            received: 700,
        }],
    );
    assert_eq!(p.unattributed_bytes(Unattributed::Loopback), 1_000);
    assert_eq!(total_of_pod(&p.snapshot(), "web-a"), 0);
}

#[test]
fn forwarding_without_translation_here_stays_transit() {
    // SNAT to node-a without DNAT here: not a NodePort of node-a, nothing to book.
    let p = run(
        "node-a",
        &[Entry {
            id: 1,
            client: "198.51.100.7",
            to: "10.0.2.20",
            reply_from: "10.0.2.20",
            reply_to: "192.168.0.1",
            sent: 800,
            received: 50_000,
        }],
    );
    assert_eq!(p.unattributed_bytes(Unattributed::Transit), 50_800);
}

fn nat_value(s: &Snapshot, pod: &str, direction: Direction, class: TrafficClass) -> u64 {
    s.series
        .iter()
        .filter(|x| x.pod.as_ref().is_some_and(|p| &*p.name == pod))
        .filter(|x| x.direction == direction && x.class == class && x.nat_gateway)
        .map(|x| x.value)
        .sum()
}

#[test]
fn only_connections_a_node_behind_a_nat_gateway_opens_to_public_addresses_go_through_it() {
    let config = ClassificationConfig::from_yaml_str(
        "nat-gateway:\n  node-subnets: [192.168.0.1/32]\n  bypass: [52.216.0.0/15]\n",
        Path::new("config.yaml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let entries = [
        // web-a (node-a, behind the gateway) to an internet host, masqueraded by its node.
        Entry {
            id: 1,
            client: "10.0.1.10",
            to: "198.51.100.9",
            reply_from: "198.51.100.9",
            reply_to: "192.168.0.1",
            sent: 1_000,
            received: 9_000,
        },
        // ... to an S3 address on the bypass list (a gateway endpoint's route).
        flow(2, "10.0.1.10", "52.216.1.1", 300, 700),
        // ... to db-b, inside the VPC.
        flow(3, "10.0.1.10", "10.0.2.20", 50, 60),
        // An internet client calling web-a: inbound, not through the gateway.
        flow(4, "198.51.100.7", "10.0.1.10", 20, 80),
    ];
    let s = {
        let mut p = run_with("node-a", config.clone(), &entries);
        let mut source = Script::default();
        cycle(&mut p, &mut source, 3_000);
        p.snapshot()
    };
    assert_eq!(nat_value(&s, "web-a", Egress, Internet), 1_000);
    assert_eq!(nat_value(&s, "web-a", Ingress, Internet), 9_000);
    // Everything else is counted, but not as through the gateway.
    assert_eq!(pod_value(&s, "web-a", Egress, Internet), 1_000 + 300 + 80);
    assert_eq!(
        s.series
            .iter()
            .filter(|x| x.nat_gateway)
            .map(|x| x.value)
            .sum::<u64>(),
        10_000
    );
    // node-b is not behind it: the same connection from db-b does not go through one.
    let from_b = {
        let mut p = run_with(
            "node-b",
            config,
            &[flow(1, "10.0.2.20", "198.51.100.9", 1_000, 9_000)],
        );
        let mut source = Script::default();
        cycle(&mut p, &mut source, 3_000);
        p.snapshot()
    };
    assert_eq!(pod_value(&from_b, "db-b", Egress, Internet), 1_000);
    assert!(from_b.series.iter().all(|x| !x.nat_gateway));
}

/// Socket owners from a script: the uid of each (flow id, node side), and every question asked.
struct ScriptedOwners {
    owners: Vec<(u32, netcost_core::socket_owner::NodeSide, &'static str)>,
    asked: Arc<std::sync::Mutex<Vec<u32>>>,
}

impl netcost_core::socket_owner::SocketOwners for ScriptedOwners {
    fn owner(
        &mut self,
        record: &FlowRecord,
        side: netcost_core::socket_owner::NodeSide,
        _origin: netcost_core::flow::FlowOrigin,
    ) -> Option<Arc<str>> {
        self.asked.lock().expect("lock").push(record.id);
        self.owners
            .iter()
            .find(|(id, s, _)| *id == record.id && *s == side)
            .map(|(_, _, uid)| Arc::from(*uid))
    }
}

#[test]
fn socket_owners_book_node_ends_to_this_nodes_host_network_pods_and_nothing_else() {
    use netcost_core::socket_owner::NodeSide::{Initiator, Responder};
    let mut p = pipeline_on("node-a", ClassificationConfig::kubecost_default());
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    p.set_socket_owners(
        Box::new(ScriptedOwners {
            owners: vec![
                // agent-a's socket: its bytes are its own.
                (1, Initiator, "uid-agent-a"),
                // A uid of a pod with its own network namespace, or of no pod: the node's.
                (2, Initiator, "uid-web-a"),
                (3, Initiator, "uid-nobody"),
                // An inbound flow answered by agent-a.
                (5, Responder, "uid-agent-a"),
            ],
            asked: asked.clone(),
        }),
        0,
    );
    // Its series exist at zero before any traffic.
    let s = p.snapshot();
    assert!(
        s.series
            .iter()
            .any(|x| x.pod.as_ref().is_some_and(|p| &*p.name == "agent-a"))
    );
    let mut source = Script::default();
    source.dumps.push_back(vec![]);
    source.dumps.push_back(
        [
            flow(1, "192.168.0.1", "10.0.3.30", 2_000, 100),
            flow(2, "192.168.0.1", "10.0.3.30", 300, 30),
            flow(3, "192.168.0.1", "10.0.3.30", 40, 4),
            // No owner: the node's own process.
            flow(4, "192.168.0.1", "10.0.3.30", 5, 1),
            flow(5, "10.0.3.30", "192.168.0.1", 600, 6_000),
            // A pod's flow is never asked about.
            flow(6, "10.0.1.10", "10.0.3.30", 7, 7),
        ]
        .iter()
        .map(Entry::record)
        .collect(),
    );
    cycle(&mut p, &mut source, 1_000);
    cycle(&mut p, &mut source, 2_000);
    // Series born with bytes hand them out once a scrape has seen them at zero.
    cycle(&mut p, &mut source, 3_000);
    let s = p.snapshot();
    assert_eq!(pod_value(&s, "agent-a", Egress, CrossRegion), 2_000 + 6_000);
    assert_eq!(pod_value(&s, "agent-a", Ingress, CrossRegion), 100 + 600);
    assert_eq!(node_value(&s, Egress, CrossRegion), 300 + 40 + 5);
    assert_eq!(node_value(&s, Ingress, CrossRegion), 30 + 4 + 1);
    assert_eq!(s.stats.host_network_pod_bytes, 2_100 + 6_600);
    let mut asked = asked.lock().expect("lock").clone();
    asked.sort_unstable();
    assert_eq!(asked, [1, 2, 3, 4, 5]);
    // The pair is agent-a's, as client of far-c and as server of far-c.
    let pairs: Vec<(String, String)> = s
        .pairs
        .iter()
        .filter(|x| x.value > 0)
        .map(|x| (x.key.client.name.to_string(), x.key.server.name.to_string()))
        .collect();
    assert!(
        pairs.contains(&("agent-a".into(), "far-c".into())),
        "{pairs:?}"
    );
    assert!(
        pairs.contains(&("far-c".into(), "agent-a".into())),
        "{pairs:?}"
    );
}
