//! The catalog resolved against the generated pods: each workload's pods by zone, and the
//! weighted list of what its pods do, including the mirror of every call it receives, so that
//! a node's table holds the flows its pods answer as well as those they open.
//!
//! Weights are flow shares. A workload's own activities share [`OWN_UNITS`]; a call it receives
//! gets the caller's share of that call times the ratio of caller pods to its own pods, so the
//! flows a Service answers across the cluster roughly match the flows its callers open.

use crate::catalog::{Activity, Routing, WorkloadSpec};
use crate::cluster::Cluster;
use crate::rng::pick;

/// `pod_workload` of a pod that belongs to no catalog workload (the hostNetwork exporter).
pub(crate) const NO_WORKLOAD: u32 = u32::MAX;

/// Flow units a workload's own activities share.
const OWN_UNITS: u64 = 100_000;

/// What one of a workload's activities does, with workload indexes resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behaviour {
    /// Calls `callee` through its Service.
    Call { callee: u32 },
    /// Answers a call of a `caller` pod (already DNAT'ed on the caller's node).
    CalledBy { caller: u32 },
    /// Opens a flow to a pod of `peer`.
    Peer { peer: u32 },
    /// Answers a flow a pod of `caller` opened directly.
    PeeredBy { caller: u32 },
    /// Scrapes any pod.
    Scrape,
    /// Is scraped by a pod of `scraper`.
    ScrapedBy { scraper: u32 },
    /// See [`Activity::ServeUsers`].
    ServeUsers,
    /// See [`Activity::CallInternet`].
    CallInternet,
    /// See [`Activity::ObjectStore`].
    ObjectStore,
    /// See [`Activity::ManagedDb`].
    ManagedDb,
}

/// An activity, its cumulative weight bound and its rates.
#[derive(Debug, Clone, Copy)]
struct Weighted {
    what: Behaviour,
    /// Exclusive upper bound of its range in `0..Workload::total`.
    upto: u64,
    rate: (u64, u64),
}

/// One workload of the generated cluster.
#[derive(Debug, Clone)]
pub(crate) struct Workload {
    pub(crate) spec: WorkloadSpec,
    /// Its pods (indexes into [`Cluster::pods`]).
    pub(crate) pods: Vec<u32>,
    /// Its pods by zone, indexed `region * zones_per_region + zone`.
    by_zone: Vec<Vec<u32>>,
    /// How many of its pods each region has: asked for every routed flow.
    in_regions: Vec<usize>,
    /// Index of its Service in [`Cluster::services`].
    pub(crate) service: Option<u32>,
    acts: Vec<Weighted>,
    total: u64,
}

/// Every workload, indexed as `Cluster::pod_workload` refers to them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Workloads {
    pub(crate) all: Vec<Workload>,
}

impl Workloads {
    /// Resolves `specs` (in pod-workload index order) against the cluster's pods.
    pub(crate) fn resolve(cluster: &Cluster, specs: &[WorkloadSpec]) -> Workloads {
        let zones = cluster.zone_count();
        let mut all: Vec<Workload> = specs
            .iter()
            .map(|spec| Workload {
                spec: *spec,
                pods: Vec::new(),
                by_zone: vec![Vec::new(); zones],
                in_regions: vec![0; usize::from(cluster.spec().regions)],
                service: None,
                acts: Vec::new(),
                total: 0,
            })
            .collect();
        for (pod, workload) in cluster.pod_workloads().iter().enumerate() {
            if let Some(w) = all.get_mut(*workload as usize) {
                let zone = cluster.zone_index(cluster.pods()[pod].node);
                w.pods.push(pod as u32);
                w.by_zone[zone].push(pod as u32);
                w.in_regions[cluster.region_of_zone(zone)] += 1;
            }
        }
        let index_of = |name: &str| specs.iter().position(|s| s.name == name).map(|i| i as u32);
        let pod_network = cluster.pod_network_pods().len().max(1) as u64;
        // (workload, behaviour, units, rate), own activities and received mirrors alike.
        let mut weighted: Vec<(usize, Behaviour, u64, (u64, u64))> = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let own_weight: u64 = spec.acts.iter().map(|a| u64::from(a.weight)).sum();
            let callers = all[i].pods.len() as u64;
            for act in spec.acts {
                let units = OWN_UNITS * u64::from(act.weight) / own_weight.max(1);
                // Per pod of the receiver: the caller's units times caller pods per its pods.
                let mirror =
                    |receiver: usize| units * callers / all[receiver].pods.len().max(1) as u64;
                let (own, received) = match act.activity {
                    Activity::CallService(name) => match index_of(name) {
                        Some(callee) => (
                            Behaviour::Call { callee },
                            vec![(callee as usize, Behaviour::CalledBy { caller: i as u32 })],
                        ),
                        None => continue,
                    },
                    Activity::Peer(name) => match index_of(name) {
                        Some(peer) => (
                            Behaviour::Peer { peer },
                            vec![(peer as usize, Behaviour::PeeredBy { caller: i as u32 })],
                        ),
                        None => continue,
                    },
                    Activity::ScrapePods => {
                        for receiver in 0..specs.len() {
                            let per_pod = units * callers / pod_network;
                            weighted.push((
                                receiver,
                                Behaviour::ScrapedBy { scraper: i as u32 },
                                per_pod,
                                act.rate,
                            ));
                        }
                        (Behaviour::Scrape, Vec::new())
                    }
                    Activity::ServeUsers => (Behaviour::ServeUsers, Vec::new()),
                    Activity::CallInternet => (Behaviour::CallInternet, Vec::new()),
                    Activity::ObjectStore => (Behaviour::ObjectStore, Vec::new()),
                    Activity::ManagedDb => (Behaviour::ManagedDb, Vec::new()),
                };
                weighted.push((i, own, units, act.rate));
                for (receiver, behaviour) in received {
                    weighted.push((receiver, behaviour, mirror(receiver), act.rate));
                }
            }
        }
        for (workload, what, units, rate) in weighted {
            let w = &mut all[workload];
            if units == 0 || w.pods.is_empty() {
                continue;
            }
            w.total += units;
            w.acts.push(Weighted {
                what,
                upto: w.total,
                rate,
            });
        }
        Workloads { all }
    }
}

impl Workload {
    /// The activity the hash `h` picks, by weight, and its rates; `None` for a workload that
    /// does nothing.
    pub(crate) fn pick_act(&self, h: u64) -> Option<(Behaviour, (u64, u64))> {
        if self.total == 0 {
            return None;
        }
        let x = pick(h, self.total as usize) as u64;
        let i = self.acts.partition_point(|a| a.upto <= x);
        self.acts.get(i).map(|a| (a.what, a.rate))
    }

    /// Whether it has pods in zone index `zone`.
    fn in_zone(&self, zone: usize) -> bool {
        self.by_zone.get(zone).is_some_and(|p| !p.is_empty())
    }

    /// Whether it has pods in region `region`.
    fn in_region(&self, region: usize) -> bool {
        self.in_regions.get(region).is_some_and(|n| *n > 0)
    }

    /// A pod of the zones `eligible` accepts, picked by `h`; any pod when none is eligible.
    fn pick_in(&self, cluster: &Cluster, h: u64, eligible: impl Fn(usize) -> bool) -> Option<u32> {
        let zones = 0..cluster.zone_count();
        let count: usize = zones
            .clone()
            .filter(|z| eligible(*z))
            .map(|z| self.by_zone[z].len())
            .sum();
        if count == 0 {
            return (!self.pods.is_empty()).then(|| self.pods[pick(h, self.pods.len())]);
        }
        let mut k = pick(h, count);
        for z in zones.filter(|z| eligible(*z)) {
            let pods = &self.by_zone[z];
            if k < pods.len() {
                return Some(pods[k]);
            }
            k -= pods.len();
        }
        None
    }

    /// The backend the Service routes a caller on `from_node` to.
    pub(crate) fn route(&self, cluster: &Cluster, from_node: u32, h: u64) -> Option<u32> {
        let zone = cluster.zone_index(from_node);
        let region = cluster.region_of_zone(zone);
        let here = self.in_region(region);
        match self.routing() {
            Routing::TopologyAware if self.in_zone(zone) => self.pick_in(cluster, h, |z| z == zone),
            _ if here => self.pick_in(cluster, h, |z| cluster.region_of_zone(z) == region),
            _ => self.pick_in(cluster, h, |_| true),
        }
    }

    /// A pod of `caller` whose calls this workload's Service routes to a backend in the zone of
    /// `local_node`: the mirror of [`Workload::route`].
    pub(crate) fn caller_routed_to(
        &self,
        cluster: &Cluster,
        caller: &Workload,
        local_node: u32,
        h: u64,
    ) -> Option<u32> {
        let local_zone = cluster.zone_index(local_node);
        let local_region = cluster.region_of_zone(local_zone);
        let routing = self.routing();
        caller.pick_in(cluster, h, |z| {
            let region = cluster.region_of_zone(z);
            if routing == Routing::TopologyAware && self.in_zone(z) {
                z == local_zone
            } else if self.in_region(region) {
                region == local_region
            } else {
                true
            }
        })
    }

    /// Any pod but `not` (when it has another), picked by `h`.
    pub(crate) fn any_but(&self, h: u64, not: u32) -> Option<u32> {
        let n = self.pods.len();
        if n == 0 {
            return None;
        }
        let i = pick(h, n);
        Some(if self.pods[i] == not && n > 1 {
            self.pods[(i + 1) % n]
        } else {
            self.pods[i]
        })
    }

    fn routing(&self) -> Routing {
        self.spec
            .service
            .map_or(Routing::AnyInRegion, |(_, _, _, routing)| routing)
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::{Activity, LOG_SHIPPER, WORKLOADS};

    #[test]
    fn every_workload_an_activity_names_is_in_the_catalog() {
        // Resolution skips a name it does not find, so a typo would silently drop traffic.
        for spec in WORKLOADS.iter().chain([&LOG_SHIPPER]) {
            for act in spec.acts {
                if let Activity::CallService(name) | Activity::Peer(name) = act.activity {
                    let target = WORKLOADS.iter().find(|w| w.name == name);
                    assert!(target.is_some(), "{} names {name}", spec.name);
                    if let Activity::CallService(_) = act.activity {
                        assert!(
                            target.is_some_and(|w| w.service.is_some()),
                            "{} calls {name}, which has no Service",
                            spec.name
                        );
                    }
                }
            }
        }
    }
}
