//! Cycle time and memory of the agent's pipeline on the simulator, in one process and on one
//! thread: parse (the real ctnetlink parser), deltas, attribution, classification, aggregation.
//!
//! Run: `cargo bench -p netcost-sim --bench sim_cycle -- 1000000 [churn-per-min, default 0.2]`
//!
//! Times are per cycle: wall clock, and this thread's CPU time, which other load on the machine
//! does not inflate. Each cycle advances the table by 10 s (churn, growth), drains the DESTROY events, then runs
//! the agent's dump cycle. Printed: the median wall time and mean thread CPU time of a cycle
//! (cycle 1 only takes baselines and is left out; small tables run up to 200 cycles, because the
//! CPU clock advances in scheduler ticks), the simulator's own share of it (the same dump into a sink that does nothing),
//! the peak RSS (VmHWM) and the RSS the simulator holds before the pipeline exists.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use netcost_core::classify::Classifier;
use netcost_core::config::ClassificationConfig;
use netcost_core::flow::FlowSource;
use netcost_core::inventory::Inventory;
use netcost_core::pipeline::{Pipeline, PipelineConfig};
use netcost_sim::{Cluster, ClusterSpec, Simulator, TableSpec};

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// CPU time this thread has run, in ms (`/proc/thread-self/schedstat`, first field, ns): the
/// figure that does not depend on what else the machine runs.
fn thread_cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0.0, |ns| ns as f64 / 1e6)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let entries: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let churn: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0.2);
    let cluster = Cluster::generate(&ClusterSpec::default()).unwrap_or_else(|e| panic!("{e}"));
    let inventory = Inventory::from_yaml_str(&cluster.inventory_yaml(), Path::new("sim.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let topology = Arc::new(inventory.topology().unwrap_or_else(|e| panic!("{e}")));
    let config = ClassificationConfig::from_yaml_str(&cluster.config_yaml(), Path::new("c.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    drop(inventory);
    let mut sim = Simulator::new(
        cluster,
        &TableSpec {
            entries,
            churn_per_min: churn,
            ..TableSpec::default()
        },
    );
    let rss_sim = status_kib("VmRSS:");
    let mut pipeline = Pipeline::new(
        PipelineConfig::new(sim.node_name()),
        topology,
        Classifier::new(config),
    );
    let (mut cycles, mut cpu, mut sim_only) = (Vec::new(), Vec::new(), Vec::new());
    let mut now = 0;
    // Small tables get more cycles: the thread CPU clock advances in scheduler ticks, so the CPU
    // figure is the mean over many cycles.
    let total_cycles = (20_000_000 / u64::from(entries.max(1))).clamp(7, 200);
    for cycle in 0..total_cycles {
        sim.advance_to(now);
        let _ = pipeline.drain_events(&mut sim, now);
        let started = Instant::now();
        let cpu_started = thread_cpu_ms();
        let _ = pipeline.dump_cycle(&mut sim, now);
        let took = started.elapsed().as_secs_f64() * 1000.0;
        let took_cpu = thread_cpu_ms() - cpu_started;
        pipeline.note_scraped(pipeline.snapshot().generation);
        if cycle > 0 {
            cycles.push(took);
            cpu.push(took_cpu);
            let started = thread_cpu_ms();
            let _ = sim.dump(&mut |_| {});
            sim_only.push(thread_cpu_ms() - started);
        }
        now += 10_000;
    }
    let stats = pipeline.snapshot().stats;
    println!(
        "entries={entries} churn_per_min={churn} median_cycle_ms={:.1} mean_cycle_cpu_ms={:.2} sim_encode_parse_cpu_ms={:.2} \
         peak_rss_mib={:.1} sim_rss_mib={:.1} tracked={} destroy_events={} attributed_bytes={}",
        median(cycles),
        cpu.iter().sum::<f64>() / cpu.len() as f64,
        sim_only.iter().sum::<f64>() / sim_only.len() as f64,
        status_kib("VmHWM:") as f64 / 1024.0,
        rss_sim as f64 / 1024.0,
        stats.tracked_entries,
        stats.destroy_events,
        stats.attributed_bytes,
    );
}
