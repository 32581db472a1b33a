//! Lookup time and memory of the cloud ranges table with all three providers loaded from the July
//! 2025 snapshots (about 105k prefixes), against its budget: median ≤ 100 ns, table ≤ 8 MiB.
//!
//! Run: `cargo bench -p netcost-core --bench cloud_lookup`
//! Reads the snapshots in `data/cloud-ip-ranges/`. Addresses are drawn from a
//! fixed-seed generator: half inside published prefixes (a random address in a random prefix),
//! half uniformly random (mostly untagged). Each sample times a batch of 1000 lookups; the
//! figures are per lookup. The `Classifier` path (trie walks of the config lists, then this
//! table) is timed too, since that is what the pipeline pays per flow.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ipnet::IpNet;
use netcost_core::classify::Classifier;
use netcost_core::cloud::CloudRanges;
use netcost_core::cloud::builtin::SNAPSHOT_FILES;
use netcost_core::cloud::parse::parse;
use netcost_core::config::ClassificationConfig;
use netcost_core::topology::{Locality, Topology};

const BATCH: usize = 1000;
const SAMPLES: usize = 2000;

/// xorshift64*: a fixed sequence, so runs compare.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/cloud-ip-ranges");
    let mut data = Vec::new();
    for (provider, name) in SNAPSHOT_FILES {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        data.push(parse(provider, &bytes, name)?);
    }
    let started = Instant::now();
    let table = CloudRanges::build(&data);
    let build = started.elapsed();
    println!(
        "table: {} prefixes, {} intervals, {:.2} MiB, built in {:.0} ms",
        table.prefixes(),
        table.intervals(),
        table.memory_bytes() as f64 / (1 << 20) as f64,
        build.as_secs_f64() * 1000.0
    );

    let nets: Vec<IpNet> = data
        .iter()
        .flat_map(|d| d.entries.iter().map(|e| e.net))
        .collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let addrs: Vec<IpAddr> = (0..SAMPLES * BATCH)
        .map(|i| {
            let r = rng.next();
            if i % 2 == 0 {
                let net = nets[(r as usize) % nets.len()];
                let noise = u128::from(rng.next()) << 64 | u128::from(rng.next());
                match net {
                    IpNet::V4(n) => {
                        let host = (noise as u32) & !u32::from(n.netmask());
                        IpAddr::V4(Ipv4Addr::from(u32::from(n.network()) | host))
                    }
                    IpNet::V6(n) => {
                        let host = noise & !u128::from(n.netmask());
                        IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) | host))
                    }
                }
            } else {
                IpAddr::V4(Ipv4Addr::from(r as u32))
            }
        })
        .collect();

    let mut per_lookup = Vec::with_capacity(SAMPLES);
    let mut hits = 0usize;
    for batch in addrs.chunks(BATCH) {
        let t = Instant::now();
        for &a in batch {
            if black_box(table.lookup(black_box(a))).is_some() {
                hits += 1;
            }
        }
        per_lookup.push(t.elapsed().as_nanos() as f64 / BATCH as f64);
    }
    report("CloudRanges::lookup", &mut per_lookup);
    println!("  hits: {hits} of {}", addrs.len());

    let classifier = Classifier::new(ClassificationConfig::kubecost_default())
        .with_provider_ranges(Arc::new(table));
    let topology = Topology::default();
    let local = Locality {
        zone: Some("us-east-1a".into()),
        region: Some("us-east-1".into()),
    };
    let mut per_classify = Vec::with_capacity(SAMPLES);
    for batch in addrs.chunks(BATCH) {
        let t = Instant::now();
        for &a in batch {
            black_box(classifier.classify(&topology, &local, black_box(a)));
        }
        per_classify.push(t.elapsed().as_nanos() as f64 / BATCH as f64);
    }
    report(
        "Classifier::classify (Kubecost default config + table)",
        &mut per_classify,
    );
    Ok(())
}

fn report(what: &str, ns: &mut [f64]) {
    ns.sort_by(f64::total_cmp);
    let at = |q: f64| ns[((ns.len() - 1) as f64 * q) as usize];
    println!(
        "{what}: median {:.1} ns, p10 {:.1} ns, p90 {:.1} ns, p99 {:.1} ns per lookup",
        at(0.5),
        at(0.1),
        at(0.9),
        at(0.99)
    );
}
