//! The allocation engine: a window and an aggregate in, priced rows out. Shared by the API and
//! the `report` command so that both give the same figures.

use std::sync::Arc;

use jiff::Timestamp;
use netcost_cost::allocate::{Aggregate, Allocation, SegmentUsage, Usage, allocate};
use netcost_cost::pricing::PriceSheet;
use netcost_cost::window::{Window, WindowError};
use serde::Serialize;

use crate::backend::{BackendError, UsageBackend};

/// Why an allocation request failed; each maps to an HTTP status and a stable code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The window text is invalid.
    #[error(transparent)]
    Window(#[from] WindowError),
    /// The aggregate is unknown.
    #[error("{0}")]
    Aggregate(String),
    /// The filter is invalid.
    #[error("{0}")]
    Filter(String),
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl EngineError {
    /// A stable code for API clients.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Window(_) => "bad_window",
            EngineError::Aggregate(_) => "bad_aggregate",
            EngineError::Filter(_) => "bad_filter",
            EngineError::Backend(e) => e.code(),
        }
    }

    /// True when the caller's input is at fault (HTTP 400), false for a backend failure.
    pub fn is_client_error(&self) -> bool {
        !matches!(self, EngineError::Backend(_))
    }
}

/// A filter: `key:value` terms joined by commas, all of which must match. Keys: `namespace`,
/// `pod`, `node`, `workload` (`Kind/name`) and `service`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    terms: Vec<(FilterKey, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FilterKey {
    Namespace,
    Pod,
    Node,
    Workload,
    Service,
}

impl Filter {
    /// Parses `namespace:shop,node:node-a`; an empty text matches everything.
    pub fn parse(text: &str) -> Result<Filter, String> {
        let mut terms = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (key, value) = term.split_once(':').ok_or_else(|| {
                format!("filter term {term:?} is not key:value (e.g. namespace:shop)")
            })?;
            let key = match key.trim() {
                "namespace" => FilterKey::Namespace,
                "pod" => FilterKey::Pod,
                "node" => FilterKey::Node,
                "workload" => FilterKey::Workload,
                "service" => FilterKey::Service,
                other => {
                    return Err(format!(
                        "unknown filter key {other:?}: use namespace, pod, node, workload or service"
                    ));
                }
            };
            terms.push((key, value.trim().trim_matches('"').to_owned()));
        }
        Ok(Filter { terms })
    }

    fn matches(&self, usage: &Usage) -> bool {
        self.terms.iter().all(|(key, value)| match key {
            FilterKey::Namespace => usage.pod.namespace == *value,
            FilterKey::Pod => usage.pod.pod == *value,
            FilterKey::Node => usage.pod.node.as_deref() == Some(value.as_str()),
            FilterKey::Workload => usage
                .pod
                .workload
                .as_ref()
                .is_some_and(|(k, n)| format!("{k}/{n}") == *value),
            FilterKey::Service => usage.service.as_deref() == Some(value.as_str()),
        })
    }
}

/// The answer to one allocation request.
#[derive(Debug, Clone, Serialize)]
pub struct AllocationResult {
    /// Window start, RFC 3339.
    pub start: String,
    /// Window end, RFC 3339.
    pub end: String,
    /// What rows are summed by.
    pub aggregate: String,
    /// The price sheet's provider.
    pub provider: String,
    /// Where the prices come from.
    pub pricing_source: String,
    /// The billing unit of the prices (`GB` or `GiB`).
    pub unit: String,
    /// Always `USD`.
    pub currency: &'static str,
    /// Rows, highest cost first.
    pub allocations: Vec<Allocation>,
    /// The sum of all rows.
    pub total: Allocation,
}

/// Prices usage from a backend.
#[derive(Clone)]
pub struct Engine {
    backend: Arc<dyn UsageBackend>,
    sheet: Arc<PriceSheet>,
}

impl Engine {
    /// An engine over `backend` with prices from `sheet`.
    pub fn new(backend: Arc<dyn UsageBackend>, sheet: PriceSheet) -> Engine {
        Engine {
            backend,
            sheet: Arc::new(sheet),
        }
    }

    /// The backend's description.
    pub fn backend(&self) -> String {
        self.backend.describe()
    }

    /// The price sheet.
    pub fn sheet(&self) -> &PriceSheet {
        &self.sheet
    }

    /// Allocates network cost over `window` (relative to `now`) by `aggregate`, for usage
    /// matching `filter`. `on_segment` is called after each month segment is read (progress).
    pub fn allocate(
        &self,
        window: &str,
        aggregate: &str,
        filter: &str,
        now: Timestamp,
        on_segment: &mut dyn FnMut(usize, usize),
    ) -> Result<AllocationResult, EngineError> {
        let window = Window::parse(window, now)?;
        let aggregate_kind = Aggregate::parse(aggregate).map_err(EngineError::Aggregate)?;
        let filter = Filter::parse(filter).map_err(EngineError::Filter)?;
        let segments = window.segments();
        let mut usage: Vec<SegmentUsage> = Vec::with_capacity(segments.len());
        for (i, segment) in segments.iter().enumerate() {
            let mut u = self.backend.usage(segment)?;
            u.usages.retain(|x| filter.matches(x));
            usage.push(u);
            on_segment(i + 1, segments.len());
        }
        let (allocations, total) = allocate(&usage, &self.sheet, &aggregate_kind, window.seconds());
        Ok(AllocationResult {
            start: window.start.to_string(),
            end: window.end.to_string(),
            aggregate: aggregate.to_owned(),
            provider: self.sheet.provider.clone(),
            pricing_source: self.sheet.source.clone(),
            unit: self.sheet.unit.as_str().to_owned(),
            currency: "USD",
            allocations,
            total,
        })
    }
}
