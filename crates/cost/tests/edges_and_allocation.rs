//! The edges view and allocation price the same bytes at the same cost. One set of connections
//! is turned into the counters the agents keep: each pod's byte counters by direction (what
//! allocation reads) and the workload pair counters (what the edges view reads, where an agent
//! adds what its end sent, and both directions when the other end has no agent). Both are
//! priced with the AWS sheet, and both totals are checked against a figure worked out by hand.

use std::path::Path;

use netcost_core::class::{Direction, TrafficClass};
use netcost_cost::allocate::{
    Aggregate, PodIdentity, SegmentUsage, Usage, allocate, remote_has_agent,
};
use netcost_cost::edges::{PairUsage, Workload, cross_zone_edges};
use netcost_cost::pricing::PriceSheet;

/// AWS bills per binary GB, 2^30 bytes (docs/pricing.md, "GB or GiB").
const GB: u64 = 1 << 30;

/// One end of a connection: a workload of the cluster (one pod, with an agent on its node), or
/// an end outside it, named by its service tag.
#[derive(Clone, Copy)]
struct End {
    name: &'static str,
    zone: &'static str,
    region: &'static str,
    /// `None` for a pod of the cluster; the service tag of an end outside it.
    service: Option<&'static str>,
}

const fn pod(name: &'static str, zone: &'static str, region: &'static str) -> End {
    End {
        name,
        zone,
        region,
        service: None,
    }
}

const fn outside(service: &'static str, zone: &'static str, region: &'static str) -> End {
    End {
        name: service,
        zone,
        region,
        service: Some(service),
    }
}

/// The client opened it; `up` bytes went to the server, `down` came back.
struct Connection {
    client: End,
    server: End,
    class: TrafficClass,
    up: u64,
    down: u64,
}

impl End {
    fn identity(&self) -> PodIdentity {
        PodIdentity {
            namespace: "shop".into(),
            pod: format!("{}-0", self.name),
            node: Some(format!("node-{}", self.zone)),
            region: Some(self.region.into()),
            workload: Some(("Deployment".into(), self.name.into())),
            ..PodIdentity::default()
        }
    }

    fn workload(&self) -> Workload {
        match self.service {
            None => Workload {
                namespace: "shop".into(),
                kind: "Deployment".into(),
                name: self.name.into(),
            },
            Some(service) => Workload {
                namespace: String::new(),
                kind: "External".into(),
                name: service.into(),
            },
        }
    }

    /// The zone a pair counter names: external ends have none.
    fn pair_zone(&self) -> &'static str {
        if self.service.is_some() {
            ""
        } else {
            self.zone
        }
    }
}

/// What `local`'s agent counts in its pod counter for bytes exchanged with `remote`. The
/// remote region is what the agent knows; the counters of an end outside the cluster carry
/// its service tag.
fn counter(
    local: End,
    remote: End,
    class: TrafficClass,
    direction: Direction,
    bytes: u64,
) -> Usage {
    Usage {
        pod: local.identity(),
        direction,
        class,
        service: remote.service.map(str::to_owned),
        remote_region: remote.service.is_none().then(|| remote.region.to_owned()),
        remote_has_agent: remote_has_agent(remote.service),
        nat_gateway: false,
        bytes,
    }
}

fn pod_counters(connections: &[Connection]) -> Vec<Usage> {
    let mut out = Vec::new();
    for c in connections {
        for (from, to, bytes) in [(c.client, c.server, c.up), (c.server, c.client, c.down)] {
            if from.service.is_none() {
                out.push(counter(from, to, c.class, Direction::Egress, bytes));
            }
            if to.service.is_none() {
                out.push(counter(to, from, c.class, Direction::Ingress, bytes));
            }
        }
    }
    out
}

fn pair_counters(connections: &[Connection]) -> Vec<PairUsage> {
    let pair = |c: &Connection, counted_in: &End, bytes: u64| PairUsage {
        client: c.client.workload(),
        client_zone: c.client.pair_zone().into(),
        server: c.server.workload(),
        server_zone: c.server.pair_zone().into(),
        class: c.class,
        bytes,
        // A backend maps a pair's zones to regions; an external end has no zone.
        client_region: (c.client.service.is_none()).then(|| c.client.region.into()),
        server_region: (c.server.service.is_none()).then(|| c.server.region.into()),
        counted_in_region: Some(counted_in.region.into()),
    };
    let mut out = Vec::new();
    for c in connections {
        match (c.client.service, c.server.service) {
            (None, None) => {
                out.push(pair(c, &c.client, c.up));
                out.push(pair(c, &c.server, c.down));
            }
            (None, Some(_)) => out.push(pair(c, &c.client, c.up + c.down)),
            (Some(_), None) => out.push(pair(c, &c.server, c.up + c.down)),
            (Some(_), Some(_)) => unreachable!("no agent sees two external ends"),
        }
    }
    out
}

#[test]
fn the_edges_view_and_allocation_give_the_same_cost_for_the_same_bytes() {
    use TrafficClass::{CrossRegion, CrossZone};
    let web = pod("web", "us-east-1a", "us-east-1");
    let db = pod("db", "us-east-1b", "us-east-1");
    let api = pod("api", "us-east-2a", "us-east-2");
    let etl = pod("etl", "ap-southeast-2a", "ap-southeast-2");
    let connections = [
        // Pod to pod across zones: 10 GB, both sides at $0.01/GB: $0.20.
        Connection {
            client: web,
            server: db,
            class: CrossZone,
            up: 7 * GB,
            down: 3 * GB,
        },
        // A database outside the cluster in another zone: 20 GB, both sides at $0.01/GB:
        // $0.40 (the database's side counted by nobody but web's agent).
        Connection {
            client: web,
            server: outside("orders-db", "us-east-1b", "us-east-1"),
            class: CrossZone,
            up: 8 * GB,
            down: 12 * GB,
        },
        // SQS in the same region: free (EC2 on-demand pricing, "Data Transfer within the same
        // AWS Region"): $0.
        Connection {
            client: web,
            server: outside("aws-sqs", "", "us-east-1"),
            class: CrossZone,
            up: 4 * GB,
            down: 6 * GB,
        },
        // An AWS range of the region (`AMAZON`): public addresses, billed on web's side only,
        // $0.01/GB each way: 10 GB, $0.10.
        Connection {
            client: web,
            server: outside("aws-amazon", "", "us-east-1"),
            class: CrossZone,
            up: 2 * GB,
            down: 8 * GB,
        },
        // N. Virginia to Ohio and back: $0.01/GB each way, 40 GB: $0.40.
        Connection {
            client: web,
            server: api,
            class: CrossRegion,
            up: 10 * GB,
            down: 30 * GB,
        },
        // Sydney at $0.098/GB out (pricing file), N. Virginia at $0.02/GB out:
        // 10 GB × $0.098 + 30 GB × $0.02 = $0.98 + $0.60 = $1.58.
        Connection {
            client: etl,
            server: web,
            class: CrossRegion,
            up: 10 * GB,
            down: 30 * GB,
        },
        // An object store in another region, 20 GB both ways, out of US regions at $0.02/GB:
        // $0.40.
        Connection {
            client: web,
            server: outside("aws-s3", "", "us-west-2"),
            class: CrossRegion,
            up: 5 * GB,
            down: 15 * GB,
        },
    ];
    let expected = 0.20 + 0.40 + 0.0 + 0.10 + 0.40 + 1.58 + 0.40;

    let sheet = PriceSheet::from_yaml_str(
        "provider: aws\ncross_region:\n  by_source_region: {ap-southeast-2: 0.098}\n",
        Path::new("pricing.yaml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let segment = SegmentUsage {
        internet_egress_before: 0,
        usages: pod_counters(&connections),
        ..SegmentUsage::default()
    };
    let (_, allocation) = allocate(&[segment], &sheet, &Aggregate::Workload, 3_600);
    let edges = cross_zone_edges(&pair_counters(&connections), &sheet, 3_600);
    let in_edges: f64 = edges.iter().map(|e| e.cost).sum();

    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    assert!(
        close(allocation.total_cost, expected),
        "allocation {} vs {expected}",
        allocation.total_cost
    );
    assert!(close(in_edges, expected), "edges {in_edges} vs {expected}");
    // Edge by edge: each connection's edge costs what its pods' rows cost for it.
    let web_api = edges
        .iter()
        .find(|e| e.client.name == "web" && e.server.name == "api");
    assert!(close(web_api.map_or(-1.0, |e| e.cost), 0.40), "{edges:?}");
    let etl_web = edges.iter().find(|e| e.client.name == "etl");
    assert!(close(etl_web.map_or(-1.0, |e| e.cost), 1.58), "{edges:?}");
}

#[test]
fn load_balancers_and_endpoints_cost_what_their_kind_says_in_both_views() {
    use TrafficClass::CrossZone;
    let web = pod("web", "us-east-1a", "us-east-1");
    // Each end outside the cluster sits in zone b; web sends it 6 GB and reads 4 GB back.
    let to = |service: &'static str| Connection {
        client: web,
        server: outside(service, "us-east-1b", "us-east-1"),
        class: CrossZone,
        up: 6 * GB,
        down: 4 * GB,
    };
    let connections = [
        // An ALB over private addresses in the VPC: free.
        to("web-alb"),
        // An NLB with cross-zone load balancing: both sides, 10 GB × $0.02 = $0.20.
        to("orders-nlb"),
        // An interface endpoint: $0.01/GB processed either way, no transfer charge: $0.10.
        to("sqs-endpoint"),
        // A gateway endpoint: free.
        to("s3-gateway"),
        // An end not named in service_kinds: both sides, as before, $0.20.
        to("orders-db"),
    ];
    let expected = 0.20 + 0.10 + 0.20;
    let sheet = PriceSheet::from_yaml_str(
        "provider: aws\nservice_kinds:\n  web-alb: application-load-balancer\n  orders-nlb: network-load-balancer\n  sqs-endpoint: interface-endpoint\n  s3-gateway: gateway-endpoint\n",
        Path::new("pricing.yaml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let segment = SegmentUsage {
        usages: pod_counters(&connections),
        ..SegmentUsage::default()
    };
    let (rows, allocation) = allocate(&[segment], &sheet, &Aggregate::Workload, 3_600);
    let edges = cross_zone_edges(&pair_counters(&connections), &sheet, 3_600);
    let in_edges: f64 = edges.iter().map(|e| e.cost).sum();
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    assert!(
        close(allocation.total_cost, expected),
        "allocation {} vs {expected}: {rows:?}",
        allocation.total_cost
    );
    assert!(close(in_edges, expected), "edges {in_edges} vs {expected}");
    let edge = |name: &str| {
        edges
            .iter()
            .find(|e| e.server.name == name)
            .map_or(-1.0, |e| e.cost)
    };
    assert!(close(edge("sqs-endpoint"), 0.10), "{edges:?}");
    assert!(close(edge("orders-nlb"), 0.20), "{edges:?}");
    // Without the kinds, every one of them is an ordinary end outside the cluster: $1.00.
    let segment = SegmentUsage {
        usages: pod_counters(&connections),
        ..SegmentUsage::default()
    };
    let (_, plain) = allocate(&[segment], &PriceSheet::aws(), &Aggregate::Workload, 3_600);
    assert!(close(plain.total_cost, 1.00), "{}", plain.total_cost);
}
