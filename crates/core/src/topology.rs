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
//! Memory is the constraint that shapes the types (issue 3: 5,000 nodes and 150,000 pods within
//! 64 MiB, see BENCHMARKS.md): pods and nodes are shared by `Arc` between the cache and every
//! topology, so a topology owns only its indexes; those hold 4-byte slots, never keys that copy a
//! string, and single-stack pods keep their IP inline.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Deref;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// Zone and region of a node, from its `topology.kubernetes.io/*` labels (or the legacy
/// `failure-domain.beta.kubernetes.io/*` ones). Either may be missing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Locality {
    /// The zone, e.g. `us-east-1a`.
    pub zone: Option<Arc<str>>,
    /// The region, e.g. `us-east-1`.
    pub region: Option<Arc<str>>,
}

/// The workload that owns a pod, resolved as far as the objects at hand allow.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    /// Controller kind, e.g. `ReplicaSet`, `StatefulSet`, `DaemonSet`, `Job`.
    pub kind: Arc<str>,
    /// Controller name.
    pub name: Arc<str>,
}

/// A node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// `metadata.name`.
    pub name: Arc<str>,
    /// Zone and region.
    pub locality: Locality,
    /// `status.addresses` that parse as IPs (InternalIP, ExternalIP, ...).
    pub addresses: Vec<IpAddr>,
    /// `spec.podCIDRs` (or `spec.podCIDR`).
    pub pod_cidrs: Vec<ipnet::IpNet>,
}

/// A pod of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    /// `metadata.namespace`.
    pub namespace: Arc<str>,
    /// `metadata.name`.
    pub name: Arc<str>,
    /// `metadata.uid`.
    pub uid: Arc<str>,
    /// `spec.nodeName`; `None` while unscheduled.
    pub node_name: Option<Arc<str>>,
    /// `spec.hostNetwork`.
    pub host_network: bool,
    /// `status.podIPs` (or `status.podIP`). Empty for hostNetwork pods' own index entries, whose
    /// IPs are the node's.
    pub ips: PodIps,
    /// The workload that owns the pod: the controller owner reference, with a ReplicaSet named
    /// after its Deployment reported as the Deployment (see [`PodEntry::from_pod`]). Labels are not
    /// kept: at 150,000 pods a label map per pod would be most of the index.
    pub owner: Option<Owner>,
}

/// A pod's IPs: a slice, with the single IP of a single-stack pod kept inline rather than in an
/// allocation of its own (32 bytes per pod, 4.6 MiB at 150,000 pods).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodIps(IpsRepr);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum IpsRepr {
    #[default]
    None,
    One(IpAddr),
    Many(Box<[IpAddr]>),
}

impl Deref for PodIps {
    type Target = [IpAddr];

    fn deref(&self) -> &[IpAddr] {
        match &self.0 {
            IpsRepr::None => &[],
            IpsRepr::One(ip) => std::slice::from_ref(ip),
            IpsRepr::Many(ips) => ips,
        }
    }
}

impl From<Vec<IpAddr>> for PodIps {
    fn from(ips: Vec<IpAddr>) -> PodIps {
        PodIps(match ips.as_slice() {
            [] => IpsRepr::None,
            [ip] => IpsRepr::One(*ip),
            _ => IpsRepr::Many(ips.into_boxed_slice()),
        })
    }
}

/// A Service with a virtual IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    /// `metadata.namespace`.
    pub namespace: Arc<str>,
    /// `metadata.name`.
    pub name: Arc<str>,
    /// `spec.clusterIPs` (or `spec.clusterIP`), without `None` headless markers.
    pub cluster_ips: Vec<IpAddr>,
}

/// What an IP address is, in this cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint<'a> {
    /// A pod with its own network namespace.
    Pod(&'a PodInfo),
    /// A node address; hostNetwork pods share it and are reported as the node.
    Node(&'a NodeInfo),
    /// A Service virtual IP. Traffic must never be classified by one: after DNAT the reply tuple
    /// names the real backend.
    ServiceIp(&'a ServiceInfo),
}

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

/// Which Kubernetes object an error is about: `Pod default/web-1`, `Node node-a`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// `Node`, `Pod` or `Service`.
    pub kind: &'static str,
    /// `metadata.namespace`, for namespaced kinds.
    pub namespace: Option<String>,
    /// `metadata.name`; `None` when the object has none (which is itself an error).
    pub name: Option<String>,
    /// Position of the object in the slice handed to [`Topology::from_objects`], so that callers
    /// that read the objects from a file can say where it came from.
    pub index: usize,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ", self.kind)?;
        if let Some(ns) = &self.namespace {
            write!(f, "{ns}/")?;
        }
        match &self.name {
            Some(name) => write!(f, "{name}"),
            None => write!(f, "#{} (unnamed)", self.index),
        }
    }
}

/// Why a set of objects cannot become a [`Topology`]. Every variant names the object, the field
/// path inside it and the reason, e.g.
/// `Pod default/web-1: status.podIPs[1].ip: "10.0.0.x" is not an IP address`.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// A field that must hold an IP address does not.
    InvalidIp {
        /// The object.
        object: Box<ObjectRef>,
        /// Field path inside the object.
        field: String,
        /// The offending text.
        value: String,
    },
    /// A field that must hold a CIDR (`10.244.1.0/24`) does not.
    InvalidCidr {
        /// The object.
        object: Box<ObjectRef>,
        /// Field path inside the object.
        field: String,
        /// The offending text.
        value: String,
        /// What the parser said.
        reason: String,
    },
    /// A field the topology cannot do without is missing or empty.
    MissingField {
        /// The object.
        object: Box<ObjectRef>,
        /// Field path inside the object.
        field: String,
    },
    /// Two objects of the same kind share a key that must be unique (node name, pod uid).
    Duplicate {
        /// The later object.
        object: Box<ObjectRef>,
        /// Field path of the key.
        field: String,
        /// The shared value.
        value: String,
        /// The earlier object.
        other: Box<ObjectRef>,
    },
}

impl std::fmt::Display for TopologyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.object(), self.field(), self.reason())
    }
}

impl TopologyError {
    /// The object the error is about.
    pub fn object(&self) -> &ObjectRef {
        match self {
            TopologyError::InvalidIp { object, .. }
            | TopologyError::InvalidCidr { object, .. }
            | TopologyError::MissingField { object, .. }
            | TopologyError::Duplicate { object, .. } => object.as_ref(),
        }
    }

    /// Why the field is rejected, without the object and the field.
    pub fn reason(&self) -> String {
        match self {
            TopologyError::InvalidIp { value, .. } => format!("{value:?} is not an IP address"),
            TopologyError::InvalidCidr { value, reason, .. } => {
                format!("{value:?} is not a CIDR ({reason})")
            }
            TopologyError::MissingField { .. } => "is missing or empty, and is required".into(),
            TopologyError::Duplicate { value, other, .. } => {
                format!("{value:?} is already used by {other}")
            }
        }
    }

    /// The field path inside the object, e.g. `status.podIPs[1].ip`.
    pub fn field(&self) -> &str {
        match self {
            TopologyError::InvalidIp { field, .. }
            | TopologyError::InvalidCidr { field, .. }
            | TopologyError::MissingField { field, .. }
            | TopologyError::Duplicate { field, .. } => field,
        }
    }
}

/// What an IP of the index points at: the kind in the top two bits, the position in `pods`,
/// `nodes` or `services` below. Four bytes rather than an enum's eight, so that an IPv4 entry of
/// the index is 8 bytes plus the table's control byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot(u32);

/// Positions must fit in 30 bits; a billion objects is far beyond any cluster, and [`to_u32`]
/// already saturates.
const SLOT_INDEX: u32 = (1 << 30) - 1;

enum SlotKind {
    Pod,
    Node,
    Service,
}

impl Slot {
    fn new(kind: SlotKind, index: u32) -> Slot {
        let tag = match kind {
            SlotKind::Pod => 0,
            SlotKind::Node => 1,
            SlotKind::Service => 2,
        };
        Slot(tag << 30 | index.min(SLOT_INDEX))
    }

    fn kind(self) -> SlotKind {
        match self.0 >> 30 {
            0 => SlotKind::Pod,
            1 => SlotKind::Node,
            _ => SlotKind::Service,
        }
    }

    fn index(self) -> usize {
        (self.0 & SLOT_INDEX) as usize
    }
}

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

/// IP → slot, IPv4 and IPv6 apart, so that the (much larger) IPv4 table has 8-byte entries
/// instead of the 28 bytes an `IpAddr` key and an enum slot take. Keys are canonical.
#[derive(Debug, Clone, Default)]
struct IpIndex {
    v4: HashMap<Ipv4Addr, Slot>,
    v6: HashMap<Ipv6Addr, Slot>,
}

impl IpIndex {
    /// Room for `ips` without growing: growing by doubling would hold the old and the new table
    /// at once, and leave up to twice the buckets needed.
    fn reserve<'a>(&mut self, ips: impl Iterator<Item = &'a IpAddr>) {
        let (mut v4, mut v6) = (0, 0);
        for ip in ips {
            match ip {
                IpAddr::V4(_) => v4 += 1,
                IpAddr::V6(_) => v6 += 1,
            }
        }
        self.v4.reserve(v4);
        self.v6.reserve(v6);
    }

    /// Points `ip` at `slot`, replacing what it pointed at.
    fn insert(&mut self, ip: IpAddr, slot: Slot) {
        match ip {
            IpAddr::V4(v4) => self.v4.insert(v4, slot),
            IpAddr::V6(v6) => self.v6.insert(v6, slot),
        };
    }

    fn get(&self, ip: IpAddr) -> Option<Slot> {
        match ip {
            IpAddr::V4(v4) => self.v4.get(&v4).copied(),
            IpAddr::V6(v6) => self.v6.get(&v6).copied(),
        }
    }
}

/// A pod parsed once, with what indexing needs beyond its [`PodInfo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEntry {
    info: PodInfo,
    /// False for pods in phase `Succeeded` or `Failed`.
    live: bool,
    /// `metadata.creationTimestamp` in Unix seconds (the API's precision), [`NO_TIMESTAMP`] when
    /// missing, for the IP reuse rule. Eight bytes instead of an `Option<Time>`'s 24.
    created: i64,
    /// IPs that stand for the pod's node: a hostNetwork pod's own IPs and its `status.hostIP`.
    /// Empty, without an allocation, for every other pod.
    node_ips: Box<[IpAddr]>,
}

/// A missing `creationTimestamp` sorts before every real one, as `None` did before `Some`.
const NO_TIMESTAMP: i64 = i64::MIN;

/// A shared pod entry that hashes and compares as its uid, so that a set of them is a map from
/// uid to pod without a key of its own: 8 bytes per slot instead of a 16-byte `Arc<str>` key
/// beside the value. Look one up with a `&str` uid.
#[derive(Debug, Clone)]
pub struct PodByUid(pub Arc<PodEntry>);

impl PodByUid {
    fn uid(&self) -> &str {
        &self.0.info.uid
    }
}

impl Hash for PodByUid {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `str` hashes, which `Borrow<str>` requires.
        self.uid().hash(state);
    }
}

impl PartialEq for PodByUid {
    fn eq(&self, other: &PodByUid) -> bool {
        self.uid() == other.uid()
    }
}

impl Eq for PodByUid {}

impl Borrow<str> for PodByUid {
    fn borrow(&self) -> &str {
        self.uid()
    }
}

impl PodEntry {
    /// Parses the fields the topology reads (DESIGN.md lists them). Strings many pods share
    /// (namespace, node name, owner) come from `interner`.
    pub fn from_pod(pod: &Pod, interner: &mut Interner) -> Result<PodEntry, TopologyError> {
        pod_entry(pod, 0, interner)
    }

    /// The pod.
    pub fn info(&self) -> &PodInfo {
        &self.info
    }

    /// The same pod with another owner, for a watch cache that learns a ReplicaSet's Deployment
    /// or a Job's CronJob after the pod.
    pub fn with_owner(&self, owner: Option<Owner>) -> PodEntry {
        let mut entry = self.clone();
        entry.info.owner = owner;
        entry
    }
}

/// Shares one `Arc<str>` among equal strings (namespaces, node names, owner kinds and names),
/// which 150,000 pods otherwise each allocate.
#[derive(Debug, Default)]
pub struct Interner {
    strings: HashSet<Arc<str>>,
}

impl Interner {
    /// The shared copy of `text`.
    pub fn intern(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.strings.get(text) {
            return shared.clone();
        }
        let shared = Arc::<str>::from(text);
        self.strings.insert(shared.clone());
        shared
    }

    /// Forgets strings nothing else holds any more (a deleted namespace, a removed node), so that
    /// a long-running watch does not grow the interner forever.
    pub fn prune(&mut self) {
        self.strings.retain(|s| Arc::strong_count(s) > 1);
    }

    /// How many distinct strings are held.
    pub fn len(&self) -> usize {
        self.strings.len()
    }

    /// True when no string is held.
    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }
}

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

    /// Indexes parsed objects. Fails on a node name or pod uid used twice; the error's
    /// [`ObjectRef::index`] is the position in `nodes` or `pods`.
    pub fn from_parts(
        nodes: Vec<Arc<NodeInfo>>,
        pods: Vec<Arc<PodEntry>>,
        services: Vec<ServiceInfo>,
    ) -> Result<Topology, TopologyError> {
        let mut topo = Topology {
            node_by_name: HashMap::with_capacity(nodes.len()),
            pod_by_uid: HashSet::with_capacity(pods.len()),
            ..Topology::default()
        };
        for (index, info) in nodes.iter().enumerate() {
            if let Some(&earlier) = topo.node_by_name.get(&info.name) {
                return Err(TopologyError::Duplicate {
                    object: parsed_ref("Node", None, &info.name, index),
                    field: "metadata.name".into(),
                    value: info.name.to_string(),
                    other: parsed_ref("Node", None, &info.name, earlier as usize),
                });
            }
            topo.node_by_name.insert(info.name.clone(), to_u32(index));
        }
        for (index, entry) in pods.iter().enumerate() {
            let info = &entry.info;
            if let Some(other) = topo.pod_by_uid.get(&*info.uid) {
                // Only on this error path is the earlier pod's position needed.
                let earlier = pods
                    .iter()
                    .position(|p| Arc::ptr_eq(p, &other.0))
                    .unwrap_or(index);
                let other = &other.0.info;
                return Err(TopologyError::Duplicate {
                    object: parsed_ref("Pod", Some(&info.namespace), &info.name, index),
                    field: "metadata.uid".into(),
                    value: info.uid.to_string(),
                    other: parsed_ref("Pod", Some(&other.namespace), &other.name, earlier),
                });
            }
            topo.pod_by_uid.insert(PodByUid(entry.clone()));
        }
        topo.nodes = nodes;
        topo.pods = pods;
        topo.services = services;
        topo.build_index();
        Ok(topo)
    }

    /// Fills the IP index, lowest priority first: Services, then pods (newest wins), then nodes.
    fn build_index(&mut self) {
        let by_ip = &mut self.by_ip;
        by_ip.reserve(
            self.services
                .iter()
                .flat_map(|s| s.cluster_ips.iter())
                .chain(self.pods.iter().flat_map(|p| p.info.ips.iter()))
                .chain(self.pods.iter().flat_map(|p| p.node_ips.iter()))
                .chain(self.nodes.iter().flat_map(|n| n.addresses.iter())),
        );
        for (id, service) in self.services.iter().enumerate() {
            for ip in &service.cluster_ips {
                by_ip.insert(*ip, Slot::new(SlotKind::Service, to_u32(id)));
            }
        }
        for (id, entry) in self.pods.iter().enumerate() {
            if !entry.live {
                continue;
            }
            for ip in entry.info.ips.iter() {
                let newer = match by_ip.get(*ip) {
                    Some(slot) if matches!(slot.kind(), SlotKind::Pod) => {
                        // `>=`: on equal (or both missing) timestamps the later object wins, so
                        // that the result does not depend on hash order.
                        entry.created >= self.pods[slot.index()].created
                    }
                    _ => true,
                };
                if newer {
                    by_ip.insert(*ip, Slot::new(SlotKind::Pod, to_u32(id)));
                }
            }
        }
        // hostNetwork pods' IPs are their node's. Indexed before the node's own addresses only
        // so that those, being authoritative, are written last.
        for entry in &self.pods {
            if !entry.live {
                continue;
            }
            let Some(&node_id) = entry
                .info
                .node_name
                .as_ref()
                .and_then(|n| self.node_by_name.get(n))
            else {
                continue;
            };
            for ip in entry.node_ips.iter() {
                by_ip.insert(*ip, Slot::new(SlotKind::Node, node_id));
            }
        }
        for (id, node) in self.nodes.iter().enumerate() {
            for ip in &node.addresses {
                by_ip.insert(*ip, Slot::new(SlotKind::Node, to_u32(id)));
            }
        }
    }

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

/// Object counts stay far below `u32::MAX`; saturate rather than panic if they ever did not.
fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The [`ObjectRef`] of an already parsed object, whose name is known to be there.
fn parsed_ref(
    kind: &'static str,
    namespace: Option<&str>,
    name: &str,
    index: usize,
) -> Box<ObjectRef> {
    Box::new(ObjectRef {
        kind,
        namespace: namespace.map(str::to_owned),
        name: Some(name.to_owned()),
        index,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
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
