//! Pair counters for the unit tests of the modules that price them: one place that builds a
//! [`PairUsage`] from the few fields a test cares about.

use netcost_core::class::TrafficClass;

use crate::edges::{PairUsage, Workload};

/// A Deployment of namespace `shop`.
pub(crate) fn deployment(name: &str) -> Workload {
    Workload {
        namespace: "shop".into(),
        kind: "Deployment".into(),
        name: name.into(),
    }
}

/// `gib` GiB between `client` in zone `cz` and `server` in zone `sz`, with no regions known.
/// AWS's "GB" is 2^30 bytes (see `Unit::Gib`).
pub(crate) fn pair_of(
    client: Workload,
    cz: &str,
    server: Workload,
    sz: &str,
    class: TrafficClass,
    gib: u64,
) -> PairUsage {
    PairUsage {
        client,
        client_zone: cz.into(),
        server,
        server_zone: sz.into(),
        class,
        bytes: gib << 30,
        client_region: None,
        server_region: None,
        counted_in_region: None,
    }
}

/// [`pair_of`] between two Deployments of `shop`.
pub(crate) fn pair(
    client: &str,
    cz: &str,
    server: &str,
    sz: &str,
    class: TrafficClass,
    gib: u64,
) -> PairUsage {
    pair_of(deployment(client), cz, deployment(server), sz, class, gib)
}
