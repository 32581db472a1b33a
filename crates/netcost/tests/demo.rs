//! `netcost demo` end to end: the real binary simulates an hour of a 12-node cluster and prints
//! its cost table; the test drives identical simulators itself and computes the cost by hand
//! from their ground truth and the AWS price sheet's published figures.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use netcost_core::class::{Direction, TrafficClass};
use netcost_core::classify::Classifier;
use netcost_core::config::ClassificationConfig;
use netcost_core::inventory::Inventory;
use netcost_core::pipeline::{Pipeline, PipelineConfig};
use netcost_sim::{Cluster, ClusterSpec, OBJECT_STORE_SERVICE, Simulator, TableSpec, TruthOwner};

const ENTRIES: u32 = 300;
const SEED: u64 = 7;
const MINUTES: u64 = 60;

/// Direction, class, whether the remote end is tagged as a service, and whether through the
/// NAT gateway.
type SumKey = (Direction, TrafficClass, bool, bool);

/// The simulators' truth, summed two ways.
struct DemoTruth {
    /// Bytes of the whole cluster.
    sums: BTreeMap<SumKey, u64>,
    /// Bytes to and from the object store through the NAT gateway, by `namespace/workload`
    /// and the region of its pods' nodes.
    object_store_via_nat: BTreeMap<(String, String), u64>,
}

fn truth() -> DemoTruth {
    let cluster = Cluster::generate(&ClusterSpec {
        seed: SEED,
        ..ClusterSpec::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let inventory = Inventory::from_yaml_str(&cluster.inventory_yaml(), Path::new("inv"))
        .unwrap_or_else(|e| panic!("{e}"));
    let topology = Arc::new(inventory.topology().unwrap_or_else(|e| panic!("{e}")));
    let config = ClassificationConfig::from_yaml_str(&cluster.config_yaml(), Path::new("cfg"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sums = BTreeMap::new();
    let mut object_store_via_nat = BTreeMap::new();
    for node in 0..cluster.nodes().len() as u32 {
        let spec = TableSpec {
            entries: ENTRIES,
            node,
            seed: SEED.wrapping_add(u64::from(node)),
            ..TableSpec::default()
        };
        let mut sim = Simulator::new(cluster.clone(), &spec);
        // The same reads the demo makes: one full cycle per simulated minute.
        let mut pipeline = Pipeline::new(
            PipelineConfig::new(sim.node_name()),
            topology.clone(),
            Classifier::new(config.clone()),
        );
        for minute in 0..=MINUTES {
            sim.advance_to(minute * 60_000);
            pipeline
                .dump_cycle(&mut sim, minute * 60_000)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        for ((owner, direction, class, service, nat), bytes) in sim.truth() {
            *sums
                .entry((direction, class, service.is_some(), nat))
                .or_insert(0) += bytes;
            if let (TruthOwner::Pod(i), true, Some(OBJECT_STORE_SERVICE)) = (owner, nat, service) {
                let pod = &cluster.pods()[i as usize];
                let region = cluster.region_name(&cluster.nodes()[pod.node as usize]);
                let workload = format!("{}/{}", pod.namespace, pod.workload.1);
                *object_store_via_nat
                    .entry((workload, region.to_owned()))
                    .or_insert(0) += bytes;
            }
        }
    }
    DemoTruth {
        sums,
        object_store_via_nat,
    }
}

#[test]
fn the_demo_prints_the_cost_of_the_simulated_traffic_at_aws_prices() {
    let out = Command::new(env!("CARGO_BIN_EXE_netcost"))
        .args([
            "demo",
            "--once",
            "--history-hours",
            "1",
            "--provider",
            "aws",
        ])
        .args([
            "--entries-per-node",
            &ENTRIES.to_string(),
            "--seed",
            &SEED.to_string(),
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let total: Vec<f64> = stdout
        .lines()
        .find(|l| l.starts_with("TOTAL"))
        .unwrap_or_else(|| panic!("no TOTAL row:\n{stdout}"))
        .split_whitespace()
        .skip(1)
        .filter_map(|cell| cell.trim_end_matches('%').parse().ok())
        .collect();
    // Columns: in-zone GiB, x-zone GiB, x-zone $, x-region GiB, x-region $, internet GiB,
    // internet $, NAT $, total $, share, $/month.
    let truth = truth();
    let t = &truth.sums;
    let sum = |keep: &dyn Fn(&SumKey) -> bool| {
        t.iter()
            .filter(|(k, _)| keep(k))
            .map(|(_, b)| *b as f64)
            .sum::<f64>()
    };
    let tagged = |d, c| sum(&|k| (k.0, k.1, k.2) == (d, c, true));
    let bytes = |d, c| sum(&|k| (k.0, k.1) == (d, c));
    let through_nat = sum(&|k| k.3);
    let (egress, ingress) = (Direction::Egress, Direction::Ingress);
    let gib = |b: f64| b / 1_073_741_824.0;
    // AWS's GB is 2^30 bytes, like GCP's GiB (docs/pricing.md, "GB or GiB").
    let gb = gib;
    // AWS, read 2026-11-25: $0.01/GB each way across zones; $0.02/GB out across regions (in is
    // billed to the sender); internet out: 100 GB free a month, then $0.09/GB up to 10 TB. The
    // managed database, tagged as a service, has no agent: its side is billed too, $0.01/GB
    // more across zones both ways, and $0.02/GB for what it sends across regions.
    let cross_zone = gb(bytes(egress, TrafficClass::CrossZone)
        + bytes(ingress, TrafficClass::CrossZone)
        + tagged(egress, TrafficClass::CrossZone)
        + tagged(ingress, TrafficClass::CrossZone))
        * 0.01;
    let cross_region =
        gb(bytes(egress, TrafficClass::CrossRegion) + tagged(ingress, TrafficClass::CrossRegion))
            * 0.02;
    let internet_gb = gb(bytes(egress, TrafficClass::Internet));
    assert!(
        internet_gb < 10_240.0,
        "the test assumes the first paid tier"
    );
    let internet = (internet_gb - 100.0).max(0.0) * 0.09;
    // NAT gateway data processing: $0.045/GB, both directions (every simulated node is behind
    // one; the managed database is on its bypass list).
    let nat = gb(through_nat) * 0.045;
    let expected = [
        (
            0,
            gib(bytes(egress, TrafficClass::InZone) + bytes(ingress, TrafficClass::InZone)),
            0.0006,
        ),
        (
            1,
            gib(bytes(egress, TrafficClass::CrossZone) + bytes(ingress, TrafficClass::CrossZone)),
            0.0006,
        ),
        (2, cross_zone, 0.006),
        (4, cross_region, 0.006),
        (
            5,
            gib(bytes(egress, TrafficClass::Internet) + bytes(ingress, TrafficClass::Internet)),
            0.0006,
        ),
        (6, internet, 0.006),
        (7, nat, 0.006),
        (8, cross_zone + cross_region + internet + nat, 0.006),
    ];
    for (column, want, tolerance) in expected {
        assert!(
            (total[column] - want).abs() <= tolerance,
            "column {column}: printed {} but the truth gives {want}\n{stdout}",
            total[column]
        );
    }
    assert!(
        cross_zone > 0.0 && cross_region > 0.0 && internet_gb > 0.0 && nat > 0.0,
        "every class is exercised"
    );

    // The changes that would save the most: every workload that reaches the object store
    // through the NAT gateway gets a gateway endpoint's saving, the whole NAT charge on those
    // bytes at $0.045/GB, projected from the window to a 730-hour month.
    let window = stdout
        .lines()
        .find_map(|l| {
            l.split(" · prices")
                .next()
                .filter(|_| l.contains(" · prices"))
        })
        .and_then(|l| l.split_once(" to "))
        .unwrap_or_else(|| panic!("no window line:\n{stdout}"));
    // The engine counts a window in whole seconds.
    let seconds = |t: &str| {
        t.parse::<jiff::Timestamp>()
            .unwrap_or_else(|e| panic!("{t}: {e}"))
            .as_second() as f64
    };
    let months = (seconds(window.1) - seconds(window.0)) / 3_600.0 / 730.0;
    let changes: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("What would save the most"))
        .skip(1)
        .collect();
    assert!(!truth.object_store_via_nat.is_empty());
    let mut expected_s3: Vec<(f64, String)> = truth
        .object_store_via_nat
        .iter()
        .map(|((workload, region), bytes)| {
            let saving = gb(*bytes as f64) / months * 0.045;
            (
                saving,
                format!("{workload} → aws-s3 in {region} (NAT gateway): gateway endpoint"),
            )
        })
        .collect();
    expected_s3.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut listed = 0;
    for (saving, change) in &expected_s3 {
        let Some(line) = changes.iter().find(|l| l.ends_with(change.as_str())) else {
            continue;
        };
        listed += 1;
        let printed: f64 = line
            .trim()
            .trim_start_matches('$')
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no saving in {line:?}"));
        assert!(
            (printed - saving).abs() <= 0.006,
            "{change}: printed ${printed} but the truth gives ${saving:.4}\n{stdout}"
        );
    }
    // The list holds the top five of all changes; the largest S3 saving is always among them.
    assert!(listed >= 1, "no endpoint advice printed:\n{stdout}");
    assert!(
        changes
            .iter()
            .any(|l| l.ends_with(expected_s3[0].1.as_str())),
        "the largest endpoint saving is missing:\n{stdout}"
    );
}
