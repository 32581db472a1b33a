//! Cycle time and memory of the pure pipeline at N live entries, with no kernel: a generator
//! source hands out N entries per dump (pods of a synthetic 3-node cluster talking across zones,
//! to a ClusterIP with DNAT, and to the internet), each gaining bytes every cycle.
//!
//! Run: `cargo bench -p netcost-core --bench cycle -- 1000000`
//! Prints the median cycle time over 5 cycles and the peak RSS (VmHWM) of the process. The
//! entries are generated on the fly, so the RSS is the pipeline's own (plus the binary).

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use netcost_core::classify::Classifier;
use netcost_core::config::ClassificationConfig;
use netcost_core::flow::{FlowRecord, FlowSource, ReadStats};
use netcost_core::inventory::Inventory;
use netcost_core::pipeline::{Pipeline, PipelineConfig};

const PODS_PER_NODE: u32 = 100;

fn inventory() -> String {
    let mut yaml = String::from("apiVersion: v1\nkind: List\nitems:\n");
    for (n, zone, region) in [
        (1, "zone-a", "region-1"),
        (2, "zone-b", "region-1"),
        (3, "zone-c", "region-2"),
    ] {
        yaml += &format!(
            "- apiVersion: v1\n  kind: Node\n  metadata: {{name: node-{n}, labels: {{topology.kubernetes.io/zone: {zone}, topology.kubernetes.io/region: {region}}}}}\n  status: {{addresses: [{{type: InternalIP, address: 192.168.0.{n}}}]}}\n"
        );
        for p in 0..PODS_PER_NODE {
            yaml += &format!(
                "- apiVersion: v1\n  kind: Pod\n  metadata: {{name: pod-{n}-{p}, namespace: ns-{}, uid: uid-{n}-{p}}}\n  spec: {{nodeName: node-{n}, containers: []}}\n  status: {{phase: Running, podIP: 10.{n}.{}.{}}}\n",
                p % 10,
                p / 250,
                p % 250 + 1
            );
        }
    }
    yaml += "- apiVersion: v1\n  kind: Service\n  metadata: {name: svc, namespace: ns-0}\n  spec: {clusterIP: 10.96.0.10}\n";
    yaml
}

/// N entries whose counters grow by a fixed step each dump.
struct Generator {
    entries: u32,
    dumps: u64,
}

impl FlowSource for Generator {
    type Error = Infallible;
    fn dump(&mut self, sink: &mut dyn FnMut(&FlowRecord)) -> Result<ReadStats, Infallible> {
        self.dumps += 1;
        for i in 0..self.entries {
            let local = IpAddr::V4(Ipv4Addr::new(10, 1, 0, (i % PODS_PER_NODE) as u8 + 1));
            let (dst, reply_src) = match i % 4 {
                0 => {
                    let peer = IpAddr::V4(Ipv4Addr::new(10, 2, 0, (i % PODS_PER_NODE) as u8 + 1));
                    (peer, peer)
                }
                1 => (
                    IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10)),
                    IpAddr::V4(Ipv4Addr::new(10, 3, 0, (i % PODS_PER_NODE) as u8 + 1)),
                ),
                2 => {
                    let far = IpAddr::V4(Ipv4Addr::from(0xcb00_7100 + (i % 200)));
                    (far, far)
                }
                _ => {
                    let same =
                        IpAddr::V4(Ipv4Addr::new(10, 1, 0, ((i + 7) % PODS_PER_NODE) as u8 + 1));
                    (same, same)
                }
            };
            let port = (i % 60_000) as u16 + 1024;
            let record = FlowRecord::tcp(
                i.wrapping_mul(2_654_435_761),
                SocketAddr::new(local, port),
                SocketAddr::new(dst, 443),
                self.dumps * 1_500,
                self.dumps * 9_000,
            )
            .natted(reply_src, local);
            sink(&record);
        }
        Ok(ReadStats {
            entries: u64::from(self.entries),
            ..ReadStats::default()
        })
    }
    fn drain_destroyed(&mut self, _: &mut dyn FnMut(&FlowRecord)) -> Result<ReadStats, Infallible> {
        Ok(ReadStats::default())
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    let entries: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let inventory = Inventory::from_yaml_str(&inventory(), Path::new("bench-inventory.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let topology = Arc::new(inventory.topology().unwrap_or_else(|e| panic!("{e}")));
    let mut pipeline = Pipeline::new(
        PipelineConfig::new("node-1"),
        topology,
        Classifier::new(ClassificationConfig::kubecost_default()),
    );
    let mut source = Generator { entries, dumps: 0 };
    let rss_before = peak_rss_kib();
    let mut times = Vec::new();
    for cycle in 0..6u64 {
        let started = Instant::now();
        let _ = pipeline.dump_cycle(&mut source, cycle * 10_000);
        // The first cycle only takes baselines; time the ones that attribute and classify.
        if cycle > 0 {
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    let snapshot = pipeline.snapshot();
    println!(
        "entries={entries} median_cycle_ms={:.1} min_ms={:.1} max_ms={:.1} peak_rss_mib={:.1} rss_before_pipeline_mib={:.1} series={} attributed_bytes={}",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        peak_rss_kib() as f64 / 1024.0,
        rss_before as f64 / 1024.0,
        snapshot.series.len(),
        snapshot.stats.attributed_bytes,
    );
}
