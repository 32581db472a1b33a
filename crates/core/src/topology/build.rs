//! Building from Kubernetes objects: each `Node`, `Pod` and `Service` parsed once into the
//! model, whether it came from the API server or from an inventory file.

use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::Topology;
use super::error::{ObjectRef, TopologyError};
use super::intern::Interner;
use super::model::{Locality, NO_TIMESTAMP, NodeInfo, Owner, PodEntry, PodInfo, ServiceInfo};

/// Zone labels, most current first. The legacy label is still set by older clusters and some
/// managed offerings; a node with both uses the current one.
const ZONE_LABELS: [&str; 2] = [
    "topology.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/zone",
];
/// Region labels, most current first.
const REGION_LABELS: [&str; 2] = [
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/region",
];

impl NodeInfo {
    /// Parses the fields the topology reads from a `Node`.
    pub fn from_node(node: &Node, interner: &mut Interner) -> Result<NodeInfo, TopologyError> {
        node_info(node, 0, interner)
    }
}

impl ServiceInfo {
    /// Parses the fields the topology reads from a `Service`.
    pub fn from_service(
        service: &Service,
        interner: &mut Interner,
    ) -> Result<ServiceInfo, TopologyError> {
        service_info(service, 0, interner)
    }
}

impl PodEntry {
    /// Parses the fields the topology reads (docs/architecture.md lists them). Strings many pods share
    /// (namespace, node name, owner) come from `interner`.
    pub fn from_pod(pod: &Pod, interner: &mut Interner) -> Result<PodEntry, TopologyError> {
        pod_entry(pod, 0, interner)
    }
}

impl Topology {
    /// Builds the topology from Kubernetes objects, as listed by the API or read from a file.
    ///
    /// Fails on the first object with an invalid IP or CIDR, a missing name or uid, or a name or
    /// uid used twice; the error names the object and the field.
    pub fn from_objects(
        nodes: &[Node],
        pods: &[Pod],
        services: &[Service],
    ) -> Result<Topology, TopologyError> {
        let mut interner = Interner::default();
        let nodes = nodes
            .iter()
            .enumerate()
            .map(|(index, node)| node_info(node, index, &mut interner).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let pods = pods
            .iter()
            .enumerate()
            .map(|(index, pod)| pod_entry(pod, index, &mut interner).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let services = services
            .iter()
            .enumerate()
            .map(|(index, service)| service_info(service, index, &mut interner))
            .collect::<Result<Vec<_>, _>>()?;
        Topology::from_parts(nodes, pods, services)
    }
}

/// Boxed because errors carry it, and a small `Err` keeps every `Result` of the builder small.
fn object_ref(
    kind: &'static str,
    meta: &ObjectMeta,
    index: usize,
    namespaced: bool,
) -> Box<ObjectRef> {
    Box::new(ObjectRef {
        kind,
        namespace: namespaced.then(|| namespace_of(meta).to_owned()),
        name: meta.name.clone().filter(|n| !n.is_empty()),
        index,
    })
}

/// A namespaced object without a namespace lives in `default`, as `kubectl apply` would put it.
fn namespace_of(meta: &ObjectMeta) -> &str {
    match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => ns,
        _ => "default",
    }
}

fn required_name<'a>(
    kind: &'static str,
    meta: &'a ObjectMeta,
    index: usize,
    namespaced: bool,
) -> Result<&'a str, TopologyError> {
    match meta.name.as_deref() {
        Some(name) if !name.is_empty() => Ok(name),
        _ => Err(TopologyError::MissingField {
            object: object_ref(kind, meta, index, namespaced),
            field: "metadata.name".into(),
        }),
    }
}

fn parse_ip(
    text: &str,
    object: impl FnOnce() -> Box<ObjectRef>,
    field: impl FnOnce() -> String,
) -> Result<IpAddr, TopologyError> {
    text.trim()
        .parse::<IpAddr>()
        .map(|ip| ip.to_canonical())
        .map_err(|_| TopologyError::InvalidIp {
            object: object(),
            field: field(),
            value: text.to_owned(),
        })
}

fn label<'a>(meta: &'a ObjectMeta, keys: &[&str]) -> Option<&'a str> {
    let labels = meta.labels.as_ref()?;
    keys.iter()
        .find_map(|k| labels.get(*k).map(String::as_str).filter(|v| !v.is_empty()))
}

fn node_info(
    node: &Node,
    index: usize,
    interner: &mut Interner,
) -> Result<NodeInfo, TopologyError> {
    let meta = &node.metadata;
    let name = interner.intern(required_name("Node", meta, index, false)?);
    let me = || object_ref("Node", meta, index, false);
    let locality = Locality {
        zone: label(meta, &ZONE_LABELS).map(|z| interner.intern(z)),
        region: label(meta, &REGION_LABELS).map(|r| interner.intern(r)),
    };

    let mut addresses = Vec::new();
    for (i, address) in node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_deref())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        match address.type_.as_str() {
            // Hostname and DNS entries hold names, usually; one that happens to be an IP is kept.
            "Hostname" | "InternalDNS" | "ExternalDNS" => {
                if let Ok(ip) = address.address.trim().parse::<IpAddr>() {
                    addresses.push(ip.to_canonical());
                }
            }
            _ => addresses.push(parse_ip(&address.address, me, || {
                format!("status.addresses[{i}].address")
            })?),
        }
    }
    addresses.dedup();

    let spec = node.spec.as_ref();
    let mut pod_cidrs = Vec::new();
    let (texts, field): (Vec<&str>, &str) = match spec.and_then(|s| s.pod_cidrs.as_deref()) {
        Some(list) if !list.is_empty() => {
            (list.iter().map(String::as_str).collect(), "spec.podCIDRs")
        }
        _ => (
            spec.and_then(|s| s.pod_cidr.as_deref())
                .into_iter()
                .collect(),
            "spec.podCIDR",
        ),
    };
    let many = field == "spec.podCIDRs";
    for (i, text) in texts.into_iter().enumerate() {
        let net = text
            .trim()
            .parse::<ipnet::IpNet>()
            .map_err(|e| TopologyError::InvalidCidr {
                object: me(),
                field: if many {
                    format!("{field}[{i}]")
                } else {
                    field.to_owned()
                },
                value: text.to_owned(),
                reason: e.to_string(),
            })?;
        pod_cidrs.push(net.trunc());
    }

    Ok(NodeInfo {
        name,
        locality,
        addresses,
        pod_cidrs,
    })
}

/// The pod, whether it is live (not `Succeeded`/`Failed`), and the IPs that stand for its node
/// (for a hostNetwork pod: its IPs and `status.hostIP`; for other pods: none).
fn pod_entry(pod: &Pod, index: usize, interner: &mut Interner) -> Result<PodEntry, TopologyError> {
    let meta = &pod.metadata;
    let me = || object_ref("Pod", meta, index, true);
    let name = Arc::from(required_name("Pod", meta, index, true)?);
    let uid = match meta.uid.as_deref() {
        Some(uid) if !uid.is_empty() => Arc::<str>::from(uid),
        _ => {
            return Err(TopologyError::MissingField {
                object: me(),
                field: "metadata.uid".into(),
            });
        }
    };
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let node_name = spec
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
        .map(|n| interner.intern(n));
    let live = !matches!(
        status.and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );

    // status.podIPs is the dual-stack list; status.podIP is its first entry, and the only field
    // older objects carry.
    let mut ips = Vec::new();
    match status.and_then(|s| s.pod_ips.as_deref()) {
        Some(list) if !list.is_empty() => {
            for (i, entry) in list.iter().enumerate() {
                ips.push(parse_ip(&entry.ip, me, || {
                    format!("status.podIPs[{i}].ip")
                })?);
            }
        }
        _ => {
            if let Some(text) = status
                .and_then(|s| s.pod_ip.as_deref())
                .filter(|t| !t.is_empty())
            {
                ips.push(parse_ip(text, me, || "status.podIP".to_owned())?);
            }
        }
    }
    ips.dedup();

    let host_ip = match status
        .and_then(|s| s.host_ip.as_deref())
        .filter(|t| !t.is_empty())
    {
        Some(text) => Some(parse_ip(text, me, || "status.hostIP".to_owned())?),
        None => None,
    };

    // A hostNetwork pod has no address of its own: its IPs are the node's, and it keeps none in
    // `PodInfo::ips` so that nothing mistakes them for a pod's.
    let node_ips = if host_network {
        let mut node_ips = std::mem::take(&mut ips);
        node_ips.extend(host_ip);
        node_ips
    } else {
        Vec::new()
    };

    let info = PodInfo {
        namespace: interner.intern(namespace_of(meta)),
        name,
        uid,
        node_name,
        host_network,
        ips: ips.into(),
        owner: owner_of(meta, interner),
    };
    Ok(PodEntry {
        info,
        live,
        created: meta
            .creation_timestamp
            .as_ref()
            .map_or(NO_TIMESTAMP, |t| t.0.as_second()),
        node_ips: node_ips.into_boxed_slice(),
    })
}

/// The controller owner reference (the one with `controller: true`, or else the first one).
///
/// A ReplicaSet named `<deployment>-<pod-template-hash>` whose hash matches the pod's
/// `pod-template-hash` label is reported as its Deployment: the Deployment controller names
/// ReplicaSets that way and labels their pods with the hash. Without the matching label the
/// ReplicaSet is kept as is, since a bare ReplicaSet can have any name.
fn owner_of(meta: &ObjectMeta, interner: &mut Interner) -> Option<Owner> {
    let refs = meta.owner_references.as_deref()?;
    let chosen: &OwnerReference = refs
        .iter()
        .find(|r| r.controller == Some(true))
        .or_else(|| refs.first())?;
    if chosen.kind == "ReplicaSet" {
        let hash = meta
            .labels
            .as_ref()
            .and_then(|l| l.get("pod-template-hash"))
            .filter(|h| !h.is_empty());
        if let Some(deployment) = hash.and_then(|h| {
            chosen
                .name
                .strip_suffix(h.as_str())
                .and_then(|rest| rest.strip_suffix('-'))
                .filter(|d| !d.is_empty())
        }) {
            return Some(Owner {
                kind: interner.intern("Deployment"),
                name: interner.intern(deployment),
            });
        }
    }
    Some(Owner {
        kind: interner.intern(&chosen.kind),
        // Interned too: a Deployment's pods all name it.
        name: interner.intern(&chosen.name),
    })
}

fn service_info(
    service: &Service,
    index: usize,
    interner: &mut Interner,
) -> Result<ServiceInfo, TopologyError> {
    let meta = &service.metadata;
    let me = || object_ref("Service", meta, index, true);
    let name = Arc::from(required_name("Service", meta, index, true)?);
    let spec = service.spec.as_ref();
    let mut cluster_ips = Vec::new();
    let mut add = |text: &str, field: &dyn Fn() -> String| -> Result<(), TopologyError> {
        // "None" marks a headless Service; "" an ExternalName one or one not yet allocated.
        if text.is_empty() || text == "None" {
            return Ok(());
        }
        cluster_ips.push(parse_ip(text, me, field)?);
        Ok(())
    };
    match spec.and_then(|s| s.cluster_ips.as_deref()) {
        Some(list) if !list.is_empty() => {
            for (i, text) in list.iter().enumerate() {
                add(text, &|| format!("spec.clusterIPs[{i}]"))?;
            }
        }
        _ => {
            if let Some(text) = spec.and_then(|s| s.cluster_ip.as_deref()) {
                add(text, &|| "spec.clusterIP".to_owned())?;
            }
        }
    }
    cluster_ips.dedup();
    Ok(ServiceInfo {
        namespace: interner.intern(namespace_of(meta)),
        name,
        cluster_ips,
    })
}
