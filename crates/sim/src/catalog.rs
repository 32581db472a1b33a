//! The product the simulated cluster runs: a web shop's workloads, where their pods go, which
//! Service each one has, and what each pod does on the network, with byte rates.
//!
//! The catalog is data, not code: [`crate::Cluster::generate`] places the pods and
//! [`crate::Table`] turns the activities into conntrack entries. Its shape and rates are the
//! demo's assumptions, written out with their reasons in `docs/demo.md`:
//! - most bytes stay in the zone, because most Services route by topology;
//! - a few identifiable callers cross zones: the cache and the database run in one zone, the
//!   catalog's Service has no topology-aware routing, Kafka and OpenSearch replicate across
//!   zones, and Prometheus scrapes every pod;
//! - the second region runs the front end, the API and the cart for its users; its API calls
//!   the catalog and checkout in the first region, and the database replicates to it;
//! - internet egress comes from the front end, answering users; the API of a payment provider
//!   is reached through the NAT gateway;
//! - the catalog, the report worker and Loki read and write the object store through the NAT
//!   gateway: what a gateway endpoint would make free.
//!
//! What it does not model: load over the day, retries, DNS (each flow dials its Service
//! directly), or a pod that calls two Services in one flow.

use crate::cluster::WorkloadKind;

/// Where a workload's pods may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Over every node of every region.
    Everywhere,
    /// Over the nodes of the first region.
    FirstRegion,
    /// On the nodes of one zone: `zone` of the first region, or of the last region when
    /// `last_region` (a StatefulSet pinned by its volumes).
    Zone { last_region: bool, zone: u8 },
    /// On the nodes of zone `.0` of every region.
    ZoneOfEveryRegion(u8),
}

/// How a Service picks a backend for a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Routing {
    /// Topology-aware routing: a backend in the caller's zone when there is one, else in its
    /// region, else any.
    TopologyAware,
    /// kube-proxy's default: any backend of the caller's region (any at all when the region
    /// has none). The demo's second region reaches the first only where it has no backend.
    AnyInRegion,
}

/// What a pod does on the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activity {
    /// Calls a workload through its Service: DNAT on this node to one of its backends.
    CallService(&'static str),
    /// Talks to another pod of a workload directly (replication, a broker's peers).
    Peer(&'static str),
    /// Scrapes any pod of the cluster directly, as Prometheus does.
    ScrapePods,
    /// Answers users on the internet (through a load balancer that keeps their address).
    ServeUsers,
    /// Calls an API on the internet, through SNAT to the node (and the NAT gateway).
    CallInternet,
    /// Reads and writes the object store (S3), through SNAT to the node.
    ObjectStore,
    /// Queries the managed database in the VPC (no NAT).
    ManagedDb,
}

/// One thing a workload's pods do, how often, and how fast.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Act {
    pub activity: Activity,
    /// Share of the pod's flows, relative to its other activities.
    pub weight: u32,
    /// Mean bytes per second of an active flow: client to server, server to client.
    pub rate: (u64, u64),
}

/// A workload of the product.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WorkloadSpec {
    pub namespace: &'static str,
    pub name: &'static str,
    pub kind: WorkloadKind,
    pub placement: Placement,
    /// Share of the cluster's workload pods (at least one pod).
    pub share: u32,
    /// Its Service: port, target port, protocol and routing; `None` for none.
    pub service: Option<(u16, u16, u8, Routing)>,
    pub acts: &'static [Act],
}

const fn act(activity: Activity, weight: u32, up: u64, down: u64) -> Act {
    Act {
        activity,
        weight,
        rate: (up, down),
    }
}

use Activity::{CallInternet, CallService, ManagedDb, ObjectStore, Peer, ScrapePods, ServeUsers};
use Placement::{Everywhere, FirstRegion, Zone, ZoneOfEveryRegion};
use Routing::{AnyInRegion, TopologyAware};

/// The workloads, besides the two DaemonSets every node runs (a hostNetwork node exporter, and a
/// log shipper that sends to Loki: [`LOG_SHIPPER`]).
pub(crate) const WORKLOADS: &[WorkloadSpec] = &[
    WorkloadSpec {
        namespace: "shop",
        name: "web",
        kind: WorkloadKind::Deployment,
        placement: Everywhere,
        share: 16,
        service: Some((80, 8080, 6, TopologyAware)),
        acts: &[
            act(ServeUsers, 50, 100, 1_100),
            act(CallService("api"), 50, 150, 1_200),
        ],
    },
    WorkloadSpec {
        namespace: "shop",
        name: "api",
        kind: WorkloadKind::Deployment,
        placement: Everywhere,
        share: 14,
        service: Some((80, 8080, 6, TopologyAware)),
        acts: &[
            act(CallService("cart"), 15, 100, 400),
            act(CallService("catalog"), 30, 80, 1_000),
            act(CallService("checkout"), 8, 120, 250),
            act(CallService("opensearch"), 15, 80, 700),
            act(CallService("redis"), 20, 50, 500),
            act(CallService("kafka"), 12, 250, 25),
        ],
    },
    WorkloadSpec {
        namespace: "shop",
        name: "cart",
        kind: WorkloadKind::Deployment,
        placement: Everywhere,
        share: 8,
        service: Some((80, 8080, 6, TopologyAware)),
        acts: &[act(CallService("redis"), 100, 80, 400)],
    },
    WorkloadSpec {
        namespace: "shop",
        name: "catalog",
        kind: WorkloadKind::Deployment,
        placement: Everywhere,
        share: 10,
        // No topology hints: the chatty service of the demo.
        service: Some((80, 8080, 6, AnyInRegion)),
        acts: &[
            act(CallService("postgres"), 35, 50, 600),
            act(CallService("opensearch"), 30, 50, 600),
            act(ObjectStore, 35, 40, 2_500),
        ],
    },
    WorkloadSpec {
        namespace: "payments",
        name: "checkout",
        kind: WorkloadKind::Deployment,
        placement: FirstRegion,
        share: 6,
        service: Some((80, 8080, 6, TopologyAware)),
        acts: &[
            act(ManagedDb, 50, 200, 400),
            act(CallInternet, 30, 150, 100),
            act(CallService("kafka"), 20, 200, 25),
        ],
    },
    WorkloadSpec {
        namespace: "shop",
        name: "redis",
        kind: WorkloadKind::StatefulSet,
        // One primary per region, in its first zone: the cache in one zone.
        placement: ZoneOfEveryRegion(0),
        share: 3,
        service: Some((6379, 6379, 6, AnyInRegion)),
        acts: &[],
    },
    WorkloadSpec {
        namespace: "shop",
        name: "postgres",
        kind: WorkloadKind::StatefulSet,
        placement: Zone {
            last_region: false,
            zone: 0,
        },
        share: 2,
        service: Some((5432, 5432, 6, AnyInRegion)),
        acts: &[act(Peer("postgres-replica"), 100, 400, 15)],
    },
    WorkloadSpec {
        namespace: "shop",
        name: "postgres-replica",
        kind: WorkloadKind::StatefulSet,
        placement: Zone {
            last_region: true,
            zone: 0,
        },
        share: 1,
        service: None,
        acts: &[],
    },
    WorkloadSpec {
        namespace: "search",
        name: "opensearch",
        kind: WorkloadKind::StatefulSet,
        placement: FirstRegion,
        share: 6,
        service: Some((9200, 9200, 6, TopologyAware)),
        acts: &[act(Peer("opensearch"), 100, 250, 250)],
    },
    WorkloadSpec {
        namespace: "events",
        name: "kafka",
        kind: WorkloadKind::StatefulSet,
        placement: FirstRegion,
        share: 5,
        // Clients talk to each partition's leader, wherever it is.
        service: Some((9092, 9092, 6, AnyInRegion)),
        acts: &[act(Peer("kafka"), 100, 500, 25)],
    },
    WorkloadSpec {
        namespace: "analytics",
        name: "report-worker",
        kind: WorkloadKind::Deployment,
        placement: FirstRegion,
        share: 5,
        service: None,
        acts: &[
            act(CallService("kafka"), 40, 25, 500),
            act(ObjectStore, 40, 1_500, 40),
            act(CallService("postgres"), 20, 40, 750),
        ],
    },
    WorkloadSpec {
        namespace: "monitoring",
        name: "prometheus",
        kind: WorkloadKind::StatefulSet,
        placement: Zone {
            last_region: false,
            zone: 1,
        },
        share: 1,
        service: None,
        acts: &[act(ScrapePods, 100, 25, 400)],
    },
    WorkloadSpec {
        namespace: "logging",
        name: "loki",
        kind: WorkloadKind::StatefulSet,
        placement: Zone {
            last_region: false,
            zone: 2,
        },
        share: 2,
        service: Some((3100, 3100, 6, AnyInRegion)),
        acts: &[act(ObjectStore, 100, 800, 25)],
    },
];

/// The log shipper DaemonSet's pods: they push logs to Loki.
pub(crate) const LOG_SHIPPER: WorkloadSpec = WorkloadSpec {
    namespace: "logging",
    name: "log-shipper",
    kind: WorkloadKind::DaemonSet,
    placement: Everywhere,
    share: 0,
    service: None,
    acts: &[act(CallService("loki"), 100, 300, 10)],
};

/// The node itself (kubelet, the hostNetwork node exporter) talking to other nodes: a share of
/// each node's flows, in permille, and its rates.
pub(crate) const NODE_FLOWS_PERMILLE: u64 = 50;
/// Mean bytes per second of an active node-to-node flow, each way.
pub(crate) const NODE_RATE: (u64, u64) = (100, 150);
