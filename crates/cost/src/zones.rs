//! The zone × zone matrix: how many bytes went from the pods of one zone to those of another, and
//! what they cost, from the agents' workload pair counters.
//!
//! A cell is keyed by the client's zone and the server's zone (the end that opened the flows and
//! the end that answered) and holds both directions of the flows, as a pair counter does. Each
//! counter is priced with [`pair_cost`], the function the cross-zone edges are priced with, so a
//! cell's cost is the sum of the edges' costs through it, in-zone cells included (free on every
//! built-in sheet). What it does not hold: bytes with an end outside the cluster (the internet, a
//! cloud service) or with an end whose zone no agent knew; their totals are given beside the
//! matrix so that nothing disappears without a word.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::allocate::HOURS_PER_MONTH;
use crate::edges::{PairUsage, pair_cost};
use crate::pricing::PriceSheet;

/// One cell: client zone → server zone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZoneCell {
    /// The zone of the ends that opened the flows.
    pub client_zone: String,
    /// The zone of the ends that answered.
    pub server_zone: String,
    /// Bytes over the window, both directions.
    pub bytes: u64,
    /// Cost over the window (USD).
    pub cost: f64,
    /// The cost projected to a 730-hour month at the window's rate.
    pub monthly_cost: f64,
}

/// The matrix, and what it leaves out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZoneMatrix {
    /// Every zone seen at either end, sorted.
    pub zones: Vec<String>,
    /// The cells with bytes, row (client zone) by row, in the order of `zones`.
    pub cells: Vec<ZoneCell>,
    /// Bytes with an end outside the cluster: not in any cell.
    pub outside_bytes: u64,
    /// Bytes with a cluster end of unknown zone: not in any cell.
    pub unknown_zone_bytes: u64,
}

/// Sums pair usage into the zone matrix; `window_seconds` scales the monthly projection.
pub fn zone_matrix(usages: &[PairUsage], sheet: &PriceSheet, window_seconds: i64) -> ZoneMatrix {
    let mut cells: BTreeMap<(&str, &str), (u64, f64)> = BTreeMap::new();
    let mut zones = BTreeSet::new();
    let (mut outside_bytes, mut unknown_zone_bytes) = (0, 0);
    for u in usages.iter().filter(|u| u.bytes > 0) {
        if !(u.client.has_agent() && u.server.has_agent()) {
            outside_bytes += u.bytes;
            continue;
        }
        if u.client_zone.is_empty() || u.server_zone.is_empty() {
            unknown_zone_bytes += u.bytes;
            continue;
        }
        zones.insert(u.client_zone.clone());
        zones.insert(u.server_zone.clone());
        let cell = cells
            .entry((u.client_zone.as_str(), u.server_zone.as_str()))
            .or_default();
        cell.0 += u.bytes;
        cell.1 += pair_cost(sheet, u);
    }
    let months = window_seconds.max(1) as f64 / 3600.0 / HOURS_PER_MONTH;
    ZoneMatrix {
        zones: zones.into_iter().collect(),
        cells: cells
            .into_iter()
            .map(|((client_zone, server_zone), (bytes, cost))| ZoneCell {
                client_zone: client_zone.to_owned(),
                server_zone: server_zone.to_owned(),
                bytes,
                cost,
                monthly_cost: cost / months,
            })
            .collect(),
        outside_bytes,
        unknown_zone_bytes,
    }
}

#[cfg(test)]
mod tests {
    use crate::test_pairs::{deployment, pair_of};
    use netcost_core::class::TrafficClass;

    use super::*;
    use crate::edges::Workload;

    fn usage(
        client: &str,
        cz: &str,
        server: &str,
        sz: &str,
        class: TrafficClass,
        gib: u64,
    ) -> PairUsage {
        let server = if server == "internet" {
            Workload {
                namespace: String::new(),
                kind: "External".into(),
                name: server.into(),
            }
        } else {
            deployment(server)
        };
        pair_of(deployment(client), cz, server, sz, class, gib)
    }

    #[test]
    fn cells_sum_both_workloads_per_zone_pair_and_price_cross_zone_on_both_ends() {
        let m = zone_matrix(
            &[
                usage("web", "a", "api", "b", TrafficClass::CrossZone, 30),
                usage("cart", "a", "db", "b", TrafficClass::CrossZone, 20),
                usage("web", "a", "api", "a", TrafficClass::InZone, 100),
                usage("web", "b", "internet", "", TrafficClass::Internet, 7),
                usage("web", "", "api", "a", TrafficClass::CrossZone, 3),
            ],
            &PriceSheet::aws(),
            86_400,
        );
        assert_eq!(m.zones, ["a", "b"]);
        let cell = |c: &str, s: &str| {
            m.cells
                .iter()
                .find(|x| x.client_zone == c && x.server_zone == s)
        };
        let ab = cell("a", "b").unwrap_or_else(|| panic!("{m:?}"));
        assert_eq!(ab.bytes, 50 << 30);
        // 50 GB at AWS's $0.01 out plus $0.01 in.
        assert!((ab.cost - 1.0).abs() < 1e-9, "{}", ab.cost);
        assert!((ab.monthly_cost - 730.0 / 24.0).abs() < 1e-9);
        let aa = cell("a", "a").unwrap_or_else(|| panic!("{m:?}"));
        assert_eq!((aa.bytes, aa.cost), (100 << 30, 0.0));
        assert!(cell("b", "a").is_none());
        assert_eq!(m.outside_bytes, 7 << 30);
        assert_eq!(m.unknown_zone_bytes, 3 << 30);
    }
}
