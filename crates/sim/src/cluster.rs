//! The synthetic cluster: nodes in zones and regions, pods owned by Deployments, StatefulSets and
//! DaemonSets, Services in front of them, and the destinations outside the cluster. It writes
//! itself out as the inventory and classification config the agent reads, so the agent learns the
//! topology through its ordinary loaders, not through a side door.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use netcost_core::class::TrafficClass;

use crate::behaviour::{NO_WORKLOAD, Workload, Workloads};
use crate::catalog::{LOG_SHIPPER, Placement, WORKLOADS, WorkloadSpec};
use crate::rng::{Rng, mix};

/// Region names, in the order regions are created.
const REGIONS: [&str; 4] = ["us-east-1", "us-west-2", "eu-west-1", "ap-south-1"];
/// Zone suffixes within a region.
const ZONE_LETTERS: [char; 6] = ['a', 'b', 'c', 'd', 'e', 'f'];

/// Internet destinations: 198.18.0.0/15 (RFC 2544 benchmarking). It is in none of Kubecost's
/// default lists nor in any cloud provider's published ranges, so it is internet whatever config
/// or provider ranges the agent has.
pub const INTERNET_NET: (Ipv4Addr, u32) = (Ipv4Addr::new(198, 18, 0, 0), 1 << 17);
/// The simulated object store: S3, one bucket range per region (the first region's in the lower
/// half, every other region's in the upper half). Its addresses are public, so a node behind
/// the NAT gateway reaches it through the gateway; the config the simulator writes tags it
/// `aws-s3` and lists it in-zone, the class netcost gives S3 in the node's own region.
pub const OBJECT_STORE_NET: (Ipv4Addr, u32) = (Ipv4Addr::new(203, 0, 113, 0), 256);
/// The `service` label value of the object store: the tag AWS's published S3 ranges get.
pub const OBJECT_STORE_SERVICE: &str = "aws-s3";
/// The simulated managed database: in-VPC, placed by `direct-classification` in the first
/// region's second zone, and tagged as a service.
pub const MANAGED_DB_NET: (Ipv4Addr, u32) = (Ipv4Addr::new(192, 0, 2, 0), 256);
/// The `service` label value of the managed database.
pub const MANAGED_DB_SERVICE: &str = "sim-managed-db";

/// Node addresses: 172.16.0.0/12, apart from pods (10.64.0.0/10) and Services (10.96.0.0/12).
const NODE_NET: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 0);

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
    /// Two regions, three zones each, two nodes per zone, 12 workload pods per node: the demo's
    /// 12-node cluster.
    fn default() -> Self {
        ClusterSpec {
            regions: 2,
            zones_per_region: 3,
            nodes_per_zone: 2,
            pods_per_node: 12,
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
    /// Index into `workloads` of each pod ([`NO_WORKLOAD`] for hostNetwork pods).
    pod_workload: Vec<u32>,
    /// The workloads, with where their pods are and what they do.
    workloads: Workloads,
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
                        ip: Ipv4Addr::from(u32::from(NODE_NET) + 10 + i),
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
            pod_workload: Vec::new(),
            workloads: Workloads::default(),
            nodes,
        };
        let mut next_on_node = vec![0u32; cluster.nodes.len()];

        // DaemonSets: a hostNetwork node exporter (its traffic is the node's) and a log shipper
        // with its own network namespace, on every node.
        let mut specs: Vec<WorkloadSpec> = vec![LOG_SHIPPER];
        specs.extend_from_slice(WORKLOADS);
        for (daemon, namespace, host_network) in [
            ("node-exporter", "monitoring", true),
            (LOG_SHIPPER.name, LOG_SHIPPER.namespace, false),
        ] {
            for node in 0..cluster.nodes.len() as u32 {
                let suffix = short_suffix(&mut rng);
                let pod = cluster.add_pod(
                    &mut rng,
                    &mut next_on_node,
                    namespace,
                    format!("{daemon}-{suffix}"),
                    (WorkloadKind::DaemonSet, daemon.to_string()),
                    node,
                    host_network,
                );
                if !host_network {
                    cluster.pod_workload[pod as usize] = 0;
                }
            }
        }

        // The catalog's workloads share the first region's capacity by their `share`, at
        // least one pod each: most of them run only there, and the workloads that run
        // everywhere put as many pods in every other region (which is left part empty, as a
        // smaller regional stack would be).
        let regions = u64::from(spec.regions);
        let first_region_capacity = u64::from(spec.pods_per_node)
            * u64::from(spec.zones_per_region)
            * u64::from(spec.nodes_per_zone);
        let demand: u64 = WORKLOADS
            .iter()
            .map(|w| match w.placement {
                Placement::Everywhere | Placement::ZoneOfEveryRegion(_) => {
                    u64::from(w.share) * 1_000 / regions
                }
                Placement::Zone {
                    last_region: true, ..
                } if regions > 1 => 0,
                _ => u64::from(w.share) * 1_000,
            })
            .sum();
        let replicas: Vec<u64> = WORKLOADS
            .iter()
            .map(|w| (u64::from(w.share) * 1_000 * first_region_capacity / demand.max(1)).max(1))
            .collect();
        // The most constrained first, so that each finds room where it must run.
        let mut order: Vec<usize> = (0..WORKLOADS.len()).collect();
        order.sort_by_key(|i| match WORKLOADS[*i].placement {
            Placement::Zone { .. } | Placement::ZoneOfEveryRegion(_) => 0,
            Placement::Everywhere => 1,
            Placement::FirstRegion => 2,
        });
        let mut node_cursor = rng.below(cluster.nodes.len() as u64) as u32;
        for index in order {
            let (workload, count) = (&WORKLOADS[index], replicas[index]);
            let allowed: Vec<u32> = (0..cluster.nodes.len() as u32)
                .filter(|n| cluster.placement_allows(workload.placement, *n))
                .collect();
            let template = short_suffix(&mut rng);
            for r in 0..count {
                let node = cluster.place(
                    &mut rng,
                    &mut node_cursor,
                    &allowed,
                    &next_on_node,
                    2 + u32::from(spec.pods_per_node),
                );
                let pod_name = match workload.kind {
                    WorkloadKind::StatefulSet => format!("{}-{r}", workload.name),
                    _ => format!("{}-{template}-{}", workload.name, short_suffix(&mut rng)),
                };
                let pod = cluster.add_pod(
                    &mut rng,
                    &mut next_on_node,
                    workload.namespace,
                    pod_name,
                    (workload.kind, workload.name.to_string()),
                    node,
                    false,
                );
                cluster.pod_workload[pod as usize] = index as u32 + 1;
            }
        }
        cluster.workloads = Workloads::resolve(&cluster, &specs);
        for (index, workload) in specs.iter().enumerate() {
            let Some((port, target_port, protocol, _)) = workload.service else {
                continue;
            };
            let service_index = cluster.services.len() as u32;
            cluster.workloads.all[index].service = Some(service_index);
            cluster.services.push(SimService {
                namespace: workload.namespace.to_string(),
                name: workload.name.to_string(),
                // 10.96.0.0/12: the usual Service CIDR.
                cluster_ip: Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 10)) + service_index),
                port,
                target_port,
                protocol,
                backends: cluster.workloads.all[index].pods.clone(),
            });
        }
        Ok(cluster)
    }

    fn placement_allows(&self, placement: Placement, node: u32) -> bool {
        let n = &self.nodes[node as usize];
        match placement {
            Placement::Everywhere => true,
            Placement::FirstRegion => n.region == 0,
            Placement::Zone { last_region, zone } => {
                let region = if last_region {
                    self.spec.regions - 1
                } else {
                    0
                };
                n.region == region && n.zone == zone.min(self.spec.zones_per_region - 1)
            }
            Placement::ZoneOfEveryRegion(zone) => {
                n.zone == zone.min(self.spec.zones_per_region - 1)
            }
        }
    }

    /// The next node of `allowed` with room, round-robin with a random stride (spread, yet every
    /// node gets its share); any node with room when those are full; the least loaded one when
    /// all are.
    fn place(
        &self,
        rng: &mut Rng,
        cursor: &mut u32,
        allowed: &[u32],
        next_on_node: &[u32],
        room: u32,
    ) -> u32 {
        let has_room = |n: u32| next_on_node[n as usize] < room;
        if !allowed.is_empty() {
            for _ in 0..allowed.len() {
                *cursor = (*cursor + 1 + rng.below(3) as u32) % allowed.len() as u32;
                let node = allowed[*cursor as usize];
                if has_room(node) {
                    return node;
                }
            }
            if let Some(node) = allowed.iter().copied().find(|n| has_room(*n)) {
                return node;
            }
        }
        (0..self.nodes.len() as u32)
            .min_by_key(|n| next_on_node[*n as usize])
            .unwrap_or(0)
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
        self.pod_workload.push(NO_WORKLOAD);
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

    /// Index into [`Cluster::pods`]-order workloads of each pod.
    pub(crate) fn pod_workloads(&self) -> &[u32] {
        &self.pod_workload
    }

    /// The workload of pod `pod`, if it has one of the catalog's.
    pub(crate) fn workload_of(&self, pod: u32) -> Option<&Workload> {
        self.pod_workload
            .get(pod as usize)
            .and_then(|w| self.workloads.all.get(*w as usize))
    }

    /// Workload number `index`.
    pub(crate) fn workload(&self, index: u32) -> Option<&Workload> {
        self.workloads.all.get(index as usize)
    }

    /// Zones in the cluster, over all regions.
    pub(crate) fn zone_count(&self) -> usize {
        usize::from(self.spec.regions) * usize::from(self.spec.zones_per_region)
    }

    /// The zone index (`region * zones_per_region + zone`) of `node`.
    pub(crate) fn zone_index(&self, node: u32) -> usize {
        let n = &self.nodes[node as usize];
        usize::from(n.region) * usize::from(self.spec.zones_per_region) + usize::from(n.zone)
    }

    /// The region of zone index `zone`.
    pub(crate) fn region_of_zone(&self, zone: usize) -> usize {
        zone / usize::from(self.spec.zones_per_region)
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

    /// The classification config: Kubecost's default lists, the object store in-zone, the
    /// managed database placed by `direct-classification`, both tagged by the `services` list,
    /// and every node behind a NAT gateway that the in-VPC database bypasses.
    pub fn config_yaml(&self) -> String {
        let (region, zone) = managed_db_place(&self.spec);
        format!(
            "# Generated by `netcost simulate`, seed {seed}.\n\
             destinations:\n  in-zone: [\"127.0.0.0/8\", \"169.254.0.0/16\", \"10.0.0.0/8\", \
             \"172.16.0.0/12\", \"192.168.0.0/16\", \"{store}/24\"]\n  in-region: []\n  \
             cross-region: []\n  internet: []\n  direct-classification:\n  - region: \"{region}\"\n    \
             zone: \"{zone}\"\n    ips: [\"{db}/24\"]\nservices:\n  amazon-web-services: false\n  \
             google-cloud-services: false\n  azure-cloud-services: false\n  services:\n  \
             - service: \"{store_name}\"\n    ips: [\"{store}/24\"]\n  - service: \"{db_name}\"\n    \
             ips: [\"{db}/24\"]\nnat-gateway:\n  node-subnets: [\"{nodes}/12\"]\n  bypass: [\"{db}/24\"]\n",
            seed = self.spec.seed,
            region = REGIONS[usize::from(region) % REGIONS.len()],
            zone = zone_name(region, zone),
            db = MANAGED_DB_NET.0,
            store = OBJECT_STORE_NET.0,
            store_name = OBJECT_STORE_SERVICE,
            db_name = MANAGED_DB_SERVICE,
            nodes = NODE_NET,
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
