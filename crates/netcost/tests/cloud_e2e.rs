#![cfg(feature = "root-tests")]
//! End-to-end: traffic from a pod to an address inside a published AWS S3 range is tagged
//! `service="aws-s3"` by the real agent reading the real `ip-ranges.json`.
//!
//! The test cluster's internet host gets one extra address, taken from an S3 prefix of the July
//! 2025 AWS file (`data/cloud-ip-ranges/aws-ip-ranges.json`). That address exists only
//! inside the test's own network namespaces: no packet leaves them. The nodes' regions are
//! `region-1`/`region-2`, not AWS regions, so the range is reached over the internet: the class
//! is internet and the service label says which service.
//!
//! Needs root; run with `cargo test -p netcost --features root-tests --test cloud_e2e`.

#[allow(dead_code)]
mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use netcost_core::cloud::parse::aws;
use support::cluster::{AgentOptions, Cluster};
use support::expect::{Class, expect_counts, pod_end};
use support::traffic::TcpFlow;

const NETCOST: &str = env!("CARGO_BIN_EXE_netcost");
const MIB: u64 = 1 << 20;

fn aws_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/cloud-ip-ranges/aws-ip-ranges.json")
}

/// An address in the first IPv4 S3 prefix of the AWS file (the 11th address of the prefix).
fn s3_address() -> (Ipv4Addr, IpNet) {
    let path = aws_file();
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let data = aws(&bytes, &path.display().to_string()).unwrap_or_else(|e| panic!("{e}"));
    let entry = data
        .entries
        .iter()
        .find(|e| &*e.service == "aws-s3" && matches!(e.net, IpNet::V4(n) if n.prefix_len() <= 28))
        .unwrap_or_else(|| panic!("no IPv4 S3 prefix in {}", path.display()));
    let IpAddr::V4(network) = entry.net.network() else {
        unreachable!("filtered to IPv4 above")
    };
    (Ipv4Addr::from(u32::from(network) + 10), entry.net)
}

#[test]
fn pod_traffic_to_an_address_in_an_s3_range_carries_service_aws_s3() {
    let (s3, prefix) = s3_address();
    let mut cluster = Cluster::build("cloud-s3");
    cluster.add_internet_address(s3);
    // Kubecost's config with the AWS switch on; the others stay off.
    std::fs::write(
        cluster.dir.join("config.yaml"),
        "destinations:\n  in-zone: [\"10.0.0.0/8\", \"192.168.0.0/16\"]\nservices:\n  amazon-web-services: true\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    cluster.start_agents(
        NETCOST,
        AgentOptions {
            extra_args: vec![
                "--cloud-ranges".into(),
                format!("aws={}", aws_file().display()),
            ],
            interval: Duration::from_secs(1),
            ..AgentOptions::default()
        },
    );

    let server = SocketAddr::from((s3, 9000));
    let flow = TcpFlow {
        server_ns: cluster.internet_ns(),
        listen: server,
        connect: server,
        client_sends: 2 * MIB,
        server_sends: MIB,
        ..cluster.pod_to_pod("cli-a", "web-a", false)
    }
    .run();
    let ended = Instant::now();

    // Every byte is counted, as internet traffic of cli-a ...
    expect_counts(
        &cluster,
        ended,
        &pod_end(
            "node-a1",
            "cli-a",
            Class::Internet,
            flow.client_to_server(),
            flow.server_to_client(),
        ),
    );
    // ... and all of it carries the S3 tag.
    let metrics = cluster.scrape("node-a1").unwrap_or_else(|e| panic!("{e}"));
    for (name, at_least) in [
        ("kubecost_pod_network_egress_bytes_total", 2 * MIB),
        ("kubecost_pod_network_ingress_bytes_total", MIB),
    ] {
        let all = metrics
            .metric(name)
            .label("pod_name", "cli-a")
            .label("internet", "true")
            .value();
        let tagged = metrics
            .metric(name)
            .label("pod_name", "cli-a")
            .label("internet", "true")
            .label("service", "aws-s3")
            .value();
        assert!(
            tagged >= at_least as f64 && tagged == all,
            "{name}: {tagged} bytes tagged aws-s3 of {all} internet bytes; {s3} is in {prefix}"
        );
    }
    // The agent says which table it uses: the file, published 2025-07-24T20:23:14Z.
    assert_eq!(
        metrics
            .metric("netcost_cloud_ranges_timestamp_seconds")
            .label("provider", "aws")
            .label("source", "file")
            .value(),
        1_753_388_594.0
    );
}
