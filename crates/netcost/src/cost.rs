//! `netcost serve` and `netcost report`: command-line glue over `netcost-server`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::ValueEnum;
use netcost_cost::pricing::PriceSheet;
use netcost_server::engine::Engine;
use netcost_server::prometheus::PrometheusBackend;
use netcost_server::query::{Aggregate, Filter, Window, WindowError};
use netcost_server::{api, render};

/// Where prices come from.
#[derive(Debug, clap::Args)]
pub struct PricingArgs {
    /// Built-in price sheet: aws, gcp, azure, opencost (OpenCost's defaults) or custom.
    #[arg(long, default_value = "aws", value_parser = ["aws", "gcp", "azure", "opencost", "custom"])]
    provider: String,
    /// Pricing file overriding any price of the sheet it names (see docs/pricing.md).
    #[arg(long, value_name = "FILE")]
    pricing: Option<PathBuf>,
}

impl PricingArgs {
    /// The built-in sheet, or the pricing file's.
    pub fn sheet(&self) -> Result<PriceSheet> {
        match &self.pricing {
            Some(path) => Ok(PriceSheet::load(path)?),
            None => PriceSheet::builtin(&self.provider)
                .with_context(|| format!("unknown provider {}", self.provider)),
        }
    }
}

/// Where byte counts come from.
#[derive(Debug, clap::Args)]
pub struct BackendArgs {
    /// Prometheus-compatible query endpoint (Prometheus, Thanos, Mimir, VictoriaMetrics).
    #[arg(
        long,
        env = "PROMETHEUS_URL",
        default_value = "http://127.0.0.1:9090",
        value_name = "URL"
    )]
    prometheus: String,
    /// Timeout of one query, like 30s.
    #[arg(long, default_value = "30s", value_parser = crate::parse_duration, value_name = "DUR")]
    query_timeout: Duration,
}

impl BackendArgs {
    fn engine(&self, pricing: &PricingArgs) -> Result<Engine> {
        let backend = PrometheusBackend::new(&self.prometheus, self.query_timeout);
        Ok(Engine::new(Arc::new(backend), pricing.sheet()?))
    }
}

/// `netcost serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    backend: BackendArgs,
    #[command(flatten)]
    pricing: PricingArgs,
    /// Address of the API.
    #[arg(long, default_value = "127.0.0.1:9003", value_name = "ADDR")]
    listen: SocketAddr,
}

/// `netcost report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    #[command(flatten)]
    backend: BackendArgs,
    #[command(flatten)]
    pricing: PricingArgs,
    /// Window: 1h, 24h, 7d, today, month, or START,END in RFC 3339; at most 366 days.
    #[arg(long, default_value = "24h", value_parser = window_from_now)]
    window: Window,
    /// Sum by namespace, workload, pod, node or label:<key>.
    #[arg(long, default_value = "namespace", value_parser = Aggregate::parse)]
    aggregate: Aggregate,
    /// Only usage matching key:value terms, comma-separated (namespace, pod, node, workload, service).
    #[arg(long, default_value = "", value_parser = Filter::parse)]
    filter: Filter,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
}

/// A `--window`, relative to the moment it is parsed.
fn window_from_now(text: &str) -> Result<Window, WindowError> {
    Window::parse(text, jiff::Timestamp::now())
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for the terminal.
    Table,
    /// The API's JSON.
    Json,
    /// CSV with exact byte counts.
    Csv,
}

/// Serves the allocation API until interrupted.
pub fn serve(args: ServeArgs) -> Result<()> {
    let engine = args.backend.engine(&args.pricing)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        tracing::info!(
            listen = %args.listen,
            backend = %engine.backend(),
            prices = %engine.sheet().source,
            "serving the web UI at / and the API at /api/v1/allocation"
        );
        axum::serve(listener, api::standalone(engine))
            .with_graceful_shutdown(netcost_agent::shutdown_signal())
            .await
            .context("API server")
    })
}

/// How many changes the table output lists.
const TOP_CHANGES: usize = 5;

/// Prints one allocation and exits.
pub fn report(args: ReportArgs) -> Result<()> {
    let engine = args.backend.engine(&args.pricing)?;
    let interactive = std::io::stderr().is_terminal();
    if interactive {
        eprint!("querying {} …", engine.backend());
    }
    let result = engine.allocate(
        &args.window,
        &args.aggregate,
        &args.filter,
        &mut |done, of| {
            if interactive {
                eprint!("\rquerying {}: month {done} of {of} ", engine.backend());
            }
        },
    );
    if interactive {
        eprint!("\r\x1b[2K");
    }
    let result = result?;
    let text = match args.output {
        // The table is for people: it ends with what would save the most. The changes are the
        // whole cluster's, whatever the filter.
        Output::Table => {
            let edges = engine.edges(&args.window, 1_000)?;
            let endpoints = engine.endpoint_advice(&args.window)?;
            format!(
                "{}\n{}",
                render::table(&result),
                render::top_changes(&edges, &endpoints, TOP_CHANGES)
            )
        }
        Output::Json => render::json(&result),
        Output::Csv => render::csv(&result),
    };
    print!("{text}");
    Ok(())
}
