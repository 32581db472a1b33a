//! One workload's peers: every edge it is an end of, of any class, priced.
//!
//! The agents count bytes per pair of workloads, not per pair of pods, so a pod's own peers
//! cannot be told from the counters: the best there is, and what this module gives, is the
//! edges of the pod's workload. A page that shows them for a pod has to say so.
//!
//! The edges are priced and advised exactly as the cross-zone edges are
//! ([`crate::edges::priced_edges`]), with the recommendations worked out over all the pair
//! usage, not just this workload's, since a server's zones come from all its callers.

use crate::edges::{Edge, PairUsage, Workload, priced_edges};
use crate::pricing::PriceSheet;

/// The edges with `workload` at either end, costliest first (then the most bytes first, so
/// that free in-zone edges still come in order of size).
pub fn workload_peers(
    usages: &[PairUsage],
    sheet: &PriceSheet,
    window_seconds: i64,
    workload: &Workload,
) -> Vec<Edge> {
    priced_edges(usages, sheet, window_seconds, &|u| {
        u.client == *workload || u.server == *workload
    })
}

#[cfg(test)]
mod tests {
    use crate::test_pairs::{deployment as w, pair as usage};
    use netcost_core::class::TrafficClass;

    use super::*;

    #[test]
    fn a_workload_has_its_edges_of_every_class_as_client_and_as_server() {
        let usages = [
            usage("web", "a", "api", "b", TrafficClass::CrossZone, 10),
            usage("web", "a", "api", "a", TrafficClass::InZone, 40),
            usage("api", "b", "db", "b", TrafficClass::InZone, 5),
            usage("cart", "a", "db", "b", TrafficClass::CrossZone, 99),
        ];
        let peers = workload_peers(&usages, &PriceSheet::aws(), 86_400, &w("api"));
        let got: Vec<(String, String, &str, u64)> = peers
            .iter()
            .map(|e| {
                (
                    e.client.name.clone(),
                    e.server.name.clone(),
                    e.class,
                    e.bytes >> 30,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("web".into(), "api".into(), "cross-zone", 10),
                ("web".into(), "api".into(), "in-zone", 40),
                ("api".into(), "db".into(), "in-zone", 5),
            ]
        );
        // 10 GB at $0.01 out plus $0.01 in; in-zone is free.
        assert!((peers[0].cost - 0.2).abs() < 1e-9, "{}", peers[0].cost);
        assert_eq!(peers[1].cost, 0.0);
        assert_eq!(peers[1].recommendation, None);
    }
}
