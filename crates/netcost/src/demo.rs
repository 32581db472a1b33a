//! `netcost demo`: a first look with no cluster, no Prometheus and no root.
//!
//! Glue only: one simulator per node of a synthetic cluster feeds the real agent pipeline of
//! that node; every simulated minute the pipelines' counters go into the embedded store, which
//! the allocation API serves. At start the demo fast-forwards a few hours of history so the first
//! cost table has something to say, then keeps running in real time.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use netcost_core::classify::Classifier;
use netcost_core::config::ClassificationConfig;
use netcost_core::inventory::Inventory;
use netcost_core::pipeline::{Pipeline, PipelineConfig};
use netcost_core::topology::Topology;
use netcost_cost::pricing::PriceSheet;
use netcost_server::engine::Engine;
use netcost_server::query::{Aggregate, Filter, Window};
use netcost_server::store::{DEFAULT_RETENTION_MINUTES, SharedStore, Store};
use netcost_server::{api, render};
use netcost_sim::{Cluster, ClusterSpec, Simulator, TableSpec};

use crate::history::HistoryRecorder;

/// `netcost demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Address of the API.
    #[arg(long, default_value = "127.0.0.1:9003", value_name = "ADDR")]
    listen: SocketAddr,
    /// Hours of history to simulate before serving.
    #[arg(long, default_value_t = 6)]
    history_hours: u32,
    /// Live conntrack entries per simulated node.
    #[arg(long, default_value_t = 2_000)]
    entries_per_node: u32,
    /// Price sheet: aws, gcp, azure or opencost.
    #[arg(long, default_value = "aws", value_parser = ["aws", "gcp", "azure", "opencost"])]
    provider: String,
    /// Where the embedded store keeps its history; in memory if not set.
    #[arg(long, value_name = "FILE")]
    store: Option<PathBuf>,
    /// Seed of the synthetic cluster and its traffic.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Build the history, print the first table and exit instead of serving.
    #[arg(long)]
    once: bool,
}

/// How many changes the first table lists.
const TOP_CHANGES: usize = 5;

/// One node of the simulated cluster: its conntrack table and its agent pipeline.
struct NodeAgent {
    sim: Simulator,
    pipeline: Pipeline,
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> Result<()> {
    let spec = ClusterSpec {
        seed: args.seed,
        ..ClusterSpec::default()
    };
    let cluster = Cluster::generate(&spec).context("generating the demo cluster")?;
    let inventory =
        Inventory::from_yaml_str(&cluster.inventory_yaml(), Path::new("demo-inventory"))?;
    let topology = Arc::new(inventory.topology()?);
    let config =
        ClassificationConfig::from_yaml_str(&cluster.config_yaml(), Path::new("demo-config"))?;
    let classifier = Classifier::new(config);
    let mut agents: Vec<NodeAgent> = (0..cluster.nodes().len() as u32)
        .map(|node| {
            let table = TableSpec {
                entries: args.entries_per_node,
                node,
                seed: args.seed.wrapping_add(u64::from(node)),
                ..TableSpec::default()
            };
            let sim = Simulator::new(cluster.clone(), &table);
            // The store treats a series it has not seen as starting at zero, so new series need
            // not hold their first bytes back the way they must for Prometheus.
            let config = PipelineConfig {
                pending_timeout_ms: 0,
                ..PipelineConfig::new(sim.node_name())
            };
            let pipeline = Pipeline::new(config, topology.clone(), classifier.clone());
            NodeAgent { sim, pipeline }
        })
        .collect();

    let store = match &args.store {
        Some(path) => Store::open(path, DEFAULT_RETENTION_MINUTES)?,
        None => Store::in_memory(DEFAULT_RETENTION_MINUTES),
    };
    let store = SharedStore(Arc::new(Mutex::new(store)));
    let sheet = PriceSheet::builtin(&args.provider).context("unknown provider")?;
    let engine = Engine::new(Arc::new(store.clone()), sheet);

    // Simulated time runs from `history` minutes ago; minute `m` of wall time is simulated
    // millisecond (m - first) * 60_000.
    let now_minute = jiff::Timestamp::now().as_second().div_euclid(60);
    let first_minute = now_minute - i64::from(args.history_hours) * 60;
    let started = Instant::now();
    eprint!(
        "simulating {} h of a {}-node cluster …",
        args.history_hours,
        agents.len()
    );
    let history = HistoryRecorder::new(store.clone());
    for minute in first_minute..=now_minute {
        step(&mut agents, &topology, &history, minute, first_minute)?;
    }
    eprintln!(" done in {:.1} s", started.elapsed().as_secs_f64());

    // Exactly the simulated history, however long the simulation took to run.
    let history_start = jiff::Timestamp::from_second(first_minute * 60)?;
    let now = jiff::Timestamp::now();
    let simulated = Window {
        start: history_start,
        end: now,
    };
    let table = engine.allocate(
        &simulated,
        &Aggregate::Namespace,
        &Filter::default(),
        &mut |_, _| {},
    )?;
    let window = format!("{}h", args.history_hours);
    println!(
        "Network cost of the simulated cluster over the last {window} ({}):\n",
        engine.sheet().provider
    );
    print!("{}", render::table(&table));
    let edges = engine.edges(&simulated, 1_000)?;
    let endpoints = engine.endpoint_advice(&simulated)?;
    print!("\n{}", render::top_changes(&edges, &endpoints, TOP_CHANGES));
    let _ = std::io::stdout().flush();
    if args.once {
        return Ok(());
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(args.listen))
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!(
        "\nnetcost demo: the web UI at http://{0}/?window={window}, the API at http://{0}/api/v1/allocation?window={window}&aggregate=workload   (Ctrl-C to stop)",
        args.listen
    );
    let live = {
        let topology = topology.clone();
        std::thread::spawn(move || -> Result<()> {
            let mut last_minute = now_minute;
            loop {
                std::thread::sleep(Duration::from_secs(5));
                let minute = jiff::Timestamp::now().as_second().div_euclid(60);
                if minute > last_minute {
                    step(&mut agents, &topology, &history, minute, first_minute)?;
                    last_minute = minute;
                }
            }
        })
    };
    let served = runtime.block_on(async {
        axum::serve(listener, api::standalone(engine))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
    });
    if live.is_finished() {
        match live.join() {
            Ok(Err(e)) => return Err(e.context("the live simulation stopped")),
            Err(_) => anyhow::bail!("the live simulation panicked"),
            Ok(Ok(())) => {}
        }
    }
    served.context("API server")
}

/// Runs every node's pipeline one cycle at simulated `minute` and records its counters.
fn step(
    agents: &mut [NodeAgent],
    topology: &Topology,
    history: &HistoryRecorder,
    minute: i64,
    first_minute: i64,
) -> Result<()> {
    let sim_ms = ((minute - first_minute) * 60_000) as u64;
    let now_ms = (minute * 60_000) as u64;
    for agent in agents.iter_mut() {
        agent.sim.advance_to(sim_ms);
        let started = Instant::now();
        let cycle = agent.pipeline.dump_cycle(&mut agent.sim, now_ms);
        let cycle_ms = started.elapsed().as_secs_f64() * 1000.0;
        cycle?;
        let snapshot = agent.pipeline.snapshot();
        history.record(minute, &snapshot, topology, (cycle_ms, 0), now_ms as i64)?;
    }
    Ok(())
}
