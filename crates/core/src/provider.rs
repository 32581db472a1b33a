//! The cloud providers netcost knows, by name. A leaf: it imports nothing from the crate, so the
//! config (which switches providers on and off) and the cloud tables (which hold their ranges)
//! can both use it without importing each other.

use std::fmt;

/// A cloud provider whose ranges netcost reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provider {
    /// Amazon Web Services, `ip-ranges.json`.
    Aws,
    /// Google Cloud, `cloud.json`.
    Gcp,
    /// Microsoft Azure, `ServiceTags_Public_*.json`.
    Azure,
}

impl Provider {
    /// Every provider, in a stable order.
    pub const ALL: [Provider; 3] = [Provider::Aws, Provider::Gcp, Provider::Azure];

    /// `aws`, `gcp` or `azure`: the prefix of its service names and the `provider` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Aws => "aws",
            Provider::Gcp => "gcp",
            Provider::Azure => "azure",
        }
    }

    /// The provider named `aws`, `gcp` or `azure`.
    pub fn from_name(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// A dense index, for per-provider arrays.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
