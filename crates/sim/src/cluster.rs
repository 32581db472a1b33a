//! The synthetic cluster: nodes in zones and regions, pods owned by Deployments, StatefulSets and
//! DaemonSets, Services in front of them, and the destinations outside the cluster. It writes
//! itself out as the inventory and classification config the agent reads, so the agent learns the
//! topology through its ordinary loaders, not through a side door.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use netcost_core::class::TrafficClass;

use crate::rng::{Rng, mix};

/// Region names, in the order regions are created.
const REGIONS: [&str; 4] = ["us-east-1", "us-west-2", "eu-west-1", "ap-south-1"];
/// Zone suffixes within a region.
const ZONE_LETTERS: [char; 6] = ['a', 'b', 'c', 'd', 'e', 'f'];

/// Internet destinations: 198.18.0.0/15 (RFC 2544 benchmarking). It is in none of Kubecost's
/// default lists nor in any cloud provider's published ranges, so it is internet whatever config
/// or provider ranges the agent has.
pub const INTERNET_NET: (Ipv4Addr, u32) = (Ipv4Addr::new(198, 18, 0, 0), 1 << 17);
/// The simulated object store (a cloud service reached over the internet), tagged by the
/// `services` list of the config the simulator writes.
pub const OBJECT_STORE_NET: (Ipv4Addr, u32) = (Ipv4Addr::new(203, 0, 113, 0), 256);
/// The `service` label value of the object store.
pub const OBJECT_STORE_SERVICE: &str = "sim-object-store";
/// The simulated managed database: in-VPC, placed by `direct-classification` in the first
/// region's second zone, and tagged as a service.
pub const MANAGED_DB_NET: (Ipv4Addr, u32) = (Ipv4Addr::new(192, 0, 2, 0), 256);
/// The `service` label value of the managed database.
pub const MANAGED_DB_SERVICE: &str = "sim-managed-db";

/// The shape of the cluster to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    /// Regions (1 to 4).
    pub regions: u8,
    /// Zones per region (1 to 6).
    pub zones_per_region: u8,
    /// Nodes per zone (at least 1).
    pub nodes_per_zone: u16,
    /// Pods per node that Deployments and StatefulSets fill (at most 200), besides the two
    /// DaemonSet pods every node runs.
    pub pods_per_node: u16,
    /// The seed: the same spec and seed give the same cluster.
    pub seed: u64,
}

impl Default for ClusterSpec {
    /// Two regions, three zones each, two nodes per zone, 30 workload pods per node.
    fn default() -> Self {
        ClusterSpec {
            regions: 2,
            zones_per_region: 3,
            nodes_per_zone: 2,
            pods_per_node: 30,
            seed: 42,
        }
    }
}

/// Why a [`ClusterSpec`] cannot be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// A field is out of its range.
    #[error("{field} must be in {range}, not {value}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The allowed range.
        range: &'static str,
        /// The value given.
        value: u64,
    },
}

/// A node of the simulated cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimNode {
    /// `metadata.name`.
    pub name: String,
    /// Index into [`REGIONS`]-derived region names.
    pub region: u8,
    /// Zone index within the region.
    pub zone: u8,
    /// The InternalIP.
    pub ip: Ipv4Addr,
}

/// What kind of controller owns a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    /// Through a ReplicaSet.
    Deployment,
    /// Directly.
    StatefulSet,
    /// Directly, one pod per node.
    DaemonSet,
}

/// A pod of the simulated cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimPod {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// Owning controller kind and name.
    pub workload: (WorkloadKind, String),
    /// Index of its node.
    pub node: u32,
    /// Its IP: its own, or its node's for a hostNetwork pod.
    pub ip: Ipv4Addr,
    /// `spec.hostNetwork`.
    pub host_network: bool,
}

/// A Service with a ClusterIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimService {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `spec.clusterIP`.
    pub cluster_ip: Ipv4Addr,
    /// The Service port.
    pub port: u16,
    /// The pods' port.
    pub target_port: u16,
    /// IP protocol (6 or 17).
    pub protocol: u8,
    /// Indexes of the backend pods.
    pub backends: Vec<u32>,
}

/// The generated cluster. See the module docs.
#[derive(Debug, Clone)]
pub struct Cluster {
    spec: ClusterSpec,
    nodes: Vec<SimNode>,
    pods: Vec<SimPod>,
    services: Vec<SimService>,
    /// Pods with their own network namespace, any node: the remote ends of pod traffic.
    pod_network_pods: Vec<u32>,
    /// Pods with their own network namespace on each node.
    pods_by_node: Vec<Vec<u32>>,
}

impl Cluster {
    /// Generates the cluster of `spec`.
    ///
    /// # Errors
    ///
    /// [`SpecError`] when a field is out of range.
    pub fn generate(spec: &ClusterSpec) -> Result<Cluster, SpecError> {
        check("regions", "1..=4", u64::from(spec.regions), 1, 4)?;
        check(
            "zones_per_region",
            "1..=6",
            u64::from(spec.zones_per_region),
            1,
            6,
        )?;
        check(
            "nodes_per_zone",
            "1..=4096",
            u64::from(spec.nodes_per_zone),
            1,
            4096,
        )?;
        check(
            "pods_per_node",
            "1..=200",
            u64::from(spec.pods_per_node),
            1,
            200,
        )?;
        let mut rng = Rng::new(spec.seed);
        let mut nodes = Vec::new();
        for region in 0..spec.regions {
            for zone in 0..spec.zones_per_region {
                for _ in 0..spec.nodes_per_zone {
                    let i = nodes.len() as u32;
                    nodes.push(SimNode {
                        name: format!("sim-node-{i}"),
                        region,
                        zone,
                        // 172.16.0.0/12: node addresses, apart from pods and Services.
                        ip: Ipv4Addr::from(u32::from(Ipv4Addr::new(172, 16, 0, 10)) + i),
                    });
                }
            }
        }
        let mut cluster = Cluster {
            spec: spec.clone(),
            pods: Vec::new(),
            services: Vec::new(),
            pod_network_pods: Vec::new(),
            pods_by_node: vec![Vec::new(); nodes.len()],
            nodes,
        };
        let mut next_on_node = vec![0u32; cluster.nodes.len()];

        // DaemonSets: a hostNetwork node exporter (its traffic is the node's) and a log shipper
        // with its own network namespace, on every node.
        for (daemon, namespace, host_network) in [
            ("node-exporter", "monitoring", true),
            ("log-shipper", "logging", false),
        ] {
            for node in 0..cluster.nodes.len() as u32 {
                let suffix = short_suffix(&mut rng);
                cluster.add_pod(
                    &mut rng,
                    &mut next_on_node,
                    namespace,
                    format!("{daemon}-{suffix}"),
                    (WorkloadKind::DaemonSet, daemon.to_string()),
                    node,
                    host_network,
                );
            }
        }

        // Deployments and StatefulSets fill each node up to pods_per_node. A workload's replicas
        // spread over random nodes, so its Service has backends in several zones.
        let capacity = u64::from(spec.pods_per_node) * cluster.nodes.len() as u64;
        let namespaces = ["shop", "payments", "search", "analytics", "platform"];
        let mut placed = 0u64;
        let mut workload = 0usize;
        let mut node_cursor = rng.below(cluster.nodes.len() as u64) as u32;
        while placed < capacity {
            let namespace = namespaces[workload % namespaces.len()];
            let stateful = workload % 4 == 3;
            let name = format!("app-{workload}");
            let replicas = (2 + rng.below(5)).min(capacity - placed) as u32;
            let template = short_suffix(&mut rng);
            let mut members = Vec::new();
            for r in 0..replicas {
                // Round-robin with a random stride: spread, yet every node gets its share.
                node_cursor = (node_cursor + 1 + rng.below(3) as u32) % cluster.nodes.len() as u32;
                while next_on_node[node_cursor as usize] >= 2 + u32::from(spec.pods_per_node) {
                    node_cursor = (node_cursor + 1) % cluster.nodes.len() as u32;
                }
                let (kind, pod_name) = if stateful {
                    (WorkloadKind::StatefulSet, format!("{name}-{r}"))
                } else {
                    let suffix = short_suffix(&mut rng);
                    (
                        WorkloadKind::Deployment,
                        format!("{name}-{template}-{suffix}"),
                    )
                };
                members.push(cluster.add_pod(
                    &mut rng,
                    &mut next_on_node,
                    namespace,
                    pod_name,
                    (kind, name.clone()),
                    node_cursor,
                    false,
                ));
            }
            placed += u64::from(replicas);
            let index = cluster.services.len() as u32;
            // A DNS-like UDP Service now and then, TCP otherwise.
            let (port, target_port, protocol) = if workload.is_multiple_of(5) {
                (53, 5353, 17)
            } else {
                (80, 8080, 6)
            };
            cluster.services.push(SimService {
                namespace: namespace.to_string(),
                name,
                // 10.96.0.0/12: the usual Service CIDR.
                cluster_ip: Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 10)) + index),
                port,
                target_port,
                protocol,
                backends: members,
            });
            workload += 1;
        }
        Ok(cluster)
    }

    #[allow(clippy::too_many_arguments)]
    fn add_pod(
        &mut self,
        rng: &mut Rng,
        next_on_node: &mut [u32],
        namespace: &str,
        name: String,
        workload: (WorkloadKind, String),
        node: u32,
        host_network: bool,
    ) -> u32 {
        let index = self.pods.len() as u32;
        let slot = next_on_node[node as usize];
        next_on_node[node as usize] += 1;
        let ip = if host_network {
            self.nodes[node as usize].ip
        } else {
            pod_ip(node, slot)
        };
        let uid = uuid(rng.next_u64(), rng.next_u64());
        self.pods.push(SimPod {
            namespace: namespace.to_string(),
            name,
            uid,
            workload,
            node,
            ip,
            host_network,
        });
        if !host_network {
            self.pod_network_pods.push(index);
            self.pods_by_node[node as usize].push(index);
        }
        index
    }

    /// The spec it was generated from.
    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    /// The nodes.
    pub fn nodes(&self) -> &[SimNode] {
        &self.nodes
    }

    /// The pods, DaemonSet pods first.
    pub fn pods(&self) -> &[SimPod] {
        &self.pods
    }

    /// The Services.
    pub fn services(&self) -> &[SimService] {
        &self.services
    }

    /// Pods with their own network namespace on `node`.
    pub fn pods_on_node(&self, node: u32) -> &[u32] {
        self.pods_by_node
            .get(node as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Pods with their own network namespace, on every node.
    pub fn pod_network_pods(&self) -> &[u32] {
        &self.pod_network_pods
    }

    /// Region name of `node`.
    pub fn region_name(&self, node: &SimNode) -> &'static str {
        REGIONS[usize::from(node.region) % REGIONS.len()]
    }

    /// Zone name of `node`, such as `us-east-1b`.
    pub fn zone_name(&self, node: &SimNode) -> String {
        zone_name(node.region, node.zone)
    }

    /// The class of traffic between `from` and `to`, by the cloud's rules: the ground truth the
    /// agent's classifier must reproduce.
    pub fn class_between(&self, from: u32, to: u32) -> TrafficClass {
        let (a, b) = (&self.nodes[from as usize], &self.nodes[to as usize]);
        class_of(a, b.region, Some(b.zone))
    }

    /// The class of the managed database as seen from `from`.
    pub fn managed_db_class(&self, from: u32) -> TrafficClass {
        let (region, zone) = managed_db_place(&self.spec);
        class_of(&self.nodes[from as usize], region, Some(zone))
    }

    /// The inventory file: a `kind: List` of Node, Pod and Service objects, as `kubectl get
    /// nodes,pods,services -A -o yaml` prints them (trimmed to the fields netcost reads).
    pub fn inventory_yaml(&self) -> String {
        let mut y = String::with_capacity(600 * (self.pods.len() + self.nodes.len()));
        let _ = writeln!(
            y,
            "# Generated by `netcost simulate`, seed {}: {} nodes, {} pods, {} Services.",
            self.spec.seed,
            self.nodes.len(),
            self.pods.len(),
            self.services.len()
        );
        y.push_str("apiVersion: v1\nkind: List\nitems:\n");
        for (i, node) in self.nodes.iter().enumerate() {
            let _ = write!(
                y,
                "- apiVersion: v1\n  kind: Node\n  metadata:\n    name: {name}\n    labels:\n      \
                 kubernetes.io/hostname: {name}\n      topology.kubernetes.io/region: {region}\n      \
                 topology.kubernetes.io/zone: {zone}\n  spec:\n    podCIDR: {cidr}/24\n    \
                 podCIDRs: [{cidr}/24]\n  status:\n    addresses:\n    - type: InternalIP\n      \
                 address: {ip}\n    - type: Hostname\n      address: {name}\n",
                name = node.name,
                region = self.region_name(node),
                zone = self.zone_name(node),
                cidr = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 64, 0, 0)) + ((i as u32) << 8)),
                ip = node.ip,
            );
        }
        for pod in &self.pods {
            let node = &self.nodes[pod.node as usize];
            // Deployment pods carry their ReplicaSet's pod-template hash as a label, as the
            // Deployment controller sets it; that is how the owner resolves to the Deployment.
            let mut template_hash = String::new();
            let (owner_kind, owner_name) = match &pod.workload {
                (WorkloadKind::Deployment, name) => {
                    // The ReplicaSet is the Deployment's name and the pod-template hash.
                    let replica_set = pod.name.rsplit_once('-').map_or(name.as_str(), |x| x.0);
                    if let Some(hash) = replica_set
                        .strip_prefix(name.as_str())
                        .and_then(|h| h.strip_prefix('-'))
                    {
                        template_hash = format!("\n      pod-template-hash: {hash}");
                    }
                    ("ReplicaSet", replica_set.to_string())
                }
                (WorkloadKind::StatefulSet, name) => ("StatefulSet", name.clone()),
                (WorkloadKind::DaemonSet, name) => ("DaemonSet", name.clone()),
            };
            let _ = write!(
                y,
                "- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: {name}\n    namespace: {ns}\n    \
                 uid: {uid}\n    labels:\n      app: {app}{template_hash}\n    ownerReferences:\n    - apiVersion: apps/v1\n      \
                 kind: {owner_kind}\n      name: {owner_name}\n      uid: {owner_uid}\n      controller: true\n  \
                 spec:\n    nodeName: {node}\n    hostNetwork: {host}\n    containers:\n    - name: main\n      \
                 image: registry.example/{app}:1\n  status:\n    phase: Running\n    hostIP: {host_ip}\n    \
                 podIP: {ip}\n    podIPs:\n    - ip: {ip}\n",
                name = pod.name,
                ns = pod.namespace,
                uid = pod.uid,
                app = pod.workload.1,
                owner_uid = uuid(
                    mix(self.spec.seed ^ hash_str(&owner_name)),
                    mix(hash_str(&owner_name))
                ),
                node = node.name,
                host = pod.host_network,
                host_ip = node.ip,
                ip = pod.ip,
            );
        }
        for svc in &self.services {
            let _ = write!(
                y,
                "- apiVersion: v1\n  kind: Service\n  metadata:\n    name: {name}\n    namespace: {ns}\n  \
                 spec:\n    clusterIP: {ip}\n    clusterIPs: [{ip}]\n    ports:\n    - port: {port}\n      \
                 targetPort: {target}\n      protocol: {proto}\n    selector:\n      app: {name}\n",
                name = svc.name,
                ns = svc.namespace,
                ip = svc.cluster_ip,
                port = svc.port,
                target = svc.target_port,
                proto = if svc.protocol == 17 { "UDP" } else { "TCP" },
            );
        }
        y
    }

    /// The classification config: Kubecost's default lists, the managed database placed by
    /// `direct-classification`, and both cloud services tagged by the `services` list.
    pub fn config_yaml(&self) -> String {
        let (region, zone) = managed_db_place(&self.spec);
        format!(
            "# Generated by `netcost simulate`, seed {seed}.\n\
             destinations:\n  in-zone: [\"127.0.0.0/8\", \"169.254.0.0/16\", \"10.0.0.0/8\", \
             \"172.16.0.0/12\", \"192.168.0.0/16\"]\n  in-region: []\n  cross-region: []\n  \
             internet: []\n  direct-classification:\n  - region: \"{region}\"\n    zone: \"{zone}\"\n    \
             ips: [\"{db}/24\"]\nservices:\n  amazon-web-services: false\n  google-cloud-services: false\n  \
             azure-cloud-services: false\n  services:\n  - service: \"{store_name}\"\n    ips: [\"{store}/24\"]\n  \
             - service: \"{db_name}\"\n    ips: [\"{db}/24\"]\n",
            seed = self.spec.seed,
            region = REGIONS[usize::from(region) % REGIONS.len()],
            zone = zone_name(region, zone),
            db = MANAGED_DB_NET.0,
            store = OBJECT_STORE_NET.0,
            store_name = OBJECT_STORE_SERVICE,
            db_name = MANAGED_DB_SERVICE,
        )
    }
}

fn check(
    field: &'static str,
    range: &'static str,
    value: u64,
    lo: u64,
    hi: u64,
) -> Result<(), SpecError> {
    if (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(SpecError::OutOfRange {
            field,
            range,
            value,
        })
    }
}

/// Region 0, its second zone (or its only one).
fn managed_db_place(spec: &ClusterSpec) -> (u8, u8) {
    (0, 1.min(spec.zones_per_region - 1))
}

fn class_of(from: &SimNode, region: u8, zone: Option<u8>) -> TrafficClass {
    if from.region != region {
        TrafficClass::CrossRegion
    } else if zone == Some(from.zone) {
        TrafficClass::InZone
    } else {
        TrafficClass::CrossZone
    }
}

fn zone_name(region: u8, zone: u8) -> String {
    format!(
        "{}{}",
        REGIONS[usize::from(region) % REGIONS.len()],
        ZONE_LETTERS[usize::from(zone) % ZONE_LETTERS.len()]
    )
}

/// Pod `slot` of `node`: node `n` owns 10.64.0.0/10's `n`-th /24 (up to 16,384 nodes).
fn pod_ip(node: u32, slot: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 64, 0, 1)) + (node << 8) + slot)
}

/// Five lowercase alphanumerics, like the suffixes Kubernetes generates.
fn short_suffix(rng: &mut Rng) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize] as char)
        .collect()
}

fn uuid(a: u64, b: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) & 0xfff,
        b & 0xffff_ffff_ffff
    )
}

fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}
