//! Cost allocation over time, served and printed.
//!
//! - [`backend`]: the [`backend::UsageBackend`] trait: byte counts per pod, direction, class and
//!   service over a month segment;
//! - [`prometheus`]: that trait over the Prometheus HTTP API (`increase()` of the agents'
//!   counters), which Thanos, Mimir and VictoriaMetrics serve too;
//! - [`query`]: the request's window, aggregate, filter, step and limit, parsed once at the
//!   edge (API, CLI) with typed errors;
//! - [`engine`]: window + aggregate + filter → priced rows, shared by the API and `report`;
//! - [`api`]: `GET /api/v1/allocation` as JSON or CSV, with JSON errors;
//! - [`drill`]: the zone × zone matrix and one workload's peers, for the UI's overview and
//!   drill-down;
//! - [`render`]: terminal table, CSV and JSON;
//! - [`store`]: the embedded history (the `netcost-store` crate) as a usage backend, for single
//!   hosts and the demo;
//! - [`ui`]: the web UI at `/`, static files compiled into the binary.
//!
//! What it does not do: price anything itself (`netcost-cost` does) or read conntrack.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod api;
pub mod backend;
pub mod drill;
pub mod engine;
pub mod prometheus;
pub mod query;
pub mod render;
pub mod store;
#[cfg(feature = "prometheus-tests")]
pub mod testing;
pub mod ui;
