//! Allocation results as a terminal table, CSV or JSON, and the changes that would save the
//! most as a short list.

use std::fmt::Write as _;

use netcost_cost::allocate::{Allocation, ClassCost};

use crate::engine::{AllocationResult, EdgesResult, EndpointAdviceResult};

const GIB: f64 = 1_073_741_824.0;

fn gib(bytes: u64) -> f64 {
    bytes as f64 / GIB
}

fn both(c: &ClassCost) -> u64 {
    c.egress_bytes + c.ingress_bytes
}

/// The result as pretty JSON.
pub fn json(result: &AllocationResult) -> String {
    serde_json::to_string_pretty(result).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// The CSV header; bytes are exact integers, costs in USD. The NAT gateway columns come last,
/// so that readers of the older columns by position still read them; their bytes are also in
/// their classes' columns (the gateway's processing charge is on top of the transfer).
pub const CSV_HEADER: &str = "name,in_zone_egress_bytes,in_zone_ingress_bytes,\
cross_zone_egress_bytes,cross_zone_ingress_bytes,cross_zone_cost,\
cross_region_egress_bytes,cross_region_ingress_bytes,cross_region_cost,\
internet_egress_bytes,internet_ingress_bytes,internet_cost,total_cost,share,monthly_rate,\
nat_gateway_egress_bytes,nat_gateway_ingress_bytes,nat_gateway_cost";

/// The rows (and the total, last) as CSV.
pub fn csv(result: &AllocationResult) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for row in result
        .allocations
        .iter()
        .chain(std::iter::once(&result.total))
    {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{:.6},{},{},{:.6},{},{},{:.6},{:.6},{:.6},{:.6},{},{},{:.6}",
            csv_field(&row.name),
            row.in_zone.egress_bytes,
            row.in_zone.ingress_bytes,
            row.cross_zone.egress_bytes,
            row.cross_zone.ingress_bytes,
            row.cross_zone.cost,
            row.cross_region.egress_bytes,
            row.cross_region.ingress_bytes,
            row.cross_region.cost,
            row.internet.egress_bytes,
            row.internet.ingress_bytes,
            row.internet.cost,
            row.total_cost,
            row.share,
            row.monthly_rate,
            row.nat_gateway.egress_bytes,
            row.nat_gateway.ingress_bytes,
            row.nat_gateway.cost,
        );
    }
    out
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// A table for the terminal: GiB and cost per class, the NAT gateway's processing cost, total,
/// share and monthly rate.
pub fn table(result: &AllocationResult) -> String {
    let headers = [
        result.aggregate.to_uppercase(),
        "IN-ZONE GiB".into(),
        "X-ZONE GiB".into(),
        "X-ZONE $".into(),
        "X-REGION GiB".into(),
        "X-REGION $".into(),
        "INTERNET GiB".into(),
        "INTERNET $".into(),
        "NAT $".into(),
        "TOTAL $".into(),
        "SHARE".into(),
        "$/MONTH".into(),
    ];
    let cells = |row: &Allocation| -> Vec<String> {
        vec![
            row.name.clone(),
            format!("{:.3}", gib(both(&row.in_zone))),
            format!("{:.3}", gib(both(&row.cross_zone))),
            format!("{:.2}", row.cross_zone.cost),
            format!("{:.3}", gib(both(&row.cross_region))),
            format!("{:.2}", row.cross_region.cost),
            format!("{:.3}", gib(both(&row.internet))),
            format!("{:.2}", row.internet.cost),
            format!("{:.2}", row.nat_gateway.cost),
            format!("{:.2}", row.total_cost),
            format!("{:.1}%", row.share * 100.0),
            format!("{:.2}", row.monthly_rate),
        ]
    };
    let mut rows: Vec<Vec<String>> = vec![headers.to_vec()];
    rows.extend(result.allocations.iter().map(cells));
    let mut total = cells(&result.total);
    total[0] = "TOTAL".into();
    rows.push(total);
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (n, row) in rows.iter().enumerate() {
        if n + 1 == rows.len() {
            let rule: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
            let _ = writeln!(out, "{}", "-".repeat(rule));
        }
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                if i == 0 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    let _ = writeln!(
        out,
        "{} to {} · prices: {} ({}, per {})",
        result.start, result.end, result.provider, result.pricing_source, result.unit
    );
    for note in &result.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

/// What would save the most a month, largest first, at most `limit` lines: the cross-zone
/// edges' recommendations and the endpoint advice, each with its estimated monthly saving.
pub fn top_changes(edges: &EdgesResult, endpoints: &EndpointAdviceResult, limit: usize) -> String {
    let mut changes: Vec<(f64, String)> = edges
        .edges
        .iter()
        .filter_map(|e| {
            let r = e.recommendation.as_ref()?;
            Some((
                r.monthly_saving,
                format!("{} → {} ({}): {}", e.client, e.server, e.class, r.kind),
            ))
        })
        .chain(endpoints.advice.iter().map(|a| {
            let who = if a.namespace.is_empty() {
                a.workload.name.clone()
            } else {
                format!("{}/{}", a.namespace, a.workload.name)
            };
            let endpoint = a.endpoint.label();
            let place = if a.region.is_empty() {
                String::new()
            } else {
                format!(" in {}", a.region)
            };
            (
                a.saving_per_month,
                format!("{who} → {}{place} (NAT gateway): {endpoint}", a.service),
            )
        }))
        .filter(|(saving, _)| *saving > 0.0)
        .collect();
    changes.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let mut out = String::from("What would save the most (a month, at this window's rate):\n");
    if changes.is_empty() {
        out.push_str(
            "  nothing: no cross-zone edge has a recommendation and no NAT traffic an endpoint\n",
        );
    }
    for (saving, change) in changes.iter().take(limit) {
        let _ = writeln!(out, "  {:>10}  {change}", format!("${saving:.2}"));
    }
    out
}
