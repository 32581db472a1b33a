//! Where byte counts over time come from: a trait with two implementations, Prometheus (any
//! engine that speaks its HTTP API) and the embedded store.

use netcost_cost::allocate::SegmentUsage;
use netcost_cost::window::Segment;

/// Why usage could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The backend did not answer.
    #[error("Prometheus unreachable at {url}: {reason}")]
    Unreachable {
        /// The base URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The backend answered with an error.
    #[error("Prometheus at {url} refused the query {query:?}: {reason}")]
    Query {
        /// The base URL.
        url: String,
        /// The PromQL.
        query: String,
        /// Its error message.
        reason: String,
    },
    /// The embedded store could not answer.
    #[error("embedded store: {0}")]
    Store(String),
}

impl BackendError {
    /// A short, fixed label for this error, for metrics and API error codes.
    pub fn code(&self) -> &'static str {
        match self {
            BackendError::Unreachable { .. } => "backend_unreachable",
            BackendError::Query { .. } => "backend_query_failed",
            BackendError::Store(_) => "store_failed",
        }
    }
}

/// A source of byte counts per pod, direction, class and service over a time range.
pub trait UsageBackend: Send + Sync {
    /// A human-readable description, e.g. `Prometheus at http://…`.
    fn describe(&self) -> String;

    /// The usage during `segment`, and the cluster's internet egress from the segment's month
    /// start to its start (for tiered pricing).
    fn usage(&self, segment: &Segment) -> Result<SegmentUsage, BackendError>;

    /// The value of pod label `key` per `(namespace, pod)` during `segment`, for aggregation by
    /// label. Backends without pod labels return none, and every row is `__unallocated__`.
    fn pod_labels(
        &self,
        _segment: &Segment,
        _key: &str,
    ) -> Result<std::collections::HashMap<(String, String), String>, BackendError> {
        Ok(Default::default())
    }
}
