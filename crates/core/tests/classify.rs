//! The classification decision, step by step, over a small multi-zone, multi-region cluster.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use netcost_core::class::TrafficClass::{self, CrossRegion, CrossZone, InZone, Internet};
use netcost_core::classify::{Classification, Classifier, ProviderRanges};
use netcost_core::config::ClassificationConfig;
use netcost_core::inventory::Inventory;
use netcost_core::topology::{Locality, Topology};

/// node-a and node-b: two zones of us-east-1; node-c: us-west-2 with legacy labels only;
/// node-z: no labels at all.
const CLUSTER: &str = r#"
apiVersion: v1
kind: Node
metadata:
  name: node-a
  labels: {topology.kubernetes.io/region: us-east-1, topology.kubernetes.io/zone: us-east-1a}
status:
  addresses: [{type: InternalIP, address: 192.0.2.2}, {type: InternalIP, address: "fd00::2"}]
---
apiVersion: v1
kind: Node
metadata:
  name: node-b
  labels: {topology.kubernetes.io/region: us-east-1, topology.kubernetes.io/zone: us-east-1b}
status:
  addresses: [{type: InternalIP, address: 10.0.2.3}]
---
apiVersion: v1
kind: Node
metadata:
  name: node-c
  labels:
    failure-domain.beta.kubernetes.io/region: us-west-2
    failure-domain.beta.kubernetes.io/zone: us-west-2a
status:
  addresses: [{type: InternalIP, address: 10.1.0.7}]
---
apiVersion: v1
kind: Node
metadata: {name: node-z}
status:
  addresses: [{type: InternalIP, address: 10.9.0.9}]
---
apiVersion: v1
kind: Pod
metadata: {name: a-1, namespace: shop, uid: uid-a-1}
spec: {nodeName: node-a}
status: {phase: Running, podIPs: [{ip: 10.244.0.11}, {ip: "fd00:10:244::b"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: a-2, namespace: shop, uid: uid-a-2}
spec: {nodeName: node-a}
status: {phase: Running, podIP: 10.244.0.12}
---
apiVersion: v1
kind: Pod
metadata: {name: b-1, namespace: shop, uid: uid-b-1}
spec: {nodeName: node-b}
status: {phase: Running, podIPs: [{ip: 10.244.1.21}, {ip: "fd00:10:244:1::15"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b-agent, namespace: netcost, uid: uid-b-agent}
spec: {nodeName: node-b, hostNetwork: true}
status: {phase: Running, podIP: 10.0.2.30, hostIP: 10.0.2.30}
---
apiVersion: v1
kind: Pod
metadata: {name: c-1, namespace: shop, uid: uid-c-1}
spec: {nodeName: node-c}
status: {phase: Running, podIP: 10.244.2.31}
---
apiVersion: v1
kind: Pod
metadata: {name: z-1, namespace: shop, uid: uid-z-1}
spec: {nodeName: node-z}
status: {phase: Running, podIP: 10.244.9.41}
"#;

fn cluster() -> Topology {
    Inventory::from_yaml_str(CLUSTER, Path::new("cluster.yaml"))
        .and_then(|inv| inv.topology())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn config(yaml: &str) -> ClassificationConfig {
    ClassificationConfig::from_yaml_str(yaml, Path::new("config.yaml"))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn at(region: Option<&str>, zone: Option<&str>) -> Locality {
    Locality {
        region: region.map(Arc::from),
        zone: zone.map(Arc::from),
    }
}

fn node_a() -> Locality {
    at(Some("us-east-1"), Some("us-east-1a"))
}

fn class_of(classifier: &Classifier, local: &Locality, remote: &str) -> TrafficClass {
    classifier.classify(&cluster(), local, ip(remote)).class
}

fn kubecost() -> Classifier {
    Classifier::new(ClassificationConfig::kubecost_default())
}

// Regression: in Kubecost, the default in-zone list (10.0.0.0/8) is checked before the cluster's
// own endpoints, so pod traffic between zones is billed as in-zone (free). Kubecost's docs tell
// users to remove the entry in multi-AZ clusters.
#[test]
fn cross_zone_pod_traffic_is_not_in_zone_even_inside_the_default_10_slash_8() {
    assert_eq!(class_of(&kubecost(), &node_a(), "10.244.1.21"), CrossZone);
}

#[test]
fn cross_zone_node_traffic_is_not_in_zone_even_inside_the_default_10_slash_8() {
    assert_eq!(class_of(&kubecost(), &node_a(), "10.0.2.3"), CrossZone);
}

#[test]
fn pod_traffic_within_the_zone_is_in_zone() {
    assert_eq!(class_of(&kubecost(), &node_a(), "10.244.0.12"), InZone);
}

#[test]
fn pod_traffic_to_another_region_is_cross_region_even_inside_the_default_10_slash_8() {
    assert_eq!(class_of(&kubecost(), &node_a(), "10.244.2.31"), CrossRegion);
}

#[test]
fn cross_region_verdicts_name_the_far_region_and_no_other_verdict_does() {
    let c = kubecost();
    let topo = cluster();
    let remote_region =
        |local: &Locality, remote: &str| c.classify(&topo, local, ip(remote)).remote_region;
    // A pod on node-c (us-west-2, legacy labels) and node-c itself, seen from us-east-1.
    assert_eq!(
        remote_region(&node_a(), "10.244.2.31").as_deref(),
        Some("us-west-2")
    );
    assert_eq!(
        remote_region(&node_a(), "10.1.0.7").as_deref(),
        Some("us-west-2")
    );
    // ... and the other way round.
    let oregon = at(Some("us-west-2"), Some("us-west-2a"));
    assert_eq!(
        remote_region(&oregon, "10.244.0.12").as_deref(),
        Some("us-east-1")
    );
    // Cross-zone, in-zone and internet verdicts carry none: the far region is the local one,
    // or does not price anything.
    assert_eq!(remote_region(&node_a(), "10.0.2.30"), None);
    assert_eq!(remote_region(&node_a(), "10.244.0.12"), None);
    assert_eq!(remote_region(&node_a(), "8.8.8.8"), None);
    // A direct-classification target in another region: its region.
    let direct = Classifier::new(config(
        "destinations:\n  direct-classification:\n    - {region: eu-west-1, ips: [\"172.20.4.0/24\"]}\n",
    ));
    let got = direct.classify(&topo, &node_a(), ip("172.20.4.9"));
    assert_eq!(got.class, CrossRegion);
    assert_eq!(got.remote_region.as_deref(), Some("eu-west-1"));
    // The cross-region list says nothing of where its ranges are.
    let listed = Classifier::new(config(
        "destinations:\n  cross-region: [\"10.20.30.0/24\"]\n",
    ));
    let got = listed.classify(&topo, &node_a(), ip("10.20.30.1"));
    assert_eq!((got.class, got.remote_region), (CrossRegion, None));
}

#[test]
fn legacy_zone_labels_locate_a_node_for_classification() {
    let local = at(Some("us-west-2"), Some("us-west-2a"));
    assert_eq!(class_of(&kubecost(), &local, "10.244.2.31"), InZone);
    assert_eq!(class_of(&kubecost(), &local, "10.1.0.7"), InZone);
}

#[test]
fn host_network_pod_ip_is_classified_by_its_nodes_zone() {
    assert_eq!(class_of(&kubecost(), &node_a(), "10.0.2.30"), CrossZone);
}

#[test]
fn ipv6_pod_traffic_between_zones_is_cross_zone() {
    assert_eq!(
        class_of(&kubecost(), &node_a(), "fd00:10:244:1::15"),
        CrossZone
    );
    assert_eq!(class_of(&kubecost(), &node_a(), "fd00:10:244::b"), InZone);
}

#[test]
fn ipv4_mapped_ipv6_remote_is_classified_as_ipv4() {
    assert_eq!(
        class_of(&kubecost(), &node_a(), "::ffff:10.244.1.21"),
        CrossZone
    );
    assert_eq!(
        class_of(&kubecost(), &node_a(), "::ffff:192.168.1.1"),
        InZone
    );
    assert_eq!(class_of(&kubecost(), &node_a(), "::ffff:8.8.8.8"), Internet);
}

#[test]
fn a_pod_whose_node_has_no_zone_falls_through_to_the_lists() {
    // node-z has no labels: 10.244.9.41 is only "somewhere in 10/8", which the default calls in-zone.
    assert_eq!(class_of(&kubecost(), &node_a(), "10.244.9.41"), InZone);
    assert_eq!(
        class_of(
            &Classifier::new(ClassificationConfig::empty()),
            &node_a(),
            "10.244.9.41"
        ),
        Internet
    );
}

#[test]
fn a_local_node_without_a_zone_skips_the_cluster_endpoint_step() {
    let nowhere = Locality::default();
    assert_eq!(class_of(&kubecost(), &nowhere, "10.244.1.21"), InZone);
    assert_eq!(
        class_of(
            &Classifier::new(ClassificationConfig::empty()),
            &nowhere,
            "10.244.1.21"
        ),
        Internet
    );
}

#[test]
fn zones_decide_when_regions_are_unknown() {
    let zone_only = at(None, Some("us-east-1a"));
    assert_eq!(class_of(&kubecost(), &zone_only, "10.244.0.12"), InZone);
    assert_eq!(class_of(&kubecost(), &zone_only, "10.244.1.21"), CrossZone);
    // With no regions to compare, another zone is cross-zone, never cross-region.
    assert_eq!(class_of(&kubecost(), &zone_only, "10.244.2.31"), CrossZone);
}

#[test]
fn direct_classification_comes_before_known_cluster_endpoints_and_lists() {
    let c = Classifier::new(config(
        r#"
destinations:
  in-zone: ["10.0.0.0/8"]
  internet: ["10.244.0.0/16"]
  direct-classification:
    - region: us-west-2
      ips: ["10.244.1.21"]
"#,
    ));
    // b-1 is a known pod in another zone of the same region, on the internet list and inside the
    // in-zone list, but direct-classification says us-west-2.
    assert_eq!(class_of(&c, &node_a(), "10.244.1.21"), CrossRegion);
}

#[test]
fn direct_classification_compares_region_and_zone_with_the_local_node() {
    let c = Classifier::new(config(
        r#"
destinations:
  direct-classification:
    - {region: us-east-1, zone: us-east-1a, ips: ["172.20.1.0/24"]}
    - {region: us-east-1, zone: us-east-1b, ips: ["172.20.2.0/24"]}
    - {region: us-east-1, ips: ["172.20.3.0/24"]}
    - {region: eu-west-1, zone: eu-west-1a, ips: ["172.20.4.0/24"]}
    - {region: us-east-1, zone: us-east-1a, ips: ["172.20.0.0/16"]}
    - {region: eu-west-1, ips: ["172.20.2.128/25"]}
"#,
    ));
    assert_eq!(class_of(&c, &node_a(), "172.20.1.9"), InZone);
    assert_eq!(class_of(&c, &node_a(), "172.20.2.9"), CrossZone);
    assert_eq!(
        class_of(&c, &node_a(), "172.20.3.9"),
        CrossZone,
        "no zone given"
    );
    assert_eq!(class_of(&c, &node_a(), "172.20.4.9"), CrossRegion);
    assert_eq!(
        class_of(&c, &node_a(), "172.20.9.9"),
        InZone,
        "the /16 catches the rest"
    );
    assert_eq!(
        class_of(&c, &node_a(), "172.20.2.200"),
        CrossRegion,
        "most specific wins"
    );
}

#[test]
fn the_internet_list_comes_after_known_endpoints_but_before_the_in_zone_list() {
    let c = Classifier::new(config(
        r#"
destinations:
  in-zone: ["10.0.0.0/8"]
  internet: ["10.244.0.0/16", "10.50.0.0/16"]
"#,
    ));
    assert_eq!(
        class_of(&c, &node_a(), "10.244.1.21"),
        CrossZone,
        "known pod"
    );
    assert_eq!(
        class_of(&c, &node_a(), "10.50.1.1"),
        Internet,
        "internet list"
    );
    assert_eq!(class_of(&c, &node_a(), "10.60.1.1"), InZone, "in-zone list");
}

#[test]
fn the_most_specific_prefix_wins_across_the_three_lists() {
    let c = Classifier::new(config(
        r#"
destinations:
  in-zone: ["10.0.0.0/8", "10.20.30.40"]
  in-region: ["10.20.0.0/16"]
  cross-region: ["10.20.30.0/24", "2001:db8::/32"]
"#,
    ));
    assert_eq!(class_of(&c, &node_a(), "10.1.1.1"), InZone);
    assert_eq!(class_of(&c, &node_a(), "10.20.1.1"), CrossZone);
    assert_eq!(class_of(&c, &node_a(), "10.20.30.1"), CrossRegion);
    assert_eq!(class_of(&c, &node_a(), "10.20.30.40"), InZone);
    assert_eq!(class_of(&c, &node_a(), "2001:db8::1"), CrossRegion);
}

#[test]
fn an_unknown_public_address_is_internet() {
    assert_eq!(class_of(&kubecost(), &node_a(), "8.8.8.8"), Internet);
    assert_eq!(
        class_of(&kubecost(), &node_a(), "2001:4860:4860::8888"),
        Internet
    );
}

#[test]
fn a_user_service_tags_traffic_whatever_its_class() {
    let c = Classifier::new(config(
        r#"
destinations:
  in-zone: ["10.0.0.0/8"]
services:
  services:
    - service: big-db
      ips: ["10.244.0.0/16", "52.0.0.0/8"]
    - service: small-db
      ips: ["10.244.1.21/32"]
"#,
    ));
    let topo = cluster();
    let got = c.classify(&topo, &node_a(), ip("52.1.2.3"));
    assert_eq!(
        got,
        Classification::new(Internet, Some(Arc::from("big-db")))
    );
    let got = c.classify(&topo, &node_a(), ip("10.244.1.21"));
    assert_eq!(
        got,
        Classification::new(CrossZone, Some(Arc::from("small-db")))
    );
    let got = c.classify(&topo, &node_a(), ip("10.244.0.12"));
    assert_eq!(got, Classification::new(InZone, Some(Arc::from("big-db"))));
    assert_eq!(c.classify(&topo, &node_a(), ip("8.8.8.8")).service, None);
}

/// A stand-in for the cloud-tagging work: everything in 54.0.0.0/8 is an AWS service.
#[derive(Debug)]
struct FakeAws;

impl ProviderRanges for FakeAws {
    fn classify(&self, _local: &Locality, remote: IpAddr) -> Option<Classification> {
        let IpAddr::V4(v4) = remote else { return None };
        (v4.octets()[0] == 54).then(|| Classification::new(CrossRegion, Some(Arc::from("aws-s3"))))
    }
}

#[test]
fn provider_ranges_are_consulted_after_the_lists_and_before_internet() {
    let c = Classifier::new(config(
        r#"
destinations:
  in-region: ["54.1.0.0/16"]
services:
  services: [{service: mine, ips: ["54.2.0.0/16"]}]
"#,
    ))
    .with_provider_ranges(Arc::new(FakeAws));
    let topo = cluster();
    assert_eq!(
        c.classify(&topo, &node_a(), ip("54.1.1.1")).class,
        CrossZone,
        "list first"
    );
    assert_eq!(
        c.classify(&topo, &node_a(), ip("54.9.9.9")),
        Classification::new(CrossRegion, Some(Arc::from("aws-s3")))
    );
    assert_eq!(
        c.classify(&topo, &node_a(), ip("54.2.9.9"))
            .service
            .as_deref(),
        Some("mine"),
        "a user's service name wins over the provider's"
    );
    assert_eq!(c.classify(&topo, &node_a(), ip("8.8.8.8")).class, Internet);
}

#[test]
fn without_provider_ranges_a_cloud_address_is_internet() {
    assert_eq!(class_of(&kubecost(), &node_a(), "54.9.9.9"), Internet);
}
