//! The live conntrack table of one node, and the ground truth of what its pods sent.
//!
//! Memory is the point of the layout. A flow is two `u32`s: a serial number and its birth time.
//! Everything else (endpoints, ports, NAT, byte rates) is a pure function of the table seed and
//! the serial, recomputed whenever the flow is dumped, and its counters are a pure function of its
//! age. So 2M flows cost 16 MiB, and the simulator never dwarfs the agent it feeds.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use netcost_core::class::{Direction, TrafficClass};
use netcost_core::flow::{Counters, FlowRecord, FlowTuple, IPS_DST_NAT, IPS_SRC_NAT};

use crate::behaviour::Behaviour;
use crate::catalog::{NODE_FLOWS_PERMILLE, NODE_RATE};
use crate::cluster::{
    Cluster, INTERNET_NET, MANAGED_DB_NET, MANAGED_DB_SERVICE, OBJECT_STORE_NET,
    OBJECT_STORE_SERVICE,
};
use crate::rng::{Rng, mix, pick};

/// The table's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSpec {
    /// Live entries, constant over time: every flow that ends is replaced by a new one.
    pub entries: u32,
    /// Fraction of `entries` that end (with a DESTROY event) and are replaced, per minute of
    /// simulated time. `0.2` is 20% per minute.
    pub churn_per_min: f64,
    /// Index of the node whose table this is (the agent's node).
    pub node: u32,
    /// The seed: with the same cluster, spec and sequence of clock readings, the same bytes.
    pub seed: u64,
}

impl Default for TableSpec {
    /// 100,000 entries, 20% churn per minute, node 0, seed 42.
    fn default() -> Self {
        TableSpec {
            entries: 100_000,
            churn_per_min: 0.2,
            node: 0,
            seed: 42,
        }
    }
}

/// Who bytes belong to, in the truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TruthOwner {
    /// A pod, by index into [`Cluster::pods`].
    Pod(u32),
    /// The local node itself (host processes, hostNetwork pods).
    Node,
}

/// One counter of the truth: who, which way, to what class, tagged with which service, and
/// whether through the NAT gateway (the counters' `nat_gateway` label).
pub type TruthKey = (
    TruthOwner,
    Direction,
    TrafficClass,
    Option<&'static str>,
    bool,
);

/// Bytes each local pod (and the node) sent and received per class and service since the
/// agent's priming dump: what its exported counters must equal.
pub type Truth = BTreeMap<TruthKey, u64>;

/// Simulated time before the clock's zero: the initial flows were born in this hour, so they
/// carry different counters when the agent first dumps them.
const HISTORY_MS: u32 = 3_600_000;

/// `IPS_SEEN_REPLY | IPS_ASSURED | IPS_CONFIRMED`: an established entry.
const ESTABLISHED: u32 = (1 << 1) | (1 << 2) | (1 << 3);
/// `IPS_SRC_NAT_DONE` and `IPS_DST_NAT_DONE`, set with the NAT bits once the NAT is in place.
const SRC_NAT_DONE: u32 = 1 << 7;
const DST_NAT_DONE: u32 = 1 << 8;

/// One end of a flow, as the truth sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Party {
    Pod(u32),
    Node(u32),
    /// An end outside the cluster: its class, service tag, and whether the flow goes
    /// through the NAT gateway.
    Outside {
        class: TrafficClass,
        service: Option<&'static str>,
        nat: bool,
    },
}

/// Everything about a flow except its counters.
#[derive(Debug, Clone, Copy)]
struct Plan {
    protocol: u8,
    client: (Ipv4Addr, u16),
    /// What the client dialled: a ClusterIP under DNAT.
    dialled: (Ipv4Addr, u16),
    /// Who answers: `reply.src`.
    server: (Ipv4Addr, u16),
    /// Where answers go: `reply.dst`, the node under SNAT.
    reply_to: (Ipv4Addr, u16),
    status: u32,
    client_party: Party,
    server_party: Party,
    /// Bytes per second each way, and bytes of the first packets.
    rate: (u64, u64),
    base: (u64, u64),
}

/// A flow that ended and whose DESTROY event is waiting to be read.
#[derive(Debug, Clone, Copy)]
struct Ended {
    serial: u32,
    born: u32,
    end: u32,
}

/// The table. See the module docs.
#[derive(Debug)]
pub struct Table {
    spec: TableSpec,
    /// Struct of arrays: the serial and birth time (ms) of the flow in each slot.
    serial: Vec<u32>,
    born: Vec<u32>,
    next_serial: u32,
    /// Simulated time, ms, on the table's scale (the clock's zero is `HISTORY_MS`).
    now: u32,
    churn: Rng,
    ended_so_far: u64,
    /// DESTROY events not read yet.
    pending: Vec<Ended>,
    /// Set by the first dump: counting starts there, and from then on a listener exists.
    primed_at: Option<u32>,
    /// Truth of flows that ended since priming.
    ended_truth: Truth,
    local_node: u32,
    local_node_ip: Ipv4Addr,
    local_pods: Vec<u32>,
}

impl Table {
    /// A table of `spec.entries` flows of `cluster`'s node `spec.node`, at clock time 0.
    pub fn new(cluster: &Cluster, spec: &TableSpec) -> Table {
        let node = spec
            .node
            .min(cluster.nodes().len().saturating_sub(1) as u32);
        let mut rng = Rng::new(spec.seed ^ 0x0074_6162_6c65);
        let n = spec.entries as usize;
        let born = (0..n)
            .map(|_| rng.below(u64::from(HISTORY_MS)) as u32)
            .collect();
        Table {
            spec: spec.clone(),
            serial: (0..spec.entries).collect(),
            born,
            next_serial: spec.entries,
            now: HISTORY_MS,
            churn: Rng::new(spec.seed ^ 0x0063_6875_726e),
            ended_so_far: 0,
            pending: Vec::new(),
            primed_at: None,
            ended_truth: Truth::new(),
            local_node: node,
            local_node_ip: cluster.nodes()[node as usize].ip,
            local_pods: cluster.pods_on_node(node).to_vec(),
        }
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.serial.len()
    }

    /// True when the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.serial.is_empty()
    }

    /// Index of the local node.
    pub fn local_node(&self) -> u32 {
        self.local_node
    }

    /// The clock reading the table is at, in ms.
    pub fn now_ms(&self) -> u64 {
        u64::from(self.now - HISTORY_MS)
    }

    /// DESTROY events waiting to be read.
    pub fn pending_events(&self) -> usize {
        self.pending.len()
    }

    /// Moves simulated time to `now_ms` (a clock reading; earlier readings are ignored): flows
    /// grow, and `churn_per_min` of the table ends and is replaced, spread over the interval.
    pub fn advance_to(&mut self, cluster: &Cluster, now_ms: u64) {
        let now = u32::try_from(now_ms.saturating_add(u64::from(HISTORY_MS))).unwrap_or(u32::MAX);
        if now <= self.now {
            return;
        }
        // Ends due by `now`, from the start of the clock: rounding never drifts.
        let per_ms = f64::from(self.spec.entries) * self.spec.churn_per_min / 60_000.0;
        let due = (per_ms * f64::from(now - HISTORY_MS)).floor() as u64;
        let ends = due.saturating_sub(self.ended_so_far);
        let span = u64::from(now - self.now);
        if !self.serial.is_empty() {
            for k in 0..ends {
                // Ends are spread evenly over the interval, so short flows exist too: a flow born
                // in this interval may end in it, never seen by a dump.
                let at = self.now + ((k + 1) * span / ends) as u32;
                let slot = self.churn.below(self.serial.len() as u64) as usize;
                self.end_flow(cluster, slot, at);
            }
        }
        self.ended_so_far = due;
        self.now = now;
    }

    fn end_flow(&mut self, cluster: &Cluster, slot: usize, at: u32) {
        let ended = Ended {
            serial: self.serial[slot],
            born: self.born[slot],
            end: at.max(self.born[slot]),
        };
        if let Some(primed_at) = self.primed_at {
            // Nobody listened before the first dump: those flows' ends are not events (and
            // happened before counting started).
            self.pending.push(ended);
            let plan = self.plan(cluster, ended.serial);
            let (o, r) = watched(&plan, ended.born, primed_at, ended.end);
            add(&mut self.ended_truth, cluster, self.local_node, &plan, o, r);
        }
        self.serial[slot] = self.next_serial;
        self.born[slot] = at;
        self.next_serial = self.next_serial.wrapping_add(1);
    }

    /// Marks the priming dump: counting starts now, and ends from now on raise events.
    pub fn prime(&mut self) {
        self.primed_at.get_or_insert(self.now);
    }

    /// The entry in `slot`, as a dump shows it now.
    pub fn live_record(&self, cluster: &Cluster, slot: usize) -> FlowRecord {
        let serial = self.serial[slot];
        let plan = self.plan(cluster, serial);
        record(serial, &plan, self.now - self.born[slot])
    }

    /// Takes the DESTROY events waiting, oldest first, as the records the kernel reports.
    pub fn take_events(&mut self, cluster: &Cluster, out: &mut dyn FnMut(&FlowRecord)) -> usize {
        let pending = std::mem::take(&mut self.pending);
        for e in &pending {
            let plan = self.plan(cluster, e.serial);
            out(&record(e.serial, &plan, e.end - e.born));
        }
        let n = pending.len();
        self.pending = pending;
        self.pending.clear();
        // A burst of churn must not pin its peak forever.
        if self.pending.capacity() > 4 * 1024 {
            self.pending.shrink_to(1024);
        }
        n
    }

    /// The ground truth now: bytes each local pod and the node sent and received, per class and
    /// service, since the priming dump. Live flows count up to now, as a dump at this moment
    /// shows them; ended flows count in full. Empty before the first dump.
    pub fn truth(&self, cluster: &Cluster) -> Truth {
        let Some(primed_at) = self.primed_at else {
            return Truth::new();
        };
        let mut live = self.ended_truth.clone();
        for slot in 0..self.serial.len() {
            let plan = self.plan(cluster, self.serial[slot]);
            let (o, r) = watched(&plan, self.born[slot], primed_at, self.now);
            add(&mut live, cluster, self.local_node, &plan, o, r);
        }
        live
    }

    /// The flow with this serial: a pure function of the seed and the serial.
    fn plan(&self, cluster: &Cluster, serial: u32) -> Plan {
        let h0 =
            mix(self.spec.seed.rotate_left(17)
                ^ u64::from(serial).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let h1 = mix(h0);
        let h2 = mix(h1);
        let h3 = mix(h2);
        let local_pod = self.local_pods[pick(h1, self.local_pods.len())];
        let local_ip = cluster.pods()[local_pod as usize].ip;
        // Ephemeral ports 32768..60999, as Linux picks them.
        let client_port = 32_768 + (h2 % 28_232) as u16;
        let mut plan = Plan {
            protocol: 6,
            client: (local_ip, client_port),
            dialled: (local_ip, 0),
            server: (local_ip, 0),
            reply_to: (local_ip, client_port),
            status: ESTABLISHED,
            client_party: Party::Pod(local_pod),
            server_party: Party::Pod(local_pod),
            rate: (0, 0),
            base: (60 + (h3 >> 40) % 1_400, 60 + (h3 >> 52) % 1_400),
        };
        let node_flow = h0 % 1_000 < NODE_FLOWS_PERMILLE;
        let act = cluster
            .workload_of(local_pod)
            .and_then(|w| w.pick_act(h0.rotate_left(29)));
        let (behaviour, rate) = match act {
            Some(act) if !node_flow => act,
            // The node itself (kubelet, a hostNetwork DaemonSet) talks to another node.
            _ => {
                let nodes = cluster.nodes();
                let peer = pick(h2.rotate_left(37), nodes.len()) as u32;
                plan.client = (self.local_node_ip, client_port);
                plan.reply_to = plan.client;
                plan.client_party = Party::Node(self.local_node);
                plan.dialled = (nodes[peer as usize].ip, 10_250);
                plan.server = plan.dialled;
                plan.server_party = Party::Node(peer);
                plan.rate = rates(NODE_RATE, h3);
                return plan;
            }
        };
        plan.rate = rates(rate, h3);
        let pick_h = h2.rotate_left(41);
        let pod_ip = |p: u32| cluster.pods()[p as usize].ip;
        // A pod on another node (or this one) calls the local pod: the DNAT to it, if any,
        // happened on the caller's node, so this node sees the pod's own address.
        let called_by = |plan: &mut Plan, caller: Option<u32>, port: u16| {
            let Some(caller) = caller else { return };
            plan.client = (pod_ip(caller), client_port);
            plan.reply_to = plan.client;
            plan.client_party = Party::Pod(caller);
            plan.dialled = (local_ip, port);
            plan.server = plan.dialled;
        };
        let workload = |i: u32| cluster.workload(i);
        let target_port = |w: Option<&crate::behaviour::Workload>| {
            w.and_then(|w| w.spec.service).map_or(8080, |s| s.1)
        };
        match behaviour {
            Behaviour::Call { callee } => {
                let callee = workload(callee);
                let service = callee
                    .and_then(|w| w.service)
                    .and_then(|s| cluster.services().get(s as usize));
                let backend = callee.and_then(|w| w.route(cluster, self.local_node, pick_h));
                if let (Some(svc), Some(backend)) = (service, backend) {
                    plan.protocol = svc.protocol;
                    plan.dialled = (svc.cluster_ip, svc.port);
                    plan.server = (pod_ip(backend), svc.target_port);
                    plan.server_party = Party::Pod(backend);
                    plan.status |= IPS_DST_NAT | DST_NAT_DONE;
                }
            }
            Behaviour::CalledBy { caller } => {
                let me = cluster.workload_of(local_pod);
                let caller = match (me, workload(caller)) {
                    (Some(me), Some(c)) => me.caller_routed_to(cluster, c, self.local_node, pick_h),
                    _ => None,
                };
                if let Some(svc) = me
                    .and_then(|w| w.service)
                    .and_then(|s| cluster.services().get(s as usize))
                {
                    plan.protocol = svc.protocol;
                }
                called_by(&mut plan, caller, target_port(me));
            }
            Behaviour::Peer { peer } => {
                let peer = workload(peer);
                if let Some(p) = peer.and_then(|w| w.any_but(pick_h, local_pod)) {
                    plan.dialled = (pod_ip(p), target_port(peer));
                    plan.server = plan.dialled;
                    plan.server_party = Party::Pod(p);
                }
            }
            Behaviour::PeeredBy { caller } => {
                let caller = workload(caller).and_then(|w| w.any_but(pick_h, local_pod));
                called_by(
                    &mut plan,
                    caller,
                    target_port(cluster.workload_of(local_pod)),
                );
            }
            Behaviour::Scrape => {
                let all = cluster.pod_network_pods();
                let target = all[pick(pick_h, all.len())];
                plan.dialled = (pod_ip(target), 9_100);
                plan.server = plan.dialled;
                plan.server_party = Party::Pod(target);
            }
            Behaviour::ScrapedBy { scraper } => {
                let scraper = workload(scraper).and_then(|w| w.any_but(pick_h, local_pod));
                called_by(&mut plan, scraper, 9_100);
            }
            Behaviour::ServeUsers => {
                // A user's request through a load balancer that keeps the client's address.
                let user = internet_address(pick_h);
                plan.client = (user, client_port);
                plan.reply_to = plan.client;
                plan.client_party = Party::Outside {
                    class: TrafficClass::Internet,
                    service: None,
                    nat: false,
                };
                plan.dialled = (local_ip, target_port(cluster.workload_of(local_pod)));
                plan.server = plan.dialled;
            }
            Behaviour::CallInternet | Behaviour::ObjectStore => {
                let (ip, service) = if behaviour == Behaviour::ObjectStore {
                    // The bucket of the node's region: same-region S3 is what pods use.
                    let half = u32::from(cluster.nodes()[self.local_node as usize].region != 0);
                    let offset = half * 128 + pick(pick_h, 128) as u32;
                    let ip = Ipv4Addr::from(u32::from(OBJECT_STORE_NET.0) + offset);
                    (ip, Some(OBJECT_STORE_SERVICE))
                } else {
                    (internet_address(pick_h), None)
                };
                let class = if service.is_some() {
                    TrafficClass::InZone
                } else {
                    TrafficClass::Internet
                };
                plan.dialled = (ip, 443);
                plan.server = (ip, 443);
                // Masquerade keeps the port unless it is taken; vary it now and then.
                let masq_port = if h3 & 7 == 0 {
                    1_024 + (h3 >> 8) as u16 % 60_000
                } else {
                    client_port
                };
                plan.reply_to = (self.local_node_ip, masq_port);
                // Every node is behind the NAT gateway (the config's `nat-gateway` block), and
                // these are public addresses this pod dialled.
                plan.server_party = Party::Outside {
                    class,
                    service,
                    nat: true,
                };
                plan.status |= IPS_SRC_NAT | SRC_NAT_DONE;
            }
            Behaviour::ManagedDb => {
                let ip = Ipv4Addr::from(u32::from(MANAGED_DB_NET.0) + 10 + (h2 % 4) as u32);
                plan.dialled = (ip, 5432);
                plan.server = (ip, 5432);
                // In the VPC: the config's `nat-gateway.bypass` lists it.
                plan.server_party = Party::Outside {
                    class: cluster.managed_db_class(self.local_node),
                    service: Some(MANAGED_DB_SERVICE),
                    nat: false,
                };
            }
        }
        if plan.protocol == 17 {
            plan.status &= !(1 << 2); // UDP entries are rarely ASSURED; keep them realistic.
        }
        plan
    }
}

/// The byte rates of one flow of an activity whose active flows average `mean` each way:
/// three in ten idle (a pooled connection waiting), six trickle (up to the mean), one in ten
/// heavy (up to eight times the mean). Active flows average 0.7 of `mean`.
fn rates(mean: (u64, u64), h: u64) -> (u64, u64) {
    let scale = |m: u64, bits: u64| m * (bits & 0x3ff) / 1_024;
    match h % 10 {
        0..=2 => (0, 0),
        3..=8 => (scale(mean.0, h >> 20), scale(mean.1, h >> 30)),
        _ => (scale(8 * mean.0, h >> 20), scale(8 * mean.1, h >> 30)),
    }
}

/// An internet address picked by `h`.
fn internet_address(h: u64) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(INTERNET_NET.0) + pick(h, INTERNET_NET.1 as usize) as u32)
}

/// Counters of a flow `age_ms` old.
fn counters(plan: &Plan, age_ms: u32) -> (u64, u64) {
    let age = u64::from(age_ms);
    (
        plan.base.0 + plan.rate.0 * age / 1_000,
        plan.base.1 + plan.rate.1 * age / 1_000,
    )
}

/// Bytes of a flow (born at `born`, at time `at`) that the agent must count: all of them for a
/// flow born after priming, the growth since priming for one born before.
fn watched(plan: &Plan, born: u32, primed_at: u32, at: u32) -> (u64, u64) {
    let now = counters(plan, at - born);
    if born < primed_at {
        let then = counters(plan, primed_at.min(at) - born);
        (now.0 - then.0, now.1 - then.1)
    } else {
        now
    }
}

fn add(truth: &mut Truth, cluster: &Cluster, local: u32, plan: &Plan, sent: u64, received: u64) {
    // A pod that reaches itself (a Service whose backend it picked is itself) never leaves its
    // node: no cloud bills it, and nobody counts it.
    if plan.client_party == plan.server_party {
        return;
    }
    for (me, other, egress, ingress) in [
        (plan.client_party, plan.server_party, sent, received),
        (plan.server_party, plan.client_party, received, sent),
    ] {
        let owner = match me {
            Party::Pod(p) if cluster.pods()[p as usize].node == local => TruthOwner::Pod(p),
            Party::Node(n) if n == local => TruthOwner::Node,
            _ => continue,
        };
        let (class, service, nat) = match other {
            Party::Pod(p) => (
                cluster.class_between(local, cluster.pods()[p as usize].node),
                None,
                false,
            ),
            Party::Node(n) => (cluster.class_between(local, n), None, false),
            Party::Outside {
                class,
                service,
                nat,
            } => (class, service, nat),
        };
        for (direction, bytes) in [(Direction::Egress, egress), (Direction::Ingress, ingress)] {
            if bytes > 0 {
                *truth
                    .entry((owner, direction, class, service, nat))
                    .or_insert(0) += bytes;
            }
        }
    }
}

/// The kernel's `CTA_ID` for a serial: a bijection on `u32`, so live ids never collide, yet they
/// look as scattered as the kernel's hashed ids.
fn kernel_id(serial: u32) -> u32 {
    let mut x = serial.wrapping_mul(0x9e37_79b1);
    x ^= x >> 16;
    x = x.wrapping_mul(0x85eb_ca6b);
    x ^= x >> 13;
    x
}

fn record(serial: u32, plan: &Plan, age_ms: u32) -> FlowRecord {
    let (o, r) = counters(plan, age_ms);
    let tuple = |src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)| FlowTuple {
        src: IpAddr::V4(src.0),
        dst: IpAddr::V4(dst.0),
        src_port: src.1,
        dst_port: dst.1,
        protocol: plan.protocol,
    };
    FlowRecord {
        id: kernel_id(serial),
        zone: 0,
        status: plan.status,
        mark: 0,
        original: tuple(plan.client, plan.dialled),
        reply: tuple(plan.server, plan.reply_to),
        original_counters: Counters {
            bytes: o,
            packets: o.div_ceil(1_200),
        },
        reply_counters: Counters {
            bytes: r,
            packets: r.div_ceil(1_200),
        },
    }
}
