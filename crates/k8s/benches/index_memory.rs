//! Memory of the Kubernetes-mode index: the watch cache and the topology for N nodes and M pods
//! (default 5,000 and 150,000), fed through the same watcher events the API server produces.
//!
//! `cargo bench -p netcost-k8s --bench index_memory -- [NODES] [PODS]`
//!
//! Objects are made and dropped one at a time, as a paged list delivers them, so the figures are
//! the index's own. It prints the process's RSS (VmRSS) and peak (VmHWM) before, after the cache
//! is filled, and after two topologies exist at once (the agent's old one is still in use while
//! the next is built), plus the build time.

use std::time::Instant;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::watcher::Event;
use netcost_k8s::{ClusterCache, Update};
use serde_json::json;

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn report(stage: &str) {
    println!(
        "{stage:<32} rss {:>7.1} MiB   peak {:>7.1} MiB",
        mib(status_kib("VmRSS:")),
        mib(status_kib("VmHWM:"))
    );
}

fn node_name(i: usize) -> String {
    format!(
        "ip-10-{}-{}-{}.ec2.internal",
        i / 65536,
        (i / 256) % 256,
        i % 256
    )
}

fn node(i: usize) -> Node {
    let zone = ["us-east-1a", "us-east-1b", "us-east-1c"][i % 3];
    serde_json::from_value(json!({
        "metadata": {"name": node_name(i), "uid": format!("node-{i}"),
            "labels": {"topology.kubernetes.io/zone": zone, "topology.kubernetes.io/region": "us-east-1",
                       "kubernetes.io/hostname": node_name(i), "node.kubernetes.io/instance-type": "m6i.large"}},
        "spec": {"podCIDRs": [format!("10.{}.{}.0/24", 100 + i / 256, i % 256)]},
        "status": {"addresses": [
            {"type": "InternalIP", "address": format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256)},
            {"type": "Hostname", "address": node_name(i)}]},
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A pod as the API serves it: a Deployment's, with labels, a container and conditions, which
/// the cache must not keep.
fn pod(i: usize, nodes: usize) -> Pod {
    let n = i % nodes;
    let deployment = format!("svc-{}", i / 30);
    serde_json::from_value(json!({
        "metadata": {"name": format!("{deployment}-7d9f8c6b5-{i:05x}"), "namespace": format!("team-{}", i % 40),
            "uid": format!("{i:08x}-1234-5678-9abc-def012345678"), "creationTimestamp": "2025-01-01T00:00:00Z",
            "resourceVersion": "123456",
            "labels": {"app": deployment, "pod-template-hash": "7d9f8c6b5"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{deployment}-7d9f8c6b5"),
                                 "uid": "x", "controller": true}]},
        "spec": {"nodeName": node_name(n), "containers": [{"name": "app", "image": "registry.example/app:1.2.3",
                 "ports": [{"containerPort": 8080}], "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
        "status": {"phase": "Running", "hostIP": format!("10.{}.{}.{}", n / 65536, (n / 256) % 256, n % 256),
                   "podIP": format!("10.{}.{}.{}", 100 + i / 65536, (i / 256) % 256, i % 256),
                   "podIPs": [{"ip": format!("10.{}.{}.{}", 100 + i / 65536, (i / 256) % 256, i % 256)}],
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let nodes = args.first().copied().unwrap_or(5_000);
    let pods = args.get(1).copied().unwrap_or(150_000);
    println!("{nodes} nodes, {pods} pods");
    report("start");
    let mut cache = ClusterCache::new(node_name(0));
    for (update, init_done) in [
        (
            Update::ReplicaSet(Event::Init),
            Update::ReplicaSet(Event::InitDone),
        ),
        (Update::Job(Event::Init), Update::Job(Event::InitDone)),
        (
            Update::Service(Event::Init),
            Update::Service(Event::InitDone),
        ),
    ] {
        cache.apply(update);
        cache.apply(init_done);
    }
    cache.apply(Update::Node(Event::Init));
    for i in 0..nodes {
        cache.apply(Update::Node(Event::InitApply(node(i))));
    }
    cache.apply(Update::Node(Event::InitDone));
    cache.apply(Update::Pod(Event::Init));
    for i in 0..pods {
        cache.apply(Update::Pod(Event::InitApply(pod(i, nodes))));
    }
    cache.apply(Update::Pod(Event::InitDone));
    report("cache filled");
    let started = Instant::now();
    let first = cache.topology().unwrap_or_else(|e| panic!("{e}"));
    let first_build = started.elapsed();
    report("first topology");
    let started = Instant::now();
    let second = cache.topology().unwrap_or_else(|e| panic!("{e}"));
    let rebuild = started.elapsed();
    report("second topology beside the first");
    drop(first);
    println!(
        "build {:.0} ms, rebuild {:.0} ms, {} pods indexed",
        first_build.as_secs_f64() * 1e3,
        rebuild.as_secs_f64() * 1e3,
        second.pods().count()
    );
}
