//! `netcost`: one binary, several jobs. This file only reads the command line, sets up logging
//! and hands over to the library crates; it holds no logic of its own.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

mod cost;
mod demo;
mod files;
mod history;
use netcost_agent::cloud::{CloudSettings, RangeSource};
use netcost_agent::{AgentSettings, SourceKind};
use netcost_core::cloud::Provider;
use netcost_core::config::ClassificationConfig;
use netcost_core::inventory::Inventory;

/// Shows which Kubernetes workloads run up the cloud network bill.
#[derive(Debug, Parser)]
#[command(name = "netcost", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Per-node collector: reads conntrack and serves Kubecost-compatible /metrics.
    Agent(Box<AgentArgs>),
    /// Network simulator: a seeded cluster and conntrack table, alone or with the agent on it.
    Simulate(SimulateArgs),
    /// Cost API: allocation by namespace, workload, pod, node or label, as JSON or CSV.
    Serve(cost::ServeArgs),
    /// Cost table in the terminal (or JSON, CSV) for one window.
    Report(cost::ReportArgs),
    /// First look: simulator, agent pipelines, embedded store and the cost API in one process.
    Demo(demo::DemoArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SourceArg {
    /// ctnetlink dumps and DESTROY events.
    Netlink,
    /// /proc/net/nf_conntrack text, as Kubecost reads it.
    Proc,
}

#[derive(Debug, clap::Args)]
struct AgentArgs {
    /// Single host, no Prometheus: keep 7 days of minute-resolution history in this file and
    /// serve /api/v1/allocation from it on the --listen port.
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
    #[command(flatten)]
    pricing: cost::PricingArgs,
    /// The node this agent runs on.
    #[arg(long, env = "NODE_NAME")]
    node_name: String,
    /// Static topology (a YAML list of Node, Pod and Service objects). Without it, Nodes, Pods
    /// and Services are watched through the Kubernetes API (in-cluster config, else KUBECONFIG).
    #[arg(long, value_name = "FILE")]
    inventory: Option<PathBuf>,
    /// When this node has no zone label, ask the cloud metadata endpoint (AWS, GCP, Azure).
    #[arg(long, env = "ZONE_FROM_CLOUD_METADATA", default_value = "false", action = clap::ArgAction::Set)]
    zone_from_cloud_metadata: bool,
    /// Classification config in Kubecost's network-costs format; Kubecost's defaults without it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address of /metrics, /healthz and /readyz. HOST_PORT, if set, replaces the port.
    #[arg(long, default_value = "0.0.0.0:3001", value_name = "ADDR")]
    listen: SocketAddr,
    /// Replaces the port of --listen, as Kubecost's network-costs DaemonSet sets it (HOST_PORT).
    #[arg(long = "host-port", env = "HOST_PORT", value_name = "PORT")]
    host_port: Option<u16>,
    /// Period of full conntrack dumps, like 2s, 10s or 1m (1s to 1h).
    #[arg(long, default_value = "10s", value_parser = parse_interval, value_name = "DUR")]
    interval: Duration,
    /// Where conntrack is read from.
    #[arg(long, value_enum, default_value = "netlink")]
    source: SourceArg,
    /// The file read by `--source proc`.
    #[arg(long, default_value = "/proc/net/nf_conntrack", value_name = "PATH")]
    proc_path: PathBuf,
    /// Restart checkpoint, written atomically after every cycle.
    #[arg(long, value_name = "PATH")]
    state_file: Option<PathBuf>,
    /// How often the traffic log (top destinations per source) is written.
    #[arg(long, default_value = "30m", value_parser = parse_duration, value_name = "DUR")]
    traffic_log_interval: Duration,
    /// Turns the traffic log on or off.
    #[arg(long, env = "TRAFFIC_LOGGING_ENABLED", default_value = "true", action = clap::ArgAction::Set)]
    traffic_logging_enabled: bool,
    /// How often DESTROY events are read between dumps.
    #[arg(long, default_value = "200ms", value_parser = parse_duration, value_name = "DUR", hide = true)]
    event_drain_period: Duration,
    /// Reliable DESTROY events: the kernel keeps an entry until its event is delivered, so no
    /// flow is lost under churn. "auto" (the default) turns it off while the conntrack table is
    /// over 85% full, so netcost never fills the node's table; "on" never turns it off; "off"
    /// never turns it on.
    #[arg(long, env = "RELIABLE_EVENTS", default_value = "auto", value_name = "MODE", value_parser = ["auto", "on", "off"])]
    reliable_events: String,
    /// A cloud provider's current ranges: aws=PATH_OR_URL, gcp=PATH_OR_URL or azure=PATH_OR_URL
    /// (AWS ip-ranges.json, Google cloud.json, Azure Service Tags JSON). Repeatable. A provider
    /// without one uses the built-in July 2025 table.
    #[arg(long = "cloud-ranges", value_name = "PROVIDER=PATH_OR_URL", value_parser = RangeSource::parse_flag)]
    cloud_ranges: Vec<(Provider, RangeSource)>,
    /// How often --cloud-ranges files and URLs are read again.
    #[arg(long, default_value = "24h", value_parser = parse_duration, value_name = "DUR")]
    cloud_ranges_refresh: Duration,
    /// Cap on workload pair series (netcost_workload_traffic_bytes_total) per agent; bytes of
    /// pairs past it are counted under "__other__".
    #[arg(
        long,
        env = "MAX_WORKLOAD_PAIRS",
        default_value = "2000",
        value_name = "N"
    )]
    max_workload_pairs: usize,
    /// Tell hostNetwork pods' bytes from the node's by the socket that owns each flow (its
    /// cgroup names the pod). Needs a cgroup v2 hierarchy at --cgroup-root; off, or without one,
    /// every byte at a node address is the node's.
    #[arg(long, env = "HOST_NETWORK_SOCKETS", default_value = "true", action = clap::ArgAction::Set)]
    host_network_sockets: bool,
    /// Where the host's cgroup hierarchy is mounted (read-only is enough): a cgroup2 mount, or a
    /// directory whose unified/ is one.
    #[arg(
        long,
        env = "CGROUP_ROOT",
        default_value = "/sys/fs/cgroup",
        value_name = "PATH"
    )]
    cgroup_root: PathBuf,
    /// How node ends of flows without an answer from their NEW event are looked up: "batch" (one
    /// socket dump per cycle, joined by tuple) or "per-flow" (one query per flow).
    #[arg(long, env = "HOST_NETWORK_LOOKUP", default_value = "batch", value_name = "MODE", value_parser = ["batch", "per-flow"])]
    host_network_lookup: String,
    /// Look sockets up on conntrack NEW events too (off: only at dumps, which short flows miss;
    /// for measuring what the NEW events add).
    #[arg(long, default_value = "true", action = clap::ArgAction::Set, hide = true)]
    host_network_new_events: bool,
}

#[derive(Debug, clap::Args)]
struct SimulateArgs {
    /// Live conntrack entries on the simulated node.
    #[arg(long, default_value = "100000")]
    entries: u32,
    /// Share of the entries that end (with a DESTROY event) and are replaced per minute: 20% or 0.2.
    #[arg(long, default_value = "20%", value_parser = parse_share)]
    churn_per_min: f64,
    /// Seed: the same seed gives the same cluster and table.
    #[arg(long, default_value = "42")]
    seed: u64,
    /// Regions (1-4), zones per region (1-6), nodes per zone, workload pods per node.
    #[arg(long, num_args = 4, value_names = ["REGIONS", "ZONES", "NODES", "PODS"], default_values = ["2", "3", "2", "30"])]
    shape: Vec<u32>,
    /// Writes the cluster as an inventory file (Node, Pod and Service objects).
    #[arg(long, value_name = "PATH")]
    write_inventory: Option<PathBuf>,
    /// Writes the matching classification config (Kubecost format).
    #[arg(long, value_name = "PATH")]
    write_config: Option<PathBuf>,
    /// Runs the agent's pipeline on the simulator and serves /metrics, as `netcost agent` does.
    #[arg(long)]
    agent: bool,
    /// Address of /metrics, /healthz and /readyz with --agent.
    #[arg(long, default_value = "127.0.0.1:3001", value_name = "ADDR")]
    listen: SocketAddr,
    /// Period of full dumps.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DUR")]
    interval: Duration,
    /// Without --agent: run the simulator alone this long (its own cost), then exit.
    #[arg(long = "for", value_parser = parse_duration, value_name = "DUR")]
    run_for: Option<Duration>,
}

/// `20%` or `0.2`.
fn parse_share(text: &str) -> Result<f64, String> {
    let (number, scale) = match text.strip_suffix('%') {
        Some(n) => (n, 100.0),
        None => (text, 1.0),
    };
    let share = number
        .trim()
        .parse::<f64>()
        .map_err(|e| format!("{e}: write a share like 20% or 0.2"))?
        / scale;
    if share.is_finite() && share >= 0.0 {
        Ok(share)
    } else {
        Err("must be zero or more".into())
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("{e}: write a duration like 2s, 10s or 30m"))?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

/// A dump period: at least a second (a dump of a large table takes seconds of kernel time, and
/// DESTROY events cover what happens in between), at most an hour (a longer one leaves
/// Prometheus' rate windows without points).
fn parse_interval(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(3600) {
        return Err(format!(
            "{} is outside 1s to 1h: a dump of a large table takes seconds, and Prometheus needs a point every few minutes",
            humantime::format_duration(d)
        ));
    }
    Ok(d)
}

fn main() -> std::process::ExitCode {
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Agent(args) => agent(*args),
        Command::Simulate(args) => simulate(args),
        Command::Serve(args) => cost::serve(args),
        Command::Report(args) => cost::report(args),
        Command::Demo(args) => demo::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Plain stderr, not tracing: the reason must show even with LOG_LEVEL=off.
            eprintln!("error: {}", error_chain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, leaving out causes whose text an outer message already
/// quotes (many errors embed their source in their own message).
fn error_chain(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOG_LEVEL")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes make log collectors' lines unreadable; only a terminal gets them.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn agent(args: AgentArgs) -> Result<()> {
    // Everything is read and validated before anything starts: never half-configured.
    let inventory = match &args.inventory {
        Some(path) => Some(files::inventory(path)?.topology()?),
        None => None,
    };
    let config = match &args.config {
        Some(path) => files::config(path)?,
        None => ClassificationConfig::kubecost_default(),
    };
    let mut hooks = netcost_agent::Hooks::default();
    if let Some(path) = &args.history {
        let store = netcost_server::store::SharedStore(Arc::new(std::sync::Mutex::new(
            netcost_server::store::Store::open(
                path,
                netcost_server::store::DEFAULT_RETENTION_MINUTES,
            )?,
        )));
        let engine =
            netcost_server::engine::Engine::new(Arc::new(store.clone()), args.pricing.sheet()?);
        hooks.routes = Some(netcost_server::api::router(engine));
        hooks
            .observers
            .push(Box::new(history::HistoryRecorder::new(store)));
    }
    let reliable_events = args
        .reliable_events
        .parse::<netcost_conntrack::ReliableEvents>()
        .map_err(|e| anyhow::anyhow!("--reliable-events: {e}"))?;
    let host_network_sockets = match args.host_network_sockets {
        false => None,
        true => Some(netcost_agent::HostNetworkSockets {
            cgroup_root: args.cgroup_root,
            mode: args
                .host_network_lookup
                .parse()
                .map_err(|e| anyhow::anyhow!("--host-network-lookup: {e}"))?,
            new_events: args.host_network_new_events,
        }),
    };
    let mut listen = args.listen;
    if let Some(port) = args.host_port {
        listen.set_port(port);
    }
    let (topology, topology_updates) = match inventory {
        Some(topology) => (Arc::new(topology), None),
        None => {
            let mut k8s = netcost_k8s::K8sSettings::new(args.node_name.as_str());
            if args.zone_from_cloud_metadata {
                k8s.cloud_metadata = Some(netcost_k8s::cloud_zone::METADATA_ADDR);
            }
            let pending = netcost_k8s::connect(k8s).context("topology from the Kubernetes API")?;
            // Until the first complete list the agent cannot count, but it answers: the watch
            // failures (RBAC, say) on /metrics and the reason on /readyz.
            let health = pending.health.clone();
            let not_ready: netcost_agent::http::NotReady =
                Arc::new(move || match health.failing_summary() {
                    failing if failing.is_empty() => {
                        "waiting for the first list from the Kubernetes API".to_owned()
                    }
                    failing => format!(
                        "the first list from the Kubernetes API failed ({failing}; a forbidden \
                         resource needs get, list and watch in the agent's ClusterRole)"
                    ),
                });
            let feed = netcost_agent::http::serve_while(
                listen,
                vec![pending.health.clone()],
                not_ready,
                || pending.wait(),
            )?
            .context("topology from the Kubernetes API")?;
            hooks.collectors.push(feed.health);
            (feed.initial, Some(feed.updates))
        }
    };
    let settings = AgentSettings {
        node_name: args.node_name,
        listen,
        interval: args.interval,
        event_drain_period: args.event_drain_period.min(args.interval),
        source: match args.source {
            SourceArg::Netlink => SourceKind::Netlink,
            SourceArg::Proc => SourceKind::Proc(args.proc_path),
        },
        state_file: args.state_file,
        traffic_log_interval: args
            .traffic_logging_enabled
            .then_some(args.traffic_log_interval),
        topology,
        topology_updates,
        config,
        cloud: CloudSettings {
            sources: args.cloud_ranges,
            refresh: args.cloud_ranges_refresh,
        },
        max_workload_pairs: args.max_workload_pairs,
        reliable_events,
        host_network_sockets,
    };
    netcost_agent::run(settings, hooks).context("agent stopped")
}

fn simulate(args: SimulateArgs) -> Result<()> {
    let narrow = |v: u32| u8::try_from(v).unwrap_or(u8::MAX);
    let wide = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
    let cluster = netcost_sim::Cluster::generate(&netcost_sim::ClusterSpec {
        regions: narrow(args.shape[0]),
        zones_per_region: narrow(args.shape[1]),
        nodes_per_zone: wide(args.shape[2]),
        pods_per_node: wide(args.shape[3]),
        seed: args.seed,
    })
    .context("--shape")?;
    let inventory_yaml = cluster.inventory_yaml();
    let config_yaml = cluster.config_yaml();
    for (path, text) in [
        (&args.write_inventory, &inventory_yaml),
        (&args.write_config, &config_yaml),
    ] {
        if let Some(path) = path {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    let spec = netcost_sim::TableSpec {
        entries: args.entries,
        churn_per_min: args.churn_per_min,
        node: 0,
        seed: args.seed,
    };
    let sim = netcost_sim::Simulator::new(cluster, &spec);
    tracing::info!(
        node = sim.node_name(),
        entries = args.entries,
        churn_per_min = args.churn_per_min,
        seed = args.seed,
        "simulated node"
    );
    if !args.agent {
        if let Some(duration) = args.run_for {
            let report = netcost_sim::run_bare(sim, args.interval, duration)?;
            println!(
                "the simulator alone for {}: {} dumps of {} entries, {:.1} ms to encode and \
                 parse a dump (median), {} DESTROY events",
                humantime::format_duration(duration),
                report.dumps,
                report.entries,
                report.median_dump_ms,
                report.destroy_events
            );
        }
        return Ok(());
    }
    // The agent reads the simulated cluster through the same loaders as a real inventory.
    let topology = Inventory::from_yaml_str(&inventory_yaml, Path::new("<simulated inventory>"))?
        .topology()?;
    let config =
        ClassificationConfig::from_yaml_str(&config_yaml, Path::new("<simulated config>"))?;
    let settings = AgentSettings {
        node_name: sim.node_name().to_string(),
        listen: args.listen,
        interval: args.interval,
        event_drain_period: Duration::from_millis(200).min(args.interval),
        source: SourceKind::Netlink,
        state_file: None,
        traffic_log_interval: Some(Duration::from_secs(30 * 60)),
        topology: Arc::new(topology),
        topology_updates: None,
        config,
        cloud: CloudSettings::default(),
        max_workload_pairs: netcost_core::aggregate::DEFAULT_PAIR_LIMIT,
        reliable_events: netcost_conntrack::ReliableEvents::default(),
        host_network_sockets: None,
    };
    let source = netcost_sim::Clocked {
        sim,
        clock: netcost_sim::WallClock::default(),
    };
    netcost_agent::run_with_source(settings, netcost_agent::Hooks::default(), source)
        .context("agent on the simulator stopped")
}
