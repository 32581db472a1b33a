#![cfg(feature = "root-tests")]
//! End-to-end tests of `netcost agent` on the real kernel.
//!
//! Each test builds its own cluster of network namespaces (see `support/cluster.rs`), starts the
//! real binary on every node with `--source netlink`, sends traffic whose byte counts it knows
//! exactly, and checks each pod's counters, per direction and class, on the agent of every node
//! with a local end. The other classes of those counters must stay near zero, so a
//! misclassification fails as well as a miscount.
//!
//! Needs root; run with `cargo test -p netcost --features root-tests --test kernel_e2e`.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::cluster::{
    AgentOptions, BACKEND_PORT, CLUSTER_IP, CLUSTER_IP_PORT, Cluster, HAIRPIN_CLUSTER_IP,
    HOST_NETWORK_POD, INTERNET_HOST, NODE_PORT, NODE_PORT_TO_ANOTHER_NODE, NODE_PORT_TO_THIS_NODE,
    node, pod, pod_addr,
};
use support::expect::{Bytes, Class, expect_counts, node_end, pair, pod_end};
use support::netns::join;
use support::traffic::{Pause, Side, TcpFlow, TcpReport, UdpFlows, UdpReport};

const NETCOST: &str = env!("CARGO_BIN_EXE_netcost");
const MIB: u64 = 1 << 20;

/// The test cluster with an agent on every node, all ready: flows from here on count from zero.
fn cluster_with_agents(case: &str) -> Cluster {
    let mut cluster = Cluster::build(case);
    cluster.start_agents(NETCOST, AgentOptions::default());
    cluster
}

/// The internet host uploads 1 MiB to `connect` and downloads 3 MiB from `server`, whose
/// listener on the backend port the node's NAT leads to.
fn from_the_internet(cluster: &Cluster, server: &str, connect: SocketAddr) -> TcpReport {
    TcpFlow {
        client_ns: cluster.internet_ns(),
        server_ns: cluster.pod_ns(server),
        listen: pod_addr(server, false, BACKEND_PORT),
        connect,
        client_sends: MIB,
        server_sends: 3 * MIB,
        client_pace: None,
        client_pause: None,
    }
    .run()
}

#[test]
fn traffic_between_two_pods_on_one_node_is_in_zone_for_both_pods() {
    let cluster = cluster_with_agents("same-node");

    let flow = cluster.pod_to_pod("cli-a", "web-a", false).run();
    let ended = Instant::now();

    let (up, down) = (flow.client_to_server(), flow.server_to_client());
    expect_counts(
        &cluster,
        ended,
        &[
            pod_end("node-a1", "cli-a", Class::InZone, up, down),
            pod_end("node-a1", "web-a", Class::InZone, down, up),
        ]
        .concat(),
    );
}

#[test]
fn pod_traffic_across_zones_is_cross_zone_and_counted_once_at_each_end() {
    let cluster = cluster_with_agents("cross-zone");

    let flow = cluster.pod_to_pod("cli-a", "web-b", false).run();
    let ended = Instant::now();

    let (up, down) = (flow.client_to_server(), flow.server_to_client());
    expect_counts(
        &cluster,
        ended,
        &[
            pod_end("node-a1", "cli-a", Class::CrossZone, up, down),
            pod_end("node-b1", "web-b", Class::CrossZone, down, up),
        ]
        .concat(),
    );
}

#[test]
fn the_proc_source_counts_dnat_and_cross_zone_traffic_like_the_netlink_source() {
    // Kubecost reads /proc/net/nf_conntrack; `--source proc` must give the same results for
    // flows that are still in the table at a dump (it has no DESTROY events).
    let mut cluster = Cluster::build("proc-source");
    cluster.start_agents(
        NETCOST,
        AgentOptions {
            source: "proc",
            ..AgentOptions::default()
        },
    );

    let cross_zone = cluster.pod_to_pod("cli-a", "web-b", false).run();
    let via_service = TcpFlow {
        connect: SocketAddr::from((CLUSTER_IP, CLUSTER_IP_PORT)),
        ..cluster.pod_to_pod("cli-c", "web-a", false)
    }
    .run();
    let ended = Instant::now();

    expect_counts(
        &cluster,
        ended,
        &[
            pod_end(
                "node-a1",
                "cli-a",
                Class::CrossZone,
                cross_zone.client_to_server(),
                cross_zone.server_to_client(),
            ),
            pod_end(
                "node-b1",
                "web-b",
                Class::CrossZone,
                cross_zone.server_to_client(),
                cross_zone.client_to_server(),
            ),
            pod_end(
                "node-c2",
                "cli-c",
                Class::CrossRegion,
                via_service.client_to_server(),
                via_service.server_to_client(),
            ),
        ]
        .concat(),
    );
}

#[test]
fn a_single_host_agent_with_history_serves_the_cost_of_its_own_counters() {
    let mut cluster = Cluster::build("history");
    let history = cluster
        .dir
        .join("{node}.history")
        .to_string_lossy()
        .into_owned();
    cluster.start_agents(
        NETCOST,
        AgentOptions {
            extra_args: vec![
                "--history".into(),
                history,
                "--provider".into(),
                "aws".into(),
            ],
            ..AgentOptions::default()
        },
    );
    let flow = cluster.pod_to_pod("cli-a", "web-b", false).run();
    let ended = Instant::now();
    expect_counts(
        &cluster,
        ended,
        &pod_end(
            "node-a1",
            "cli-a",
            Class::CrossZone,
            flow.client_to_server(),
            flow.server_to_client(),
        ),
    );
    // The counters as the agent exports them, then the cost API of the same agent.
    let scrape = cluster.scrape("node-a1").unwrap_or_else(|e| panic!("{e}"));
    let counter = |direction: &str| {
        scrape
            .metric(&format!("kubecost_pod_network_{direction}_bytes_total"))
            .label("pod_name", "cli-a")
            .label("same_zone", "false")
            .label("same_region", "true")
            .value() as u64
    };
    let (sent, received) = (counter("egress"), counter("ingress"));
    let (status, body) = support::metrics::http_get(
        &cluster.node_ns("node-a1"),
        support::cluster::AGENT_PORT,
        "/api/v1/allocation?window=1h&aggregate=pod&filter=namespace:shop",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let rows = json["allocations"].as_array().cloned().unwrap_or_default();
    let row = rows
        .iter()
        .find(|r| r["name"] == "shop/cli-a")
        .unwrap_or_else(|| panic!("no shop/cli-a row: {body}"));
    assert_eq!(
        row["cross_zone"]["egress_bytes"].as_u64(),
        Some(sent),
        "{body}"
    );
    assert_eq!(
        row["cross_zone"]["ingress_bytes"].as_u64(),
        Some(received),
        "{body}"
    );
    // AWS: $0.01 per GB (2^30 bytes) in each direction across zones.
    let expected = (sent + received) as f64 / 1_073_741_824.0 * 0.01;
    let cost = row["cross_zone"]["cost"].as_f64().unwrap_or(-1.0);
    assert!((cost - expected).abs() < 1e-12, "cost {cost} vs {expected}");
}

#[test]
fn service_traffic_across_regions_is_cross_region_by_the_real_backend_never_in_zone() {
    let cluster = cluster_with_agents("cluster-ip");

    // cli-c on node-c2 talks to the ClusterIP, which node-c2 DNATs to web-a on node-a1. The
    // ClusterIP is in 10.0.0.0/8, which the config lists as in-zone.
    let flow = TcpFlow {
        connect: SocketAddr::from((CLUSTER_IP, CLUSTER_IP_PORT)),
        ..cluster.pod_to_pod("cli-c", "web-a", false)
    }
    .run();
    let ended = Instant::now();

    let (up, down) = (flow.client_to_server(), flow.server_to_client());
    expect_counts(
        &cluster,
        ended,
        &[
            pod_end("node-c2", "cli-c", Class::CrossRegion, up, down),
            pod_end("node-a1", "web-a", Class::CrossRegion, down, up),
            // One pair, client → server, over both agents: each adds what its end sent.
            [
                pair("node-c2", "cli-c", "web-a", Class::CrossRegion, up),
                pair("node-a1", "cli-c", "web-a", Class::CrossRegion, down),
            ],
        ]
        .concat(),
    );
}

#[test]
fn masqueraded_pod_traffic_to_an_internet_host_is_internet_egress_and_ingress() {
    let cluster = cluster_with_agents("snat-internet");

    let server = SocketAddr::from((INTERNET_HOST, 9000));
    let flow = TcpFlow {
        server_ns: cluster.internet_ns(),
        listen: server,
        connect: server,
        ..cluster.pod_to_pod("cli-a", "web-a", false)
    }
    .run();
    let ended = Instant::now();

    let (up, down) = (flow.client_to_server(), flow.server_to_client());
    expect_counts(
        &cluster,
        ended,
        &[
            &pod_end("node-a1", "cli-a", Class::Internet, up, down)[..],
            // The internet runs no agent, so cli-a's agent counts both directions of the pair.
            &[pair(
                "node-a1",
                "cli-a",
                "internet",
                Class::Internet,
                up.plus(down),
            )][..],
        ]
        .concat(),
    );
    // node-a1 is behind a NAT gateway (the test config's `nat-gateway` block): the connection
    // cli-a opened to a public address went through it, every byte either way.
    let metrics = cluster.scrape("node-a1").unwrap_or_else(|e| panic!("{e}"));
    for (metric, bytes) in [
        ("kubecost_pod_network_egress_bytes_total", up),
        ("kubecost_pod_network_ingress_bytes_total", down),
    ] {
        let through = metrics
            .metric(metric)
            .label("pod_name", "cli-a")
            .label("nat_gateway", "true")
            .value();
        assert!(
            bytes.contains(through),
            "{metric} through the gateway: {through} vs {bytes}"
        );
    }
}

#[test]
fn internet_traffic_through_a_nodeport_is_internet_traffic_of_the_backend_pod() {
    let cluster = cluster_with_agents("nodeport");

    // The internet host uploads 1 MiB to node-b1's NodePort and downloads 3 MiB; node-b1 DNATs
    // it to web-b.
    let flow = from_the_internet(
        &cluster,
        "web-b",
        SocketAddr::from((node("node-b1").ipv4(), NODE_PORT)),
    );
    let ended = Instant::now();

    expect_counts(
        &cluster,
        ended,
        &pod_end(
            "node-b1",
            "web-b",
            Class::Internet,
            flow.server_to_client(),
            flow.client_to_server(),
        ),
    );
}

#[test]
fn internet_traffic_through_a_nodeport_with_snat_to_another_node_is_the_backends_once_and_a_hop() {
    let cluster = cluster_with_agents("nodeport-snat");

    // The internet host uploads 1 MiB to node-a1's NodePort and downloads 3 MiB; node-a1 DNATs
    // it to web-b on node-b1 (zone-b) and SNATs it to its own address, as kube-proxy does for
    // `externalTrafficPolicy: Cluster`.
    let flow = from_the_internet(
        &cluster,
        "web-b",
        SocketAddr::from((node("node-a1").ipv4(), NODE_PORT_TO_ANOTHER_NODE)),
    );
    let ended = Instant::now();

    let (up, down) = (flow.client_to_server(), flow.server_to_client());
    expect_counts(
        &cluster,
        ended,
        &[
            // The internet leg is web-b's, booked by the agent of the node that translated it.
            &pod_end("node-a1", "web-b", Class::Internet, down, up)[..],
            // The hop: web-b's side at its node, node-a1's side as node-a1's own traffic.
            &pod_end("node-b1", "web-b", Class::CrossZone, down, up)[..],
            &node_end("node-a1", Class::CrossZone, up, down)[..],
            &[
                pair(
                    "node-a1",
                    "internet",
                    "web-b",
                    Class::Internet,
                    up.plus(down),
                ),
                pair("node-a1", "node", "web-b", Class::CrossZone, up),
                pair("node-b1", "node", "web-b", Class::CrossZone, down),
            ][..],
        ]
        .concat(),
    );
    // node-a1 is behind a NAT gateway, but a connection from the internet to its NodePort
    // comes in through the load balancer's path, not the gateway's.
    let metrics = cluster.scrape("node-a1").unwrap_or_else(|e| panic!("{e}"));
    let through: f64 = [
        "kubecost_pod_network_egress_bytes_total",
        "kubecost_pod_network_ingress_bytes_total",
        "netcost_node_network_egress_bytes_total",
        "netcost_node_network_ingress_bytes_total",
    ]
    .iter()
    .map(|m| metrics.metric(m).label("nat_gateway", "true").value())
    .sum();
    assert_eq!(through, 0.0);
}

#[test]
fn internet_traffic_through_a_nodeport_with_snat_to_a_local_backend_is_internet_traffic_of_the_pod()
{
    let cluster = cluster_with_agents("nodeport-snat-local");

    // node-a1's NodePort 30082 goes to its own web-a, still SNATed to node-a1 (the `Cluster`
    // policy): no hop, and the client's address is in the entry.
    let flow = from_the_internet(
        &cluster,
        "web-a",
        SocketAddr::from((node("node-a1").ipv4(), NODE_PORT_TO_THIS_NODE)),
    );
    let ended = Instant::now();

    let (up, down) = (flow.client_to_server(), flow.server_to_client());
    expect_counts(
        &cluster,
        ended,
        &[
            &pod_end("node-a1", "web-a", Class::Internet, down, up)[..],
            &node_end(
                "node-a1",
                Class::Internet,
                Bytes::exactly(0),
                Bytes::exactly(0),
            )[..],
        ]
        .concat(),
    );
}

#[test]
fn a_pod_reaching_itself_through_its_service_is_loopback_not_traffic() {
    let cluster = cluster_with_agents("hairpin");

    // web-a calls the ClusterIP that node-a1 DNATs back to web-a itself, masqueraded.
    let flow = TcpFlow {
        client_ns: cluster.pod_ns("web-a"),
        server_ns: cluster.pod_ns("web-a"),
        listen: pod_addr("web-a", false, BACKEND_PORT),
        connect: SocketAddr::from((HAIRPIN_CLUSTER_IP, CLUSTER_IP_PORT)),
        client_sends: MIB,
        server_sends: 3 * MIB,
        client_pace: None,
        client_pause: None,
    }
    .run();
    let ended = Instant::now();
    let moved = flow.client.sent + flow.server.sent;

    // Both directions never left node-a1: no class of web-a's holds them, and the agent counts
    // them as loopback (with the test's own scrapes of the agent, which never leave the node
    // either).
    expect_counts(
        &cluster,
        ended,
        &pod_end(
            "node-a1",
            "web-a",
            Class::InZone,
            Bytes::exactly(0),
            Bytes::exactly(0),
        ),
    );
    let loopback = cluster
        .scrape("node-a1")
        .unwrap_or_else(|e| panic!("{e}"))
        .metric("netcost_unattributed_bytes_total")
        .label("reason", "loopback")
        .value();
    assert!(
        loopback >= moved as f64,
        "loopback {loopback} vs the flow's {moved} bytes of payload"
    );
}

#[test]
fn traffic_of_a_node_itself_to_a_pod_in_another_zone_is_cross_zone_node_traffic() {
    let cluster = cluster_with_agents("node-traffic");

    // node-a1's own network namespace (what kubelet or a hostNetwork pod would use) talks to
    // web-b. Its address is in 192.168.0.0/16, which the config lists as in-zone.
    let flow = TcpFlow {
        client_ns: cluster.node_ns("node-a1"),
        ..cluster.pod_to_pod("cli-a", "web-b", false)
    }
    .run();
    let ended = Instant::now();

    let (up, down) = (flow.client_to_server(), flow.server_to_client());
    expect_counts(
        &cluster,
        ended,
        &[
            node_end("node-a1", Class::CrossZone, up, down),
            pod_end("node-b1", "web-b", Class::CrossZone, down, up),
        ]
        .concat(),
    );
}

#[test]
fn ipv6_pod_traffic_across_zones_is_cross_zone_at_both_ends() {
    let cluster = cluster_with_agents("ipv6-cross-zone");

    let flow = cluster.pod_to_pod("cli-a", "web-b", true).run();
    let ended = Instant::now();

    let (up, down) = (flow.client_to_server(), flow.server_to_client());
    expect_counts(
        &cluster,
        ended,
        &[
            pod_end("node-a1", "cli-a", Class::CrossZone, up, down),
            pod_end("node-b1", "web-b", Class::CrossZone, down, up),
        ]
        .concat(),
    );
}

#[test]
fn short_udp_flows_that_expire_between_two_dumps_are_counted_to_the_byte() {
    const INTERVAL: Duration = Duration::from_secs(5);
    const PORT: u16 = 5353;
    let mut cluster = cluster_with_one_second_udp_timeout("udp-expiry");
    // Every agent dumps first after it starts, so none dumps again before this plus INTERVAL.
    let started = Instant::now();
    cluster.start_agents(
        NETCOST,
        AgentOptions {
            interval: INTERVAL,
            ..AgentOptions::default()
        },
    );

    let server = pod_addr("web-b", false, PORT);
    let flows = UdpFlows {
        client_ns: cluster.pod_ns("cli-a"),
        server_ns: cluster.pod_ns("web-b"),
        listen: server,
        connect: server,
        flows: 200,
        first_client_port: 40000,
        request: 1000,
        reply: 500,
    }
    .run();
    let ended = Instant::now();

    // The premise: every entry came and went between the agents' first and second dumps, so only
    // their DESTROY events can have told the agents about them.
    let gone = udp_entries_gone(&cluster, PORT, Duration::from_secs(4));
    assert!(
        gone && started.elapsed() < INTERVAL,
        "the UDP entries must expire within {INTERVAL:?} of the agents' start, but they took \
         {:?} (gone: {gone}); the test cannot show what it claims",
        started.elapsed()
    );

    expect_udp_cli_a_to_web_b(&cluster, ended, &flows);
}

#[test]
fn a_burst_of_fifteen_thousand_short_flows_racing_the_dumps_is_counted_to_the_byte() {
    // Churn as on a busy node: every flow lives for one request and its reply, the kernel ends
    // them one second later in the garbage collector's bursts, and the agents dump every second,
    // so DESTROY events arrive while dumps are running and overtake their batches.
    const PORT: u16 = 5354;
    let mut cluster = cluster_with_one_second_udp_timeout("udp-churn");
    cluster.start_agents(NETCOST, AgentOptions::default());

    let server = pod_addr("web-b", false, PORT);
    let flows = UdpFlows {
        client_ns: cluster.pod_ns("cli-a"),
        server_ns: cluster.pod_ns("web-b"),
        listen: server,
        connect: server,
        flows: 15_000,
        first_client_port: 20_000,
        request: 100,
        reply: 40,
    }
    .run();
    let ended = Instant::now();
    let gone = udp_entries_gone(&cluster, PORT, Duration::from_secs(20));
    assert!(gone, "the UDP entries did not expire");

    expect_udp_cli_a_to_web_b(&cluster, ended, &flows);
    for node in ["node-a1", "node-b1"] {
        let metrics = cluster
            .scrape(node)
            .unwrap_or_else(|e| panic!("scrape {node}: {e}"));
        let lost = metrics
            .metric("netcost_conntrack_events_dropped_total")
            .label("outcome", "lost")
            .value();
        assert_eq!(lost, 0.0, "{node} lost events");
        assert_eq!(
            metrics.metric("netcost_conntrack_events_reliable").value(),
            1.0,
            "{node}: reliable delivery is the default"
        );
    }
}

#[test]
fn an_agent_killed_and_restarted_mid_transfer_neither_loses_nor_doubles_bytes() {
    let mut cluster = cluster_with_agents("kill-restart");

    // 16 MiB paced over 6 s from cli-a to web-b; web-b sends its 1 MiB at once, so those bytes
    // were counted and checkpointed before the kill. The restarted agent goes on from the
    // checkpoint's baselines, so both ends are held to the same TCP accounting bounds as a run
    // without a restart: no tolerance for the restart itself.
    let transfer = TcpFlow {
        client_sends: 16 * MIB,
        client_pace: Some(Duration::from_secs(6)),
        ..cluster.pod_to_pod("cli-a", "web-b", false)
    }
    .spawn();
    std::thread::sleep(Duration::from_millis(2500));
    cluster.kill_agent("node-b1");
    std::thread::sleep(Duration::from_millis(500));
    cluster.restart_agent("node-b1");
    assert!(
        !transfer.is_finished(),
        "the transfer ended before the agent was back; the restart was not mid-transfer"
    );
    let flow: TcpReport = join(transfer);
    let ended = Instant::now();

    let (up, down) = (flow.client_to_server(), flow.server_to_client());
    expect_counts(
        &cluster,
        ended,
        &[
            pod_end("node-a1", "cli-a", Class::CrossZone, up, down),
            pod_end("node-b1", "web-b", Class::CrossZone, down, up),
        ]
        .concat(),
    );
}

#[test]
fn bytes_that_a_flow_sent_before_the_agents_started_are_not_counted() {
    let mut cluster = Cluster::build("baseline");

    // cli-a sends 4 MiB to web-b, stops, and sends 2 MiB more once the agents run; web-b sends
    // nothing but ACKs.
    let before = 4 * MIB;
    let pause = Pause::after(before);
    let transfer = TcpFlow {
        client_sends: before + 2 * MIB,
        server_sends: 0,
        client_pause: Some(pause.clone()),
        ..cluster.pod_to_pod("cli-a", "web-b", false)
    }
    .spawn();
    pause.wait_reached();
    // Let the bytes already written leave the socket and be acknowledged.
    std::thread::sleep(Duration::from_millis(300));
    cluster.start_agents(NETCOST, AgentOptions::default());
    pause.resume();
    let flow = join(transfer);
    let ended = Instant::now();

    let after = Side {
        sent: flow.client.sent - before,
        ..flow.client
    };
    let (up, down) = (
        Bytes::tcp(after, flow.server, false),
        Bytes::tcp(flow.server, after, false),
    );
    expect_counts(
        &cluster,
        ended,
        &[
            pod_end("node-a1", "cli-a", Class::CrossZone, up, down),
            pod_end("node-b1", "web-b", Class::CrossZone, down, up),
        ]
        .concat(),
    );
}

/// The harness itself, with no agent: every case's path is routed and NATed as in a real cluster,
/// and the node's conntrack table counts it. When this fails, the agent tests say nothing.
#[test]
fn the_test_cluster_routes_and_nats_every_path_and_conntrack_counts_it() {
    let cluster = Cluster::build("harness");

    cluster.pod_to_pod("cli-a", "web-b", true).run();
    TcpFlow {
        connect: SocketAddr::from((CLUSTER_IP, CLUSTER_IP_PORT)),
        ..cluster.pod_to_pod("cli-c", "web-a", false)
    }
    .run();
    let internet = SocketAddr::from((INTERNET_HOST, 9000));
    TcpFlow {
        server_ns: cluster.internet_ns(),
        listen: internet,
        connect: internet,
        ..cluster.pod_to_pod("cli-a", "web-a", false)
    }
    .run();
    TcpFlow {
        client_ns: cluster.internet_ns(),
        connect: SocketAddr::from((node("node-b1").ipv4(), NODE_PORT)),
        ..cluster.pod_to_pod("cli-b", "web-b", false)
    }
    .run();

    let (web_a, web_b) = (pod("web-a"), pod("web-b"));
    let (cli_a, cli_c) = (pod("cli-a"), pod("cli-c"));
    let expectations = [
        // Plain routing between nodes, over IPv6.
        (
            "node-a1",
            vec![
                "-f".to_owned(),
                "ipv6".to_owned(),
                "-d".to_owned(),
                web_b.ipv6().to_string(),
            ],
            format!("src={} dst={}", web_b.ipv6(), cli_a.ipv6()),
        ),
        // DNAT of the ClusterIP on the client's node: the reply comes from the backend.
        (
            "node-c2",
            vec!["-d".to_owned(), CLUSTER_IP.to_string()],
            format!(
                "src={} dst={} sport={BACKEND_PORT}",
                web_a.ipv4(),
                cli_c.ipv4()
            ),
        ),
        // Masquerade to the internet: the reply goes to the node.
        (
            "node-a1",
            vec!["-d".to_owned(), INTERNET_HOST.to_string()],
            format!(
                "src={INTERNET_HOST} dst={} sport=9000",
                node("node-a1").ipv4()
            ),
        ),
        // DNAT of the NodePort: the reply comes from the backend pod.
        (
            "node-b1",
            vec!["-s".to_owned(), INTERNET_HOST.to_string()],
            format!(
                "src={} dst={INTERNET_HOST} sport={BACKEND_PORT}",
                web_b.ipv4()
            ),
        ),
    ];
    for (node, filter, reply) in expectations {
        let filter: Vec<&str> = filter.iter().map(String::as_str).collect();
        let table = cluster.conntrack(node, &filter);
        assert!(
            table.contains(&reply) && table.contains("bytes="),
            "{node}: expected an accounted entry with reply tuple `{reply}`, got:\n{table}"
        );
    }
}

/// Polls `done` every 100 ms for up to `limit`; whether it became true.
/// UDP flows from cli-a (zone a) to web-b (zone b), counted exactly at both ends, as pod
/// counters and as the workload pair.
fn expect_udp_cli_a_to_web_b(cluster: &Cluster, ended: Instant, flows: &UdpReport) {
    let (up, down) = (
        flows.client_to_server_bytes(),
        flows.server_to_client_bytes(),
    );
    expect_counts(
        cluster,
        ended,
        &[
            pod_end("node-a1", "cli-a", Class::CrossZone, up, down),
            pod_end("node-b1", "web-b", Class::CrossZone, down, up),
            [
                pair("node-a1", "cli-a", "web-b", Class::CrossZone, up),
                pair("node-b1", "cli-a", "web-b", Class::CrossZone, down),
            ],
        ]
        .concat(),
    );
}

/// The test cluster with `nf_conntrack_udp_timeout` at 1 s on node-a1 and node-b1, so UDP flows
/// end a second after their last packet, in the garbage collector's bursts.
fn cluster_with_one_second_udp_timeout(case: &str) -> Cluster {
    let cluster = Cluster::build(case);
    for node in ["node-a1", "node-b1"] {
        cluster.node_sysctl(
            node,
            &[
                ("net.netfilter.nf_conntrack_udp_timeout", "1"),
                ("net.netfilter.nf_conntrack_udp_timeout_stream", "1"),
            ],
        );
    }
    cluster
}

/// Waits up to `limit` for node-a1's and node-b1's tables to hold no UDP entry to `port`.
fn udp_entries_gone(cluster: &Cluster, port: u16, limit: Duration) -> bool {
    let port = port.to_string();
    wait_until(limit, || {
        ["node-a1", "node-b1"].iter().all(|node| {
            !cluster
                .conntrack(node, &["-p", "udp", "--orig-port-dst", &port])
                .contains("dport=")
        })
    })
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What the hostNetwork pod's helper process runs: `flows` TCP flows one after the other, from
/// `client_ns` to `addr` in `server_ns`, `up` bytes up and `down` bytes down each.
struct HostNetworkJob<'a> {
    cgroup: &'a std::path::Path,
    client_ns: String,
    server_ns: String,
    addr: SocketAddr,
    flows: u32,
    up: u64,
    down: u64,
}

/// Environment variable that hands a job to [`host_network_pod_helper`].
const HOSTNET_JOB: &str = "NCE2E_HOSTNET_JOB";

/// Runs `job` in a process of its own, this test binary again running only
/// [`host_network_pod_helper`], which moves itself into the pod's cgroup before it opens a
/// socket: a socket belongs to the cgroup of the process that created it, and cgroup v2 moves
/// whole processes. Returns what each flow did, from the helper's own counts.
fn run_as_host_network_pod(job: &HostNetworkJob<'_>) -> Vec<TcpReport> {
    let spec = format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n{}",
        job.cgroup.display(),
        job.client_ns,
        job.server_ns,
        job.addr,
        job.flows,
        job.up,
        job.down
    );
    let out = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args([
            "host_network_pod_helper",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HOSTNET_JOB, spec)
        .output()
        .expect("run the helper");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the helper failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: Vec<TcpReport> = stdout
        .lines()
        // libtest may have written the test's name on the same line.
        .filter_map(|line| line.split_once("HOSTNET-FLOW ").map(|(_, rest)| rest))
        .map(|line| {
            let n: Vec<u64> = line
                .split(' ')
                .map(|x| x.parse().expect("a number"))
                .collect();
            TcpReport {
                client: Side {
                    sent: n[0],
                    writes: n[1],
                },
                server: Side {
                    sent: n[2],
                    writes: n[3],
                },
                v6: job.addr.is_ipv6(),
            }
        })
        .collect();
    assert_eq!(reports.len(), job.flows as usize, "{stdout}");
    reports
}

/// Not a test: the body of [`run_as_host_network_pod`]'s helper process. Ignored, so it runs only
/// when asked by name with `--ignored`, and then only with a job.
#[test]
#[ignore = "the helper process of the hostNetwork pod tests"]
fn host_network_pod_helper() {
    let spec = std::env::var(HOSTNET_JOB).expect("run by run_as_host_network_pod with a job");
    let f: Vec<&str> = spec.lines().collect();
    std::fs::write(
        std::path::Path::new(f[0]).join("cgroup.procs"),
        std::process::id().to_string(),
    )
    .expect("move into the pod's cgroup");
    let addr: SocketAddr = f[3].parse().expect("address");
    for _ in 0..f[4].parse::<u32>().expect("flows") {
        let report = TcpFlow {
            client_ns: f[1].to_owned(),
            server_ns: f[2].to_owned(),
            listen: addr,
            connect: addr,
            client_sends: f[5].parse().expect("up"),
            server_sends: f[6].parse().expect("down"),
            client_pace: None,
            client_pause: None,
        }
        .run();
        println!(
            "HOSTNET-FLOW {} {} {} {}",
            report.client.sent, report.client.writes, report.server.sent, report.server.writes
        );
    }
}

/// The sum of the counter ranges of many flows, one direction.
fn sum_of(reports: &[TcpReport], direction: fn(&TcpReport) -> Bytes) -> Bytes {
    reports
        .iter()
        .map(direction)
        .fold(Bytes::exactly(0), Bytes::plus)
}

#[test]
fn a_host_network_pods_long_flows_are_its_own_and_the_node_keeps_its_own() {
    let mut cluster = Cluster::build("hostnet-long");
    let cgroup = cluster.host_network_cgroup();
    cluster.start_agents(NETCOST, AgentOptions::default());

    // Meanwhile node-a1's own processes (this test, in no pod's cgroup) talk to web-b too, on a
    // port of their own: the hostNetwork job below listens on web-b's backend port while this
    // flow may still run.
    let node_port = pod_addr("web-b", false, BACKEND_PORT + 1);
    let node_flow = TcpFlow {
        client_ns: cluster.node_ns("node-a1"),
        listen: node_port,
        connect: node_port,
        client_sends: 2 * MIB,
        server_sends: MIB / 2,
        ..cluster.pod_to_pod("cli-b", "web-b", false)
    }
    .spawn();
    // ingress-a calls web-b (3 MiB up, 1 MiB down)...
    let outbound = run_as_host_network_pod(&HostNetworkJob {
        cgroup: &cgroup,
        client_ns: cluster.node_ns("node-a1"),
        server_ns: cluster.pod_ns("web-b"),
        addr: pod_addr("web-b", false, BACKEND_PORT),
        flows: 1,
        up: 3 * MIB,
        down: MIB,
    });
    // ...and cli-b calls ingress-a on the node's address (1 MiB up, 2 MiB down).
    let inbound = run_as_host_network_pod(&HostNetworkJob {
        cgroup: &cgroup,
        client_ns: cluster.pod_ns("cli-b"),
        server_ns: cluster.node_ns("node-a1"),
        addr: SocketAddr::from((node("node-a1").ipv4(), 9443)),
        flows: 1,
        up: MIB,
        down: 2 * MIB,
    });
    let node_flow = join(node_flow);
    let ended = Instant::now();

    let (out, inb) = (&outbound[0], &inbound[0]);
    expect_counts(
        &cluster,
        ended,
        &[
            pod_end(
                "node-a1",
                HOST_NETWORK_POD.name,
                Class::CrossZone,
                out.client_to_server().plus(inb.server_to_client()),
                out.server_to_client().plus(inb.client_to_server()),
            ),
            node_end(
                "node-a1",
                Class::CrossZone,
                node_flow.client_to_server(),
                node_flow.server_to_client(),
            ),
            // Its workload pairs: client of web-b, server of cli-b (what node-a1's end sent).
            [
                pair(
                    "node-a1",
                    HOST_NETWORK_POD.name,
                    "web-b",
                    Class::CrossZone,
                    out.client_to_server(),
                ),
                pair(
                    "node-a1",
                    "cli-b",
                    HOST_NETWORK_POD.name,
                    Class::CrossZone,
                    inb.server_to_client(),
                ),
            ],
            // The far ends see node-a1's address, as before.
            pod_end(
                "node-b1",
                "web-b",
                Class::CrossZone,
                out.server_to_client().plus(node_flow.server_to_client()),
                out.client_to_server().plus(node_flow.client_to_server()),
            ),
            pod_end(
                "node-b1",
                "cli-b",
                Class::CrossZone,
                inb.client_to_server(),
                inb.server_to_client(),
            ),
        ]
        .concat(),
    );
    let metrics = cluster.scrape("node-a1").expect("scrape node-a1");
    assert_eq!(
        metrics
            .metric("netcost_host_network_sockets_enabled")
            .value(),
        1.0
    );
}

/// Bytes of the hostNetwork pod and of the node in one class and direction, on node-a1.
fn host_and_node(cluster: &Cluster, direction: &str) -> (f64, f64) {
    let metrics = cluster.scrape("node-a1").expect("scrape node-a1");
    let pod_metric = format!("kubecost_pod_network_{direction}_bytes_total");
    let node_metric = format!("netcost_node_network_{direction}_bytes_total");
    let pod = metrics
        .metric(&pod_metric)
        .label("pod_name", HOST_NETWORK_POD.name)
        .label("internet", "false")
        .label("same_zone", "false")
        .label("same_region", "true")
        .value();
    let node = metrics
        .metric(&node_metric)
        .label("node", "node-a1")
        .label("internet", "false")
        .label("same_zone", "false")
        .label("same_region", "true")
        .value();
    (pod, node)
}

#[test]
fn a_host_network_pods_short_flows_are_its_own_from_their_new_events() {
    // Each flow opens, moves 20 KiB up and 4 KiB down, and closes within a millisecond or so,
    // long before a dump (every 5 s) can see its socket: only the lookup on its NEW event can
    // find it. Outbound flows need that lookup; inbound ones can also be found by their
    // listener, as long as it is open.
    const FLOWS: u32 = 300;
    let mut cluster = Cluster::build("hostnet-short");
    let cgroup = cluster.host_network_cgroup();
    cluster.start_agents(
        NETCOST,
        AgentOptions {
            interval: Duration::from_secs(5),
            ..AgentOptions::default()
        },
    );
    // A scrape sees the series at zero, so that their first bytes are handed out at once.
    host_and_node(&cluster, "egress");
    let outbound = run_as_host_network_pod(&HostNetworkJob {
        cgroup: &cgroup,
        client_ns: cluster.node_ns("node-a1"),
        server_ns: cluster.pod_ns("web-b"),
        addr: pod_addr("web-b", false, BACKEND_PORT),
        flows: FLOWS,
        up: 20 << 10,
        down: 4 << 10,
    });
    let up = sum_of(&outbound, TcpReport::client_to_server);
    let down = sum_of(&outbound, TcpReport::server_to_client);
    // Two cycles after the traffic every flow has been dumped (conntrack keeps closed TCP flows
    // for two minutes), so every byte is counted, to the pod or to the node; a few more scrapes
    // let series that waited for a scrape's zero hand out their bytes.
    std::thread::sleep(cluster.interval() * 2 + Duration::from_millis(500));
    let deadline = Instant::now() + cluster.interval() * 3;
    let ((pod_up, node_up), (pod_down, node_down)) = loop {
        let up_now = host_and_node(&cluster, "egress");
        let down_now = host_and_node(&cluster, "ingress");
        let counted = up.contains(up_now.0 + up_now.1) && down.contains(down_now.0 + down_now.1);
        if counted || Instant::now() > deadline {
            break (up_now, down_now);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let share = pod_up / (pod_up + node_up).max(1.0);
    let metrics = cluster.scrape("node-a1").expect("scrape node-a1");
    eprintln!(
        "short outbound flows: {FLOWS} flows; of the {} bytes up conntrack counted ({up} for \
         the payload sent), {pod_up} were booked to the pod ({:.1}%) and {node_up} left with \
         the node; down {pod_down} / {node_down}; NEW-event lookups {}, matched {}",
        pod_up + node_up,
        share * 100.0,
        metrics
            .metric("netcost_host_network_new_flow_lookups_total")
            .value(),
        metrics
            .metric("netcost_host_network_new_flow_matches_total")
            .value(),
    );
    assert!(
        up.contains(pod_up + node_up) && down.contains(pod_down + node_down),
        "every byte is counted once, to the pod or the node: up {pod_up} + {node_up} in {up}, \
         down {pod_down} + {node_down} in {down}\n{}",
        cluster.diagnostics("node-a1")
    );
    assert!(
        share >= 0.9,
        "the NEW event lookups found {:.1}% of the short flows' bytes, expected at least 90%\n{}",
        share * 100.0,
        cluster.diagnostics("node-a1")
    );
}
