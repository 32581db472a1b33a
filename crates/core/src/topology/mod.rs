//! The cluster as the agent needs it: which IP is which pod, node or Service, and where each node
//! sits (zone, region).
//!
//! Built by one code path from Kubernetes `Node`, `Pod` and `Service` objects, whether they came
//! from the API server or from an inventory file: each object is parsed once
//! ([`NodeInfo::from_node`], [`PodEntry::from_pod`], [`ServiceInfo::from_service`]) and the parsed
//! parts are indexed by [`Topology::from_parts`]. [`Topology::from_objects`] does both for a file.
//! A watch cache keeps the parsed parts between rebuilds: a pod costs a few hundred bytes, not the
//! 2 KiB of a `k8s_openapi` `Pod`, and a rebuild re-indexes without re-parsing.
//!
//! Memory is the constraint that shapes the types (the budget is 5,000 nodes and 150,000 pods
//! within 64 MiB, see BENCHMARKS.md): pods and nodes are shared by `Arc` between the cache and every
//! topology, so a topology owns only its indexes; those hold 4-byte slots, never keys that copy a
//! string, and single-stack pods keep their IP inline.
//!
//! The parts, by job: `model` (the types above), `error` ([`TopologyError`] and [`ObjectRef`]),
//! `build` (parsing Kubernetes objects), `intern` ([`Interner`]) and `index` (IP, node name and
//! uid lookups, with the rules on [`Topology`]). Everything public is re-exported here.

mod build;
mod error;
mod index;
mod intern;
mod model;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

pub use error::{ObjectRef, TopologyError};
pub use intern::Interner;
pub use model::{
    Endpoint, Locality, NodeInfo, Owner, PodByUid, PodEntry, PodInfo, PodIps, ServiceInfo,
};

use index::{IpIndex, SlotKind};

/// The cluster at one moment: nodes, pods, Services and an index from IP to endpoint.
///
/// Immutable once built; a change in the cluster builds a new one (share it with `Arc`).
///
/// Rules the index follows:
/// - IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) are looked up as IPv4, both when indexing
///   and when looking up, because dual-stack sockets report IPv4 peers that way.
/// - Pods in phase `Succeeded` or `Failed` keep no IP: their IP may already belong to a new pod.
/// - When two live pods claim the same IP, the one with the newest `metadata.creationTimestamp`
///   wins (ties go to the one listed later). A pod IP reused by a new pod must never be billed to
///   the old one, and a watch cache can briefly hold both.
/// - Node addresses win over pod IPs: only a hostNetwork pod shares a node's IP, and its traffic
///   is the node's.
/// - A hostNetwork pod's IPs (and its `status.hostIP`) point at its node.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    /// Shared with the watch cache that built them, so a rebuild copies pointers, not nodes.
    nodes: Vec<Arc<NodeInfo>>,
    /// Shared with the watch cache that built them, so a rebuild copies pointers, not pods.
    pods: Vec<Arc<PodEntry>>,
    services: Vec<ServiceInfo>,
    node_by_name: HashMap<Arc<str>, u32>,
    /// Keyed by the uid inside the shared entry: no second copy of 150,000 uids.
    pod_by_uid: HashSet<PodByUid>,
    by_ip: IpIndex,
}

impl Topology {
    /// What `ip` is in this cluster, if anything. IPv4-mapped IPv6 is looked up as IPv4.
    pub fn lookup(&self, ip: IpAddr) -> Option<Endpoint<'_>> {
        let slot = self.by_ip.get(ip.to_canonical())?;
        Some(match slot.kind() {
            SlotKind::Pod => Endpoint::Pod(&self.pods.get(slot.index())?.info),
            SlotKind::Node => Endpoint::Node(self.nodes.get(slot.index())?),
            SlotKind::Service => Endpoint::ServiceIp(self.services.get(slot.index())?),
        })
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        let id = *self.node_by_name.get(name)?;
        self.nodes.get(id as usize).map(|node| &**node)
    }

    /// Every node, in the order given.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes.iter().map(|node| &**node)
    }

    /// Every pod, in the order given, including finished and hostNetwork pods.
    pub fn pods(&self) -> impl Iterator<Item = &PodInfo> {
        self.pods.iter().map(|entry| &entry.info)
    }

    /// Every Service, in the order given.
    pub fn services(&self) -> impl Iterator<Item = &ServiceInfo> {
        self.services.iter()
    }

    /// The pods with their own network namespace scheduled on `node` (`spec.nodeName`), leaving
    /// out finished pods (phase `Succeeded` or `Failed`): those are the pods an agent on `node`
    /// attributes traffic to. hostNetwork pods are left out because their traffic is the node's.
    pub fn pods_on_node<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a PodInfo> + 'a {
        self.pods
            .iter()
            .filter(move |entry| {
                entry.live
                    && !entry.info.host_network
                    && entry.info.node_name.as_deref() == Some(node)
            })
            .map(|entry| &entry.info)
    }

    /// The hostNetwork pods scheduled on `node`, leaving out finished pods: the pods whose
    /// bytes an agent on `node` can tell from the node's by their sockets.
    pub fn host_network_pods_on_node<'a>(
        &'a self,
        node: &'a str,
    ) -> impl Iterator<Item = &'a PodInfo> + 'a {
        self.pods
            .iter()
            .filter(move |entry| {
                entry.live
                    && entry.info.host_network
                    && entry.info.node_name.as_deref() == Some(node)
            })
            .map(|entry| &entry.info)
    }

    /// The pod with `metadata.uid == uid`, finished or not.
    pub fn pod_by_uid(&self, uid: &str) -> Option<&PodInfo> {
        self.pod_by_uid.get(uid).map(|entry| &entry.0.info)
    }

    /// Where `ip` sits: for a pod, the locality of its node; for a node address, the node's.
    /// `None` for Service IPs, unknown IPs and pods whose node is unknown.
    pub fn locality_of(&self, ip: IpAddr) -> Option<&Locality> {
        match self.lookup(ip)? {
            Endpoint::Pod(pod) => Some(&self.node(pod.node_name.as_deref()?)?.locality),
            Endpoint::Node(node) => Some(&node.locality),
            Endpoint::ServiceIp(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::index::{SLOT_INDEX, Slot};
    use super::*;
    use k8s_openapi::api::core::v1::{Node, Pod, Service};
    use serde_json::{Value, json};

    fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> T {
        serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"))
    }

    fn node(name: &str, labels: Value, addresses: &[&str]) -> Node {
        let addresses: Vec<Value> = addresses
            .iter()
            .map(|a| json!({"type": "InternalIP", "address": a}))
            .collect();
        from_json(json!({
            "metadata": {"name": name, "labels": labels},
            "status": {"addresses": addresses},
        }))
    }

    fn pod(name: &str, uid: &str, node: &str, ips: &[&str]) -> Value {
        let ips: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip})).collect();
        json!({
            "metadata": {"name": name, "namespace": "default", "uid": uid},
            "spec": {"nodeName": node},
            "status": {"phase": "Running", "podIPs": ips},
        })
    }

    fn with(mut value: Value, pointer: &str, field: &str, v: Value) -> Value {
        if let Some(Value::Object(map)) = value.pointer_mut(pointer) {
            map.insert(field.to_owned(), v);
        }
        value
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn build(nodes: &[Node], pods: Vec<Value>) -> Topology {
        let pods: Vec<Pod> = pods.into_iter().map(from_json).collect();
        Topology::from_objects(nodes, &pods, &[]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn pod_name(topo: &Topology, at: &str) -> Option<String> {
        match topo.lookup(ip(at)) {
            Some(Endpoint::Pod(p)) => Some(p.name.to_string()),
            _ => None,
        }
    }

    fn zone_a() -> Value {
        json!({"topology.kubernetes.io/zone": "z-a", "topology.kubernetes.io/region": "r"})
    }

    #[test]
    fn host_network_pod_ip_resolves_to_its_node() {
        let n = node("node-a", zone_a(), &["192.0.2.2"]);
        let agent = with(
            pod("agent", "u1", "node-a", &["192.0.2.9"]),
            "/spec",
            "hostNetwork",
            json!(true),
        );
        let topo = build(&[n], vec![agent]);
        assert!(
            matches!(topo.lookup(ip("192.0.2.9")), Some(Endpoint::Node(n)) if &*n.name == "node-a")
        );
        assert_eq!(topo.pods_on_node("node-a").count(), 0);
        assert!(
            topo.pod_by_uid("u1")
                .is_some_and(|p| p.host_network && p.ips.is_empty())
        );
        let host: Vec<&str> = topo
            .host_network_pods_on_node("node-a")
            .map(|p| &*p.uid)
            .collect();
        assert_eq!(host, ["u1"]);
        assert_eq!(topo.host_network_pods_on_node("node-b").count(), 0);
    }

    #[test]
    fn a_reused_pod_ip_belongs_to_the_newest_pod_whatever_the_order() {
        let old = with(
            pod("old", "u-old", "node-a", &["10.244.0.5"]),
            "/metadata",
            "creationTimestamp",
            json!("2025-01-01T00:00:00Z"),
        );
        let new = with(
            pod("new", "u-new", "node-a", &["10.244.0.5"]),
            "/metadata",
            "creationTimestamp",
            json!("2025-01-02T00:00:00Z"),
        );
        let n = node("node-a", zone_a(), &[]);
        let topo = build(std::slice::from_ref(&n), vec![old.clone(), new.clone()]);
        assert_eq!(pod_name(&topo, "10.244.0.5").as_deref(), Some("new"));
        let topo = build(&[n], vec![new, old]);
        assert_eq!(pod_name(&topo, "10.244.0.5").as_deref(), Some("new"));
    }

    #[test]
    fn finished_pods_keep_no_ip_and_are_not_on_their_node() {
        let done = with(
            pod("done", "u-done", "node-a", &["10.244.0.6"]),
            "/status",
            "phase",
            json!("Succeeded"),
        );
        let topo = build(&[node("node-a", zone_a(), &[])], vec![done]);
        assert_eq!(topo.lookup(ip("10.244.0.6")), None);
        assert_eq!(topo.pods_on_node("node-a").count(), 0);
        assert!(topo.pod_by_uid("u-done").is_some());
    }

    #[test]
    fn ipv4_mapped_ipv6_is_looked_up_as_ipv4() {
        let topo = build(
            &[node("node-a", zone_a(), &["192.0.2.2"])],
            vec![pod("web", "u1", "node-a", &["10.244.0.7"])],
        );
        assert_eq!(pod_name(&topo, "::ffff:10.244.0.7").as_deref(), Some("web"));
        assert!(matches!(
            topo.lookup(ip("::ffff:192.0.2.2")),
            Some(Endpoint::Node(_))
        ));
    }

    #[test]
    fn ipv6_pod_ips_are_indexed_beside_ipv4_ones() {
        let topo = build(
            &[node("node-a", zone_a(), &["fd00::2"])],
            vec![pod(
                "web",
                "u1",
                "node-a",
                &["10.244.0.7", "fd00:10:244::7"],
            )],
        );
        assert_eq!(pod_name(&topo, "fd00:10:244::7").as_deref(), Some("web"));
        assert_eq!(pod_name(&topo, "10.244.0.7").as_deref(), Some("web"));
        assert!(matches!(
            topo.lookup(ip("fd00::2")),
            Some(Endpoint::Node(_))
        ));
        let zone = topo
            .locality_of(ip("fd00:10:244::7"))
            .and_then(|l| l.zone.as_deref());
        assert_eq!(zone, Some("z-a"));
    }

    #[test]
    fn legacy_zone_labels_are_read_and_current_ones_win() {
        let legacy = node(
            "old",
            json!({"failure-domain.beta.kubernetes.io/zone": "lz", "failure-domain.beta.kubernetes.io/region": "lr"}),
            &[],
        );
        let both = node(
            "both",
            json!({"failure-domain.beta.kubernetes.io/zone": "lz", "topology.kubernetes.io/zone": "z"}),
            &[],
        );
        let topo = build(&[legacy, both], vec![]);
        let old = topo.node("old").map(|n| n.locality.clone());
        assert_eq!(
            old,
            Some(Locality {
                zone: Some(Arc::from("lz")),
                region: Some(Arc::from("lr"))
            })
        );
        assert_eq!(
            topo.node("both").and_then(|n| n.locality.zone.as_deref()),
            Some("z")
        );
    }

    #[test]
    fn pod_cidrs_fall_back_to_the_single_pod_cidr() {
        let n: Node =
            from_json(json!({"metadata": {"name": "n"}, "spec": {"podCIDR": "10.244.3.0/24"}}));
        let topo = build(&[n], vec![]);
        assert_eq!(
            topo.node("n").map(|n| n.pod_cidrs.clone()),
            Some(vec![
                "10.244.3.0/24"
                    .parse::<ipnet::IpNet>()
                    .unwrap_or_else(|e| panic!("{e}"))
            ])
        );
    }

    #[test]
    fn service_cluster_ips_leave_out_headless_markers() {
        let services: Vec<Service> = vec![
            from_json(
                json!({"metadata": {"name": "web", "namespace": "shop"}, "spec": {"clusterIPs": ["10.96.0.10", "fd00:96::a"]}}),
            ),
            from_json(
                json!({"metadata": {"name": "db", "namespace": "shop"}, "spec": {"clusterIP": "None"}}),
            ),
        ];
        let topo = Topology::from_objects(&[], &[], &services).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(topo.lookup(ip("fd00:96::a")), Some(Endpoint::ServiceIp(s)) if &*s.name == "web")
        );
        assert!(
            topo.services()
                .any(|s| &*s.name == "db" && s.cluster_ips.is_empty())
        );
        assert_eq!(topo.locality_of(ip("10.96.0.10")), None);
    }

    #[test]
    fn a_replica_set_owner_becomes_its_deployment_only_when_the_hash_label_matches() {
        let owned = |hash: &str| {
            let p = pod("web-abc12-xyz", "u", "n", &[]);
            let p = with(p, "/metadata", "labels", json!({"pod-template-hash": hash}));
            with(
                p,
                "/metadata",
                "ownerReferences",
                json!([
                    {"apiVersion": "v1", "kind": "Node", "name": "n", "uid": "x"},
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc12", "uid": "y", "controller": true},
                ]),
            )
        };
        let owner_of = |p: Value| {
            let topo = build(&[], vec![p]);
            topo.pods()
                .next()
                .and_then(|p| p.owner.clone())
                .map(|o| (o.kind.to_string(), o.name.to_string()))
        };
        assert_eq!(
            owner_of(owned("abc12")),
            Some(("Deployment".into(), "web".into()))
        );
        assert_eq!(
            owner_of(owned("zzz99")),
            Some(("ReplicaSet".into(), "web-abc12".into()))
        );
    }

    #[test]
    fn an_invalid_pod_ip_names_the_pod_and_the_field() {
        let bad: Pod = from_json(pod("web-1", "u1", "n", &["10.0.0.1", "10.0.0.x"]));
        let err = Topology::from_objects(&[], &[bad], &[])
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(r#"Pod default/web-1: status.podIPs[1].ip: "10.0.0.x" is not an IP address"#)
        );
    }

    #[test]
    fn pod_ips_read_the_same_inline_or_allocated() {
        for ips in [
            vec![],
            vec![ip("10.0.0.1")],
            vec![ip("10.0.0.1"), ip("fd00::1")],
        ] {
            assert_eq!(&*PodIps::from(ips.clone()), ips.as_slice());
        }
    }

    #[test]
    fn slots_keep_their_kind_and_position() {
        for (kind, index) in [(0, 0), (1, 7), (2, SLOT_INDEX)] {
            let make = [SlotKind::Pod, SlotKind::Node, SlotKind::Service];
            let slot = Slot::new(make.into_iter().nth(kind).unwrap_or(SlotKind::Pod), index);
            let back = match slot.kind() {
                SlotKind::Pod => 0,
                SlotKind::Node => 1,
                SlotKind::Service => 2,
            };
            assert_eq!((back, slot.index()), (kind, index as usize));
        }
    }

    #[test]
    fn a_pod_uid_used_twice_is_an_error() {
        let a: Pod = from_json(pod("a", "same", "n", &[]));
        let b: Pod = from_json(pod("b", "same", "n", &[]));
        let err = Topology::from_objects(&[], &[a, b], &[])
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(r#"Pod default/b: metadata.uid: "same" is already used by Pod default/a"#)
        );
    }
}
