//! The Prometheus backend: PromQL `increase()` over the agents' counters, through the HTTP query
//! API that Prometheus, Thanos, Mimir and VictoriaMetrics all serve.
//!
//! Per month segment `[start, end)` of a window it asks, evaluated at `end`:
//! - `sum by (namespace, pod_name, uid, internet, same_zone, same_region, service,
//!   remote_region) (increase(kubecost_pod_network_{egress,ingress}_bytes_total[Ds]))` for pods
//!   (`remote_region`, the far region of cross-region bytes, is netcost's: Kubecost's agent has
//!   none, and its series then price at the local region's rate; `nat_gateway="true"` marks
//!   bytes through a NAT gateway, as in Kubecost's agent and OpenCost's queries);
//! - the same over `netcost_node_network_*` for node traffic;
//! - `netcost_pod_info` for each pod's node, region and owning workload, where the agents
//!   export it;
//!
//! and, evaluated at `start`, the cluster's internet egress since the month began, which decides
//! the internet tier.
//!
//! Range edges: Prometheus 2 selects `[start, end]`, Prometheus 3 `(start, end]` (left-open).
//! They differ only for a window that begins exactly, to the millisecond, on a sample: 3 leaves
//! that sample out, and `increase()` then extrapolates over the gap to the next one instead of
//! counting it, so the bytes of that one scrape interval are estimated (lost, if they all came
//! in it). The engine's edges (month starts, the window's own) fall on a sample about once in
//! a scrape interval's worth of milliseconds, so nothing is asked differently of 3: a selector
//! 1 ms longer would keep that sample but extrapolate 1 ms more on every other query. `increase()` already handles counter resets (an agent restart without a
//! state file), so nothing else is needed for them.
//!
//! Workload pairs are `increase(netcost_workload_traffic_bytes_total[Ds])` per agent
//! (`instance`), with each end's region looked up by its zone in `netcost_pod_info`, and the
//! counting agent's region by its node (`netcost_agent_info`): an agent counts what its end
//! sent, so the price of a cross-region byte goes from the sender's region to the receiver's.
//! The live view reads each agent's last values by `instance` (its scrape address), joined to
//! `netcost_agent_info` for the node name, and the busiest pods by `rate(…[5m])`.

use std::collections::HashMap;
use std::time::Duration;

use netcost_core::class::{Direction, TrafficClass};
use netcost_cost::allocate::{PodIdentity, SegmentUsage, Usage, remote_has_agent};
use netcost_cost::edges::{PairUsage, Workload};
use netcost_cost::window::Segment;
use serde::Deserialize;

use crate::backend::{
    AgentStatus, BackendError, LiveStatus, RATE_SECONDS, TalkerTally, UsageBackend,
};

/// A Prometheus-compatible query endpoint.
#[derive(Debug, Clone)]
pub struct PrometheusBackend {
    base_url: String,
    agent: ureq::Agent,
}

#[derive(Debug, Deserialize)]
struct QueryResponse {
    status: String,
    #[serde(default)]
    data: Option<QueryData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct QueryData {
    #[serde(default)]
    result: Vec<Sample>,
}

#[derive(Debug, Deserialize)]
struct Sample {
    metric: HashMap<String, String>,
    value: (f64, String),
}

impl Sample {
    fn label(&self, key: &str) -> &str {
        self.metric.get(key).map(String::as_str).unwrap_or("")
    }

    /// The value as a number (0 if it is not one).
    fn number(&self) -> f64 {
        self.value
            .1
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .unwrap_or(0.0)
    }

    /// The value as whole bytes; `increase()` extrapolates, so it may carry a fraction.
    fn bytes(&self) -> u64 {
        self.value
            .1
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v > 0.0)
            .map(|v| v.round() as u64)
            .unwrap_or(0)
    }
}

impl PrometheusBackend {
    /// A backend querying `base_url` (e.g. `http://prometheus:9090`), with a query timeout.
    pub fn new(base_url: &str, timeout: Duration) -> PrometheusBackend {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build();
        PrometheusBackend {
            base_url: base_url.trim_end_matches('/').to_owned(),
            agent: config.new_agent(),
        }
    }

    /// The regions of the zones and of the agents seen in the `range_ms` before `end_ms`.
    fn regions(&self, range_ms: i64, end_ms: i64) -> Result<Regions, BackendError> {
        let places = self.query(
            &format!("max by (node, zone, region) (max_over_time(netcost_pod_info[{range_ms}ms]))"),
            end_ms,
        )?;
        let mut by_zone = HashMap::new();
        let mut by_node = HashMap::new();
        for s in places.iter().filter(|s| !s.label("region").is_empty()) {
            let region = s.label("region").to_owned();
            if !s.label("zone").is_empty() {
                by_zone.insert(s.label("zone").to_owned(), region.clone());
            }
            by_node.insert(s.label("node").to_owned(), region);
        }
        let agents = self.query(
            &format!("max by (instance, node) (max_over_time(netcost_agent_info[{range_ms}ms]))"),
            end_ms,
        )?;
        let by_instance = agents
            .iter()
            .filter_map(|s| {
                let region = by_node.get(s.label("node"))?;
                Some((s.label("instance").to_owned(), region.clone()))
            })
            .collect();
        Ok(Regions {
            by_zone,
            by_instance,
        })
    }

    /// Runs an instant query at `time_ms` (Unix milliseconds).
    fn query(&self, promql: &str, time_ms: i64) -> Result<Vec<Sample>, BackendError> {
        let url = format!("{}/api/v1/query", self.base_url);
        let unreachable = |reason: String| BackendError::Unreachable {
            url: self.base_url.clone(),
            reason,
        };
        let mut response = self
            .agent
            .get(&url)
            .query("query", promql)
            .query(
                "time",
                format!(
                    "{}.{:03}",
                    time_ms.div_euclid(1000),
                    time_ms.rem_euclid(1000)
                ),
            )
            .call()
            .map_err(|e| unreachable(e.to_string()))?;
        let status = response.status();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| unreachable(format!("reading the answer: {e}")))?;
        let refused = |reason: String| BackendError::Query {
            url: self.base_url.clone(),
            query: promql.to_owned(),
            reason,
        };
        let parsed: QueryResponse = serde_json::from_str(&body).map_err(|e| {
            refused(format!(
                "HTTP {status}, not a Prometheus answer ({e}): {}",
                body.chars().take(200).collect::<String>()
            ))
        })?;
        if parsed.status != "success" {
            return Err(refused(format!(
                "{}: {}",
                parsed.error_type.unwrap_or_default(),
                parsed.error.unwrap_or_default()
            )));
        }
        Ok(parsed.data.map(|d| d.result).unwrap_or_default())
    }
}

/// The class of a series from its Kubecost labels, or `None` for a combination no agent writes.
pub fn class_of(internet: &str, same_zone: &str, same_region: &str) -> Option<TrafficClass> {
    TrafficClass::ALL
        .into_iter()
        .find(|c| c.kubecost_labels() == (internet, same_zone, same_region))
}

struct PodMeta {
    node: String,
    region: String,
    owner: Option<(String, String)>,
}

/// Where the agents' zones and nodes sit, from `netcost_pod_info` (each pod's node, zone and
/// region) and `netcost_agent_info` (each scrape target's node).
#[derive(Debug, Default)]
struct Regions {
    by_zone: HashMap<String, String>,
    by_instance: HashMap<String, String>,
}

impl Regions {
    fn of_zone(&self, zone: &str) -> Option<String> {
        self.by_zone.get(zone).cloned()
    }

    fn of_instance(&self, instance: &str) -> Option<String> {
        self.by_instance.get(instance).cloned()
    }
}

/// The label name kube-state-metrics gives pod label `key` in `kube_pod_labels`: `label_` and
/// the key with every character outside `[a-zA-Z0-9_]` replaced by `_`.
pub fn kube_state_metrics_label(key: &str) -> String {
    let sanitized: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("label_{sanitized}")
}

impl UsageBackend for PrometheusBackend {
    fn describe(&self) -> String {
        format!("Prometheus at {}", self.base_url)
    }

    fn pairs(&self, segment: &Segment) -> Result<Vec<PairUsage>, BackendError> {
        let end = segment.end.as_millisecond();
        let range = end - segment.start.as_millisecond();
        if range <= 0 {
            return Ok(Vec::new());
        }
        let samples = self.query(
            &format!(
                "sum by (src_namespace, src_kind, src_workload, src_zone, dst_namespace, dst_kind, \
                 dst_workload, dst_zone, class, instance) \
                 (increase(netcost_workload_traffic_bytes_total[{range}ms]))"
            ),
            end,
        )?;
        let regions = self.regions(range, end)?;
        let workload = |s: &Sample, side: &str| Workload {
            namespace: s.label(&format!("{side}_namespace")).to_owned(),
            kind: s.label(&format!("{side}_kind")).to_owned(),
            name: s.label(&format!("{side}_workload")).to_owned(),
        };
        Ok(samples
            .iter()
            .filter_map(|s| {
                let class = TrafficClass::from_label(s.label("class"))?;
                Some(PairUsage {
                    client: workload(s, "src"),
                    client_zone: s.label("src_zone").to_owned(),
                    server: workload(s, "dst"),
                    server_zone: s.label("dst_zone").to_owned(),
                    class,
                    bytes: s.bytes(),
                    client_region: regions.of_zone(s.label("src_zone")),
                    server_region: regions.of_zone(s.label("dst_zone")),
                    counted_in_region: regions.of_instance(s.label("instance")),
                })
            })
            .filter(|u| u.bytes > 0)
            .collect())
    }

    fn live(&self) -> Result<LiveStatus, BackendError> {
        let now = jiff::Timestamp::now().as_millisecond();
        // Agents seen in the last hour, so one that stopped answering is still listed.
        let info = self.query(
            "max by (instance, node) (last_over_time(netcost_agent_info[1h]))",
            now,
        )?;
        let by_instance = |promql: &str| -> Result<HashMap<String, f64>, BackendError> {
            Ok(self
                .query(promql, now)?
                .iter()
                .map(|s| (s.label("instance").to_owned(), s.number()))
                .collect())
        };
        let up = by_instance("max by (instance) (up)")?;
        let last_cycle = by_instance("max by (instance) (netcost_last_cycle_timestamp_seconds)")?;
        let cycle_ms = by_instance("max by (instance) (kubecost_network_costs_parse_time)")?;
        let entries = by_instance("max by (instance) (kubecost_network_costs_parsed_entries)")?;
        let failures = by_instance("max by (instance) (netcost_cycle_failures_total)")?;
        let malformed = by_instance(
            "sum by (instance) (netcost_conntrack_entries_skipped_total{reason=\"malformed\"})",
        )?;
        let lost = by_instance("max by (instance) (netcost_conntrack_events_lost_total)")?;
        let pairs = by_instance("max by (instance) (netcost_workload_pairs)")?;
        let mut agents: Vec<AgentStatus> = info
            .iter()
            .map(|s| {
                let instance = s.label("instance").to_owned();
                let get = |m: &HashMap<String, f64>| m.get(&instance).copied();
                let count = |m: &HashMap<String, f64>| get(m).unwrap_or(0.0).max(0.0) as u64;
                AgentStatus {
                    node: s.label("node").to_owned(),
                    up: get(&up) == Some(1.0),
                    last_cycle_age_seconds: get(&last_cycle)
                        .filter(|t| *t > 0.0)
                        .map(|t| (now as f64 / 1000.0 - t).max(0.0)),
                    cycle_ms: get(&cycle_ms).unwrap_or(0.0),
                    entries: count(&entries),
                    cycle_failures: count(&failures),
                    malformed_entries: count(&malformed),
                    events_lost: count(&lost),
                    workload_pairs: count(&pairs),
                    instance,
                }
            })
            .collect();
        agents.sort_by(|a, b| (&a.node, &a.instance).cmp(&(&b.node, &b.instance)));

        let mut talkers = TalkerTally::default();
        for (metric, by) in [
            (
                "kubecost_pod_network_egress_bytes_total",
                "namespace, pod_name",
            ),
            (
                "kubecost_pod_network_ingress_bytes_total",
                "namespace, pod_name",
            ),
            ("netcost_node_network_egress_bytes_total", "node"),
            ("netcost_node_network_ingress_bytes_total", "node"),
        ] {
            let samples = self.query(
                &format!(
                    "sum by ({by}, internet, same_zone, same_region) \
                     (rate({metric}[{RATE_SECONDS}s])) > 0"
                ),
                now,
            )?;
            for s in &samples {
                let Some(class) = class_of(
                    s.label("internet"),
                    s.label("same_zone"),
                    s.label("same_region"),
                ) else {
                    continue;
                };
                let (namespace, pod) = match s.label("node") {
                    "" => (
                        s.label("namespace").to_owned(),
                        s.label("pod_name").to_owned(),
                    ),
                    node => (String::new(), format!("node/{node}")),
                };
                talkers.add(&namespace, &pod, class, s.number().max(0.0));
            }
        }
        Ok(LiveStatus {
            agents,
            talkers: talkers.top(),
            rate_seconds: RATE_SECONDS,
        })
    }

    /// Pod labels come from kube-state-metrics' `kube_pod_labels` (which exports labels only if
    /// its `--metric-labels-allowlist` lets them through).
    fn pod_labels(
        &self,
        segment: &Segment,
        key: &str,
    ) -> Result<HashMap<(String, String), String>, BackendError> {
        let label = kube_state_metrics_label(key);
        let end = segment.end.as_millisecond();
        let range = end - segment.start.as_millisecond();
        let samples = self.query(
            &format!(
                "max by (namespace, pod, {label}) (max_over_time(kube_pod_labels[{range}ms]))"
            ),
            end,
        )?;
        Ok(samples
            .iter()
            .filter(|s| !s.label(&label).is_empty())
            .map(|s| {
                (
                    (s.label("namespace").to_owned(), s.label("pod").to_owned()),
                    s.label(&label).to_owned(),
                )
            })
            .collect())
    }

    fn usage(&self, segment: &Segment) -> Result<SegmentUsage, BackendError> {
        // Milliseconds throughout: a window that ends exactly on a sample must not lose it.
        let end = segment.end.as_millisecond();
        let range = end - segment.start.as_millisecond();
        let mut usages = Vec::new();
        if range > 0 {
            let info = self.query(
                &format!(
                    "max by (namespace, pod_name, uid, node, region, owner_kind, owner_name) \
                     (max_over_time(netcost_pod_info[{range}ms]))"
                ),
                end,
            )?;
            let meta: HashMap<String, PodMeta> = info
                .iter()
                .map(|s| {
                    let owner = match (s.label("owner_kind"), s.label("owner_name")) {
                        ("", _) | (_, "") => None,
                        (k, n) => Some((k.to_owned(), n.to_owned())),
                    };
                    let meta = PodMeta {
                        node: s.label("node").to_owned(),
                        region: s.label("region").to_owned(),
                        owner,
                    };
                    (s.label("uid").to_owned(), meta)
                })
                .collect();
            // A node's own traffic leaves from the node's region, which its pods' info names.
            let node_regions: HashMap<&str, &str> = info
                .iter()
                .filter(|s| !s.label("node").is_empty() && !s.label("region").is_empty())
                .map(|s| (s.label("node"), s.label("region")))
                .collect();
            for direction in Direction::ALL {
                let name = match direction {
                    Direction::Egress => "egress",
                    Direction::Ingress => "ingress",
                };
                let pods = self.query(
                    &format!(
                        "sum by (namespace, pod_name, uid, internet, same_zone, same_region, service, \
                         nat_gateway, remote_region) \
                         (increase(kubecost_pod_network_{name}_bytes_total[{range}ms]))"
                    ),
                    end,
                )?;
                for s in &pods {
                    let m = meta.get(s.label("uid"));
                    let pod = PodIdentity {
                        namespace: s.label("namespace").to_owned(),
                        pod: s.label("pod_name").to_owned(),
                        node: m.map(|m| m.node.clone()).filter(|n| !n.is_empty()),
                        region: m.map(|m| m.region.clone()).filter(|r| !r.is_empty()),
                        workload: m.and_then(|m| m.owner.clone()),
                        labels: Default::default(),
                    };
                    push_usage(&mut usages, s, pod, direction);
                }
                let nodes = self.query(
                    &format!(
                        "sum by (node, internet, same_zone, same_region, service, nat_gateway, \
                         remote_region) (increase(netcost_node_network_{name}_bytes_total[{range}ms]))"
                    ),
                    end,
                )?;
                for s in &nodes {
                    let node = s.label("node").to_owned();
                    let pod = PodIdentity {
                        namespace: String::new(),
                        pod: format!("node/{node}"),
                        region: node_regions.get(node.as_str()).map(|r| (*r).to_owned()),
                        node: Some(node),
                        ..PodIdentity::default()
                    };
                    push_usage(&mut usages, s, pod, direction);
                }
            }
        }
        let before = segment.start.as_millisecond() - segment.month_start.as_millisecond();
        let internet_egress_before = if before > 0 {
            let start = segment.start.as_millisecond();
            let q =
                |metric: &str| format!("sum(increase({metric}{{internet=\"true\"}}[{before}ms]))");
            let pods = self.query(&q("kubecost_pod_network_egress_bytes_total"), start)?;
            let nodes = self.query(&q("netcost_node_network_egress_bytes_total"), start)?;
            pods.iter().chain(&nodes).map(Sample::bytes).sum()
        } else {
            0
        };
        Ok(SegmentUsage {
            internet_egress_before,
            usages,
            ..SegmentUsage::default()
        })
    }
}

fn push_usage(usages: &mut Vec<Usage>, s: &Sample, pod: PodIdentity, direction: Direction) {
    let bytes = s.bytes();
    let Some(class) = class_of(
        s.label("internet"),
        s.label("same_zone"),
        s.label("same_region"),
    ) else {
        tracing::warn!(metric = ?s.metric, "series with an impossible class combination; skipped");
        return;
    };
    if bytes == 0 {
        return;
    }
    let service = Some(s.label("service")).filter(|v| !v.is_empty());
    usages.push(Usage {
        pod,
        direction,
        class,
        service: service.map(str::to_owned),
        remote_region: Some(s.label("remote_region"))
            .filter(|v| !v.is_empty())
            .map(str::to_owned),
        remote_has_agent: remote_has_agent(service),
        nat_gateway: s.label("nat_gateway") == "true",
        bytes,
    });
}
