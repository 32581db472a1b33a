//! The classification decision: where the remote end of a flow sits relative to the local node
//! (in-zone, cross-zone, cross-region, internet), and which service it is, if any.
//!
//! The order of decision is a contract (docs/architecture.md, "The classification config"):
//! 1. `direct-classification`;
//! 2. a known cluster endpoint (a pod or node IP whose node has a zone), compared by locality;
//! 3. the `internet` list;
//! 4. the `in-zone`, `in-region` and `cross-region` lists (most specific prefix wins);
//! 5. a cloud provider's published ranges, through [`ProviderRanges`] (implemented by
//!    [`crate::cloud::CloudRanges`]);
//! 6. otherwise internet.
//!
//! Step 2 comes before the lists on purpose: Kubecost's default `in-zone` list holds 10.0.0.0/8,
//! and checking it first hides cross-zone pod traffic in multi-zone clusters.
//!
//! The service tag comes from the user's `services` list (most specific prefix), whatever the
//! class; else from the provider ranges; else none.
//!
//! What it does not do: undo NAT or look at Service IPs. The caller hands in the real remote end.
//!
//! This runs once per flow and per direction, so it allocates nothing: two or three trie walks
//! and one hash lookup, plus an `Arc` clone for the service name.

use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::Arc;

use crate::class::TrafficClass;
use crate::config::ClassificationConfig;
use crate::topology::{Endpoint, Locality, Topology};

/// The verdict for one remote end.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Classification {
    /// Where the remote end sits.
    pub class: TrafficClass,
    /// The service it belongs to (a user `services` entry, or a cloud service such as `aws-s3`),
    /// if any.
    pub service: Option<Arc<str>>,
    /// The remote end's region, for cross-region traffic whose far region is known (a node of
    /// the cluster, a `direct-classification` target, a provider range): with the local
    /// region it picks the region pair's price. `None` for every other class, where the
    /// region is the local one or does not matter to the price.
    pub remote_region: Option<Arc<str>>,
}

impl Classification {
    /// A verdict without a remote region.
    pub fn new(class: TrafficClass, service: Option<Arc<str>>) -> Classification {
        Classification {
            class,
            service,
            remote_region: None,
        }
    }

    /// Adds the remote end's region, kept only when the class is cross-region.
    pub fn in_region(mut self, region: Option<&Arc<str>>) -> Classification {
        if self.class == TrafficClass::CrossRegion {
            self.remote_region = region.cloned();
        }
        self
    }
}

/// Extension point for step 5: a cloud provider's published IP ranges (AWS `ip-ranges.json`,
/// Google `cloud.json`, Azure service tags), switched on by `services.amazon-web-services` and
/// friends. [`crate::cloud::CloudRanges`] implements it; a [`Classifier`] without one skips step 5.
pub trait ProviderRanges: Debug + Send + Sync {
    /// The class and service of `remote` if it is in a provider's range, seen from `local`; `None`
    /// lets the decision fall through to "internet".
    fn classify(&self, local: &Locality, remote: IpAddr) -> Option<Classification>;
}

/// Classifies remote ends by the config and the cluster's topology. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Classifier {
    config: Arc<ClassificationConfig>,
    providers: Option<Arc<dyn ProviderRanges>>,
}

impl Classifier {
    /// A classifier for `config`, without provider ranges.
    pub fn new(config: ClassificationConfig) -> Classifier {
        Classifier {
            config: Arc::new(config),
            providers: None,
        }
    }

    /// Adds the cloud providers' ranges as step 5 of the decision.
    pub fn with_provider_ranges(mut self, providers: Arc<dyn ProviderRanges>) -> Classifier {
        self.providers = Some(providers);
        self
    }

    /// The config this classifier uses.
    pub fn config(&self) -> &ClassificationConfig {
        &self.config
    }

    /// Classifies `remote` as seen from a node at `local`.
    ///
    /// `local`: locality of the local node. `remote`: the real remote IP (never a ClusterIP; the
    /// caller handles those). IPv4-mapped IPv6 is treated as IPv4.
    pub fn classify(
        &self,
        topology: &Topology,
        local: &Locality,
        remote: IpAddr,
    ) -> Classification {
        let remote = remote.to_canonical();
        let user_service = self.config.service(remote);
        let tagged = |class: TrafficClass| Classification::new(class, user_service.cloned());

        // 1. direct-classification.
        if let Some(target) = self.config.direct(remote) {
            return tagged(compare(local, Some(&target.region), target.zone.as_deref()))
                .in_region(Some(&target.region));
        }

        // 2. a known cluster endpoint whose node has a zone, when the local node has one too.
        if local.zone.is_some() {
            let remote_locality = match topology.lookup(remote) {
                Some(Endpoint::Pod(pod)) => pod
                    .node_name
                    .as_deref()
                    .and_then(|n| topology.node(n))
                    .map(|n| &n.locality),
                Some(Endpoint::Node(node)) => Some(&node.locality),
                Some(Endpoint::ServiceIp(_)) | None => None,
            };
            if let Some(l) = remote_locality.filter(|l| l.zone.is_some()) {
                return tagged(compare(local, l.region.as_deref(), l.zone.as_deref()))
                    .in_region(l.region.as_ref());
            }
        }

        // 3. the internet list.
        if self.config.is_listed_internet(remote) {
            return tagged(TrafficClass::Internet);
        }

        // 4. the in-zone, in-region and cross-region lists.
        if let Some(class) = self.config.listed_class(remote) {
            return tagged(class);
        }

        // 5. cloud provider ranges; a user's service name still wins over the provider's.
        if let Some(found) = self
            .providers
            .as_ref()
            .and_then(|p| p.classify(local, remote))
        {
            return Classification {
                service: user_service.cloned().or(found.service),
                ..found
            };
        }

        // 6. everything else.
        tagged(TrafficClass::Internet)
    }
}

/// The class of traffic between `local` and a remote end in `region`/`zone`.
///
/// With both regions known, a different region is cross-region. Within a region (or when either
/// region is unknown, so that zones are all there is to go by), equal known zones are in-zone and
/// anything else is cross-zone: a remote end without a zone (a `direct-classification` entry with
/// only a region) is in the region but not known to share the zone, and cross-zone is what it
/// costs on every major cloud.
fn compare(local: &Locality, region: Option<&str>, zone: Option<&str>) -> TrafficClass {
    if let (Some(mine), Some(theirs)) = (local.region.as_deref(), region)
        && mine != theirs
    {
        return TrafficClass::CrossRegion;
    }
    match (local.zone.as_deref(), zone) {
        (Some(mine), Some(theirs)) if mine == theirs => TrafficClass::InZone,
        _ => TrafficClass::CrossZone,
    }
}
