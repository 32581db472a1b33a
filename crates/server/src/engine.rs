//! The allocation engine: a window and an aggregate in, priced rows out. Shared by the API and
//! the `report` command so that both give the same figures.

use std::sync::Arc;

use jiff::Timestamp;
use netcost_cost::allocate::{Aggregate, Allocation, ClassCost, SegmentUsage, allocate};
use netcost_cost::edges::{Edge, PairUsage, cross_zone_edges};
use netcost_cost::endpoints::{EndpointAdvice, endpoint_advice};
use netcost_cost::pricing::PriceSheet;
use netcost_cost::window::Window;
use serde::Serialize;

use crate::backend::{BackendError, LiveStatus, UsageBackend};
use crate::query::{Filter, QueryError, Step};

/// Why a request failed; each maps to an HTTP status and a stable code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The request's text was refused (see [`QueryError`]).
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl EngineError {
    /// A stable code for API clients.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Query(e) => e.code(),
            EngineError::Backend(e) => e.code(),
        }
    }

    /// True when the caller's input is at fault (HTTP 400), false for a backend failure.
    pub fn is_client_error(&self) -> bool {
        matches!(self, EngineError::Query(_))
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
    /// What the figures assume that the bill may not: said in the API, the report and the UI.
    pub notes: Vec<String>,
}

/// The assumptions behind an allocation's internet egress figures, for [`AllocationResult::notes`].
pub fn pricing_notes(sheet: &PriceSheet, segments: &[SegmentUsage]) -> Vec<String> {
    let mut notes = Vec::new();
    let tiered = sheet.internet_egress_tiers.len() > 1 || sheet.internet_free_per_month > 0.0;
    let unit = sheet.unit.as_str();
    if tiered && sheet.account_other_internet_per_month == 0.0 {
        notes.push(format!(
            "Internet egress tiers and the free allowance are counted over this cluster's traffic \
             alone, as if the cluster were the whole account; the provider counts them over the \
             account. Set internet_egress.account_other_per_month in a pricing file to count the \
             rest of the account ({unit} a month)."
        ));
    } else if tiered {
        notes.push(format!(
            "Internet egress tiers count {} {unit} a month of the rest of the account's internet \
             egress (internet_egress.account_other_per_month), taken to accrue evenly through \
             the month.",
            sheet.account_other_internet_per_month
        ));
    }
    if let Some(limit) = sheet.internet_published_up_to {
        let past = segments.iter().any(|s| {
            let (before, during) = s.account_internet_egress(sheet);
            before + during > limit
        });
        if past {
            notes.push(format!(
                "A month's internet egress passed {limit} {unit}, where {}'s published prices end \
                 (above it the provider prices by contract): the last published price is used.",
                sheet.provider
            ));
        }
    }
    notes
}

/// Cost and bytes per class over one step of a time series.
#[derive(Debug, Clone, Serialize)]
pub struct TimeStep {
    /// Step start, RFC 3339.
    pub start: String,
    /// Step end, RFC 3339.
    pub end: String,
    /// In-zone traffic.
    pub in_zone: ClassCost,
    /// Cross-zone traffic.
    pub cross_zone: ClassCost,
    /// Cross-region traffic.
    pub cross_region: ClassCost,
    /// Internet traffic.
    pub internet: ClassCost,
    /// Total cost of the step.
    pub total_cost: f64,
}

/// The answer to one time series request: the window cut into steps, each priced on its own.
#[derive(Debug, Clone, Serialize)]
pub struct TimeSeriesResult {
    /// Window start, RFC 3339.
    pub start: String,
    /// Window end, RFC 3339.
    pub end: String,
    /// The step length in seconds (the first and last step may be shorter).
    pub step_seconds: i64,
    /// The price sheet's provider.
    pub provider: String,
    /// The billing unit of the prices.
    pub unit: String,
    /// Always `USD`.
    pub currency: &'static str,
    /// Steps, oldest first.
    pub steps: Vec<TimeStep>,
}

/// The answer to a cross-zone edges request.
#[derive(Debug, Clone, Serialize)]
pub struct EdgesResult {
    /// Window start, RFC 3339.
    pub start: String,
    /// Window end, RFC 3339.
    pub end: String,
    /// The price sheet's provider.
    pub provider: String,
    /// The billing unit of the prices.
    pub unit: String,
    /// Always `USD`.
    pub currency: &'static str,
    /// The costliest cross-zone and cross-region edges, at most the requested limit.
    pub edges: Vec<Edge>,
    /// How many edges there were before the limit.
    pub edges_total: usize,
    /// Cost of all edges over the window.
    pub total_cost: f64,
    /// Cost of all edges, projected to a month.
    pub total_monthly_cost: f64,
    /// The sum of the recommendations' estimated monthly savings, over all edges.
    pub total_monthly_saving: f64,
    /// False when no agent exported workload pairs in the window (older agents, or none).
    pub has_pair_data: bool,
}

/// The answer to an endpoint advice request: per workload and cloud service, what its traffic
/// through the NAT gateway costs a month and what an endpoint would save.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointAdviceResult {
    /// The window, `start,end` in RFC 3339.
    pub window: String,
    /// Window start, RFC 3339.
    pub start: String,
    /// Window end, RFC 3339.
    pub end: String,
    /// The price sheet's provider.
    pub provider: String,
    /// The billing unit of the prices.
    pub unit: String,
    /// Always `USD`.
    pub currency: &'static str,
    /// The NAT gateway's processing price per unit, if the sheet has one.
    pub nat_gateway_price: Option<f64>,
    /// Advice with a saving, largest first.
    pub advice: Vec<EndpointAdvice>,
    /// The sum of the advice's monthly savings.
    pub total_saving_per_month: f64,
    /// What the advice leaves out and why.
    pub notes: Vec<String>,
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

    /// Allocates network cost over `window` by `aggregate`, for usage matching `filter`.
    /// `on_segment` is called after each month segment is read (progress).
    pub fn allocate(
        &self,
        window: &Window,
        aggregate_kind: &Aggregate,
        filter: &Filter,
        on_segment: &mut dyn FnMut(usize, usize),
    ) -> Result<AllocationResult, EngineError> {
        let segments = window.segments();
        let mut usage: Vec<SegmentUsage> = Vec::with_capacity(segments.len());
        for (i, segment) in segments.iter().enumerate() {
            let mut u = self.backend.usage(segment)?;
            u.segment = Some(*segment);
            // The tiers price the whole cluster's internet egress, whatever part is asked for.
            u.cluster_internet_egress = Some(u.cluster_internet_egress());
            u.usages.retain(|x| filter.matches(x));
            if let Aggregate::Label(key) = &aggregate_kind {
                let labels = self.backend.pod_labels(segment, key)?;
                for usage in &mut u.usages {
                    let pod = (usage.pod.namespace.clone(), usage.pod.pod.clone());
                    if let Some(value) = labels.get(&pod) {
                        usage.pod.labels.insert(key.clone(), value.clone());
                    }
                }
            }
            usage.push(u);
            on_segment(i + 1, segments.len());
        }
        let (allocations, total) = allocate(&usage, &self.sheet, aggregate_kind, window.seconds());
        let notes = pricing_notes(&self.sheet, &usage);
        Ok(AllocationResult {
            start: window.start.to_string(),
            end: window.end.to_string(),
            aggregate: aggregate_kind.to_string(),
            provider: self.sheet.provider.clone(),
            pricing_source: self.sheet.source.clone(),
            unit: self.sheet.unit.as_str().to_owned(),
            currency: "USD",
            allocations,
            total,
            notes,
        })
    }

    /// The costliest `limit` cross-zone and cross-region workload edges over `window`, with
    /// recommendations.
    pub fn edges(&self, window: &Window, limit: usize) -> Result<EdgesResult, EngineError> {
        let usages = self.pair_usage(window)?;
        let has_pair_data = !usages.is_empty();
        let mut edges = cross_zone_edges(&usages, &self.sheet, window.seconds());
        let edges_total = edges.len();
        let total_cost = edges.iter().map(|e| e.cost).sum();
        let total_monthly_cost = edges.iter().map(|e| e.monthly_cost).sum();
        let total_monthly_saving = edges
            .iter()
            .filter_map(|e| e.recommendation.as_ref())
            .map(|r| r.monthly_saving)
            .sum();
        edges.truncate(limit);
        Ok(EdgesResult {
            start: window.start.to_string(),
            end: window.end.to_string(),
            provider: self.sheet.provider.clone(),
            unit: self.sheet.unit.as_str().to_owned(),
            currency: "USD",
            edges,
            edges_total,
            total_cost,
            total_monthly_cost,
            total_monthly_saving,
            has_pair_data,
        })
    }

    /// What VPC endpoints would save on the traffic that goes through the NAT gateway to cloud
    /// services over `window` (see `netcost_cost::endpoints`). The zones of each region, for
    /// the hourly charge of interface endpoints, come from the workload pair counters.
    pub fn endpoint_advice(&self, window: &Window) -> Result<EndpointAdviceResult, EngineError> {
        let mut usage = Vec::new();
        let mut zones: std::collections::HashMap<String, std::collections::BTreeSet<String>> =
            Default::default();
        for segment in window.segments() {
            usage.push(self.backend.usage(&segment)?);
            for pair in self.backend.pairs(&segment)? {
                for (workload, zone, region) in [
                    (&pair.client, &pair.client_zone, &pair.client_region),
                    (&pair.server, &pair.server_zone, &pair.server_region),
                ] {
                    if let (true, false, Some(region)) =
                        (workload.has_agent(), zone.is_empty(), region)
                    {
                        zones
                            .entry(region.clone())
                            .or_default()
                            .insert(zone.clone());
                    }
                }
            }
        }
        let zone_counts = zones.into_iter().map(|(r, z)| (r, z.len())).collect();
        let set = endpoint_advice(&usage, &self.sheet, window.seconds(), &zone_counts);
        Ok(EndpointAdviceResult {
            window: format!("{},{}", window.start, window.end),
            start: window.start.to_string(),
            end: window.end.to_string(),
            provider: self.sheet.provider.clone(),
            unit: self.sheet.unit.as_str().to_owned(),
            currency: "USD",
            nat_gateway_price: self.sheet.nat_gateway,
            total_saving_per_month: set.advice.iter().map(|a| a.saving_per_month).sum(),
            advice: set.advice,
            notes: set.notes,
        })
    }

    /// The growth of the workload pair counters over `window`.
    pub fn pair_usage(&self, window: &Window) -> Result<Vec<PairUsage>, EngineError> {
        let mut usages = Vec::new();
        for segment in window.segments() {
            usages.extend(self.backend.pairs(&segment)?);
        }
        Ok(usages)
    }

    /// The agents' state and the busiest pods now.
    pub fn live(&self) -> Result<LiveStatus, EngineError> {
        Ok(self.backend.live()?)
    }

    /// Cost per class over `window` cut into `step`s, for usage matching `filter`. Step
    /// boundaries are multiples of the step since the Unix epoch, so the bars of a chart stay
    /// put as time passes; the first and last step are cut by the window. Each step is a
    /// separate allocation, so internet tiers are priced from the month-to-date volume before
    /// each step, as for any window.
    pub fn timeseries(
        &self,
        window: &Window,
        step: Step,
        filter: &Filter,
    ) -> Result<TimeSeriesResult, EngineError> {
        let (start, end) = (window.start.as_second(), window.end.as_second());
        let (step_seconds, _) = step.over(window).map_err(QueryError::from)?;
        let mut boundaries = vec![window.start];
        let mut next = (start.div_euclid(step_seconds) + 1) * step_seconds;
        // Inside the window, so always a valid timestamp.
        while let (true, Ok(t)) = (next < end, Timestamp::from_second(next)) {
            boundaries.push(t);
            next += step_seconds;
        }
        boundaries.push(window.end);
        let mut steps = Vec::with_capacity(boundaries.len());
        for pair in boundaries.windows(2) {
            let part = Window {
                start: pair[0],
                end: pair[1],
            };
            // Summing by namespace is the cheapest aggregate; only the total is kept.
            let result = self.allocate(&part, &Aggregate::Namespace, filter, &mut |_, _| {})?;
            let total = result.total;
            steps.push(TimeStep {
                start: result.start,
                end: result.end,
                in_zone: total.in_zone,
                cross_zone: total.cross_zone,
                cross_region: total.cross_region,
                internet: total.internet,
                total_cost: total.total_cost,
            });
        }
        Ok(TimeSeriesResult {
            start: window.start.to_string(),
            end: window.end.to_string(),
            step_seconds,
            provider: self.sheet.provider.clone(),
            unit: self.sheet.unit.as_str().to_owned(),
            currency: "USD",
            steps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn month_of(before_gib: u64, during_gib: u64) -> SegmentUsage {
        SegmentUsage {
            internet_egress_before: before_gib << 30,
            cluster_internet_egress: Some(during_gib << 30),
            ..SegmentUsage::default()
        }
    }

    #[test]
    fn the_notes_say_whose_volume_the_tiers_count_and_where_published_prices_end() {
        let aws = PriceSheet::aws();
        let notes = pricing_notes(&aws, &[month_of(0, 1_000)]);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("as if the cluster were the whole account"));

        let mut with_account = PriceSheet::aws();
        with_account.account_other_internet_per_month = 2_500.0;
        let notes = pricing_notes(&with_account, &[month_of(0, 1_000)]);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("2500 GiB a month of the rest of the account"));

        // 500 TB is 512,000 GiB: a month at 511,000 + 2,000 passes it.
        let notes = pricing_notes(&aws, &[month_of(511_000, 2_000)]);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[1].contains("passed 512000 GiB"), "{notes:?}");
        assert_eq!(pricing_notes(&aws, &[month_of(500_000, 2_000)]).len(), 1);

        // A flat price has no tiers to count and no published end.
        assert!(pricing_notes(&PriceSheet::opencost(), &[month_of(511_000, 2_000)]).is_empty());
    }
}
