//! Kubecost's network-costs classification config (`config.yaml`), accepted unchanged.
//!
//! Read in two stages, as STYLE.md asks: [`RawConfig`] is the file as serde sees it (unknown keys
//! rejected, missing keys empty), and [`ClassificationConfig`] is the validated form, with every
//! CIDR parsed into a prefix trie so that a lookup on the per-flow path is a few pointer hops.
//!
//! ```yaml
//! destinations:
//!   in-zone: ["127.0.0.0/8", "10.0.0.0/8"]   # a bare IP means /32 or /128
//!   in-region: []
//!   cross-region: []
//!   internet: []
//!   direct-classification:
//!     - region: "us-east1"
//!       zone: "us-east1-c"                   # optional
//!       ips: ["10.0.0.0/24"]
//! services:
//!   amazon-web-services: true
//!   google-cloud-services: true
//!   azure-cloud-services: true
//!   services:
//!     - service: "my-db"
//!       ips: ["1.2.3.4/32"]
//! ```
//!
//! What it does not do: read the file (the caller hands over its text and name), decide a class
//! (see [`crate::classify`]), or load the cloud providers' published ranges that the three
//! provider switches turn on (see [`crate::cloud`]).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;
use prefix_trie::joint::JointPrefixMap;
use serde::{Deserialize, Deserializer};

use crate::class::TrafficClass;
use crate::located;
use crate::provider::Provider;

/// Why a classification config cannot be used. Display names the file, the field path (such as
/// `destinations.in-zone[3]`) and the reason.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not YAML.
    #[error("{}: (document): not valid YAML: {reason}", file.display())]
    Yaml {
        /// The file.
        file: PathBuf,
        /// What the YAML parser said, with the line and column.
        reason: String,
    },
    /// A field has a value that is not allowed.
    #[error("{}: {field}: {reason}", file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// Path of the field, e.g. `destinations.in-zone[3]`.
        field: String,
        /// Why it is rejected.
        reason: String,
    },
}

/// The config file as written, before validation. Keys are Kubecost's; a missing key is empty
/// (or `false`), as Kubecost treats it, and an unknown key is an error.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawConfig {
    /// Where traffic goes: address lists per class.
    #[serde(default, deserialize_with = "null_as_default")]
    pub destinations: RawDestinations,
    /// Which services to tag.
    #[serde(default, deserialize_with = "null_as_default")]
    pub services: RawServices,
    /// Which nodes send their internet traffic through a NAT gateway. netcost's own block;
    /// Kubecost's config has none, and reads none.
    #[serde(default, deserialize_with = "null_as_default")]
    pub nat_gateway: RawNatGateway,
}

/// `nat-gateway`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawNatGateway {
    /// The node subnets (or addresses) whose route to public addresses is a NAT gateway.
    #[serde(default, deserialize_with = "null_as_default")]
    pub node_subnets: Vec<String>,
    /// Public destinations those nodes reach without it (gateway endpoints, peering, their
    /// own public addresses).
    #[serde(default, deserialize_with = "null_as_default")]
    pub bypass: Vec<String>,
}

/// `destinations`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawDestinations {
    /// CIDRs classified as in-zone.
    #[serde(default, deserialize_with = "null_as_default")]
    pub in_zone: Vec<String>,
    /// CIDRs classified as cross-zone (same region, another zone).
    #[serde(default, deserialize_with = "null_as_default")]
    pub in_region: Vec<String>,
    /// CIDRs classified as cross-region.
    #[serde(default, deserialize_with = "null_as_default")]
    pub cross_region: Vec<String>,
    /// CIDRs classified as internet.
    #[serde(default, deserialize_with = "null_as_default")]
    pub internet: Vec<String>,
    /// CIDRs mapped to a region (and maybe a zone).
    #[serde(default, deserialize_with = "null_as_default")]
    pub direct_classification: Vec<RawDirect>,
}

/// One `direct-classification` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawDirect {
    /// The region the addresses are in (required).
    #[serde(default)]
    pub region: Option<String>,
    /// The zone, if known.
    #[serde(default)]
    pub zone: Option<String>,
    /// The addresses.
    #[serde(default, deserialize_with = "null_as_default")]
    pub ips: Vec<String>,
}

/// `services`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawServices {
    /// Tag AWS's published ranges.
    #[serde(default, deserialize_with = "null_as_default")]
    pub amazon_web_services: bool,
    /// Tag Google Cloud's published ranges.
    #[serde(default, deserialize_with = "null_as_default")]
    pub google_cloud_services: bool,
    /// Tag Azure's published ranges.
    #[serde(default, deserialize_with = "null_as_default")]
    pub azure_cloud_services: bool,
    /// User-defined services.
    #[serde(default, deserialize_with = "null_as_default")]
    pub services: Vec<RawService>,
}

/// One user-defined service.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawService {
    /// The name reported in the `service` label.
    #[serde(default)]
    pub service: Option<String>,
    /// The addresses.
    #[serde(default, deserialize_with = "null_as_default")]
    pub ips: Vec<String>,
}

/// Helm renders an empty list as `in-zone:` (null) often enough that Kubecost's Go reader, which
/// treats null as empty, is the behaviour to match.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A region and maybe a zone, where a `direct-classification` entry puts its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectTarget {
    /// The region.
    pub region: Arc<str>,
    /// The zone, if given.
    pub zone: Option<Arc<str>>,
}

/// The validated classification config: each list is a longest-prefix-match trie.
#[derive(Debug, Clone)]
pub struct ClassificationConfig {
    /// `services.amazon-web-services`: tag traffic to AWS's published ranges.
    pub amazon_web_services: bool,
    /// `services.google-cloud-services`: tag traffic to Google Cloud's published ranges.
    pub google_cloud_services: bool,
    /// `services.azure-cloud-services`: tag traffic to Azure's published ranges.
    pub azure_cloud_services: bool,
    direct: JointPrefixMap<IpNet, DirectTarget>,
    internet: JointPrefixMap<IpNet, ()>,
    /// `in-zone`, `in-region` and `cross-region` in one trie, so that the most specific prefix
    /// wins across the three lists.
    lists: JointPrefixMap<IpNet, TrafficClass>,
    services: JointPrefixMap<IpNet, Arc<str>>,
    nat_node_subnets: JointPrefixMap<IpNet, ()>,
    nat_bypass: JointPrefixMap<IpNet, ()>,
}

/// Kubecost's default `in-zone` list. Source: the Helm chart `kubecost/cost-analyzer-helm-chart`,
/// `cost-analyzer/values.yaml`, key `networkCosts.config.destinations`, as quoted in Kubecost's
/// docs (`kubecost/docs`, `network-allocation.md`, "Overriding traffic classifications"), which
/// annotates 10.0.0.0/8 with "Remove this entry if using Multi-AZ Kubernetes". The other lists
/// default to empty and all three provider switches to `true`.
const KUBECOST_DEFAULT_IN_ZONE: [&str; 5] = [
    "127.0.0.0/8",    // loopback, IANA IPv4 Special-Purpose Address Registry
    "169.254.0.0/16", // IPv4 link-local
    "10.0.0.0/8",     // RFC 1918
    "172.16.0.0/12",  // RFC 1918
    "192.168.0.0/16", // RFC 1918
];

impl ClassificationConfig {
    /// Parses and validates a config; `file` is only used in error messages.
    pub fn from_yaml_str(text: &str, file: &Path) -> Result<Self, ConfigError> {
        let invalid = |field: String, reason: String| ConfigError::Invalid {
            file: file.to_owned(),
            field,
            reason,
        };
        let docs: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(text).map_err(|e| ConfigError::Yaml {
                file: file.to_owned(),
                reason: located::yaml_syntax_reason(&e, file),
            })?;
        let raw = match docs.as_slice() {
            // An empty file is a config with every list empty, as in Kubecost.
            [] => RawConfig::default(),
            [doc] => located::deserialize::<RawConfig>(doc)
                .map_err(|e| invalid(e.field_or("(top level)"), e.reason))?,
            _ => {
                return Err(invalid(
                    format!("document {}", 2),
                    "a classification config is one YAML document; found several".into(),
                ));
            }
        };
        validate(raw, file)
    }

    /// The config Kubecost ships: the private, loopback and link-local ranges are in-zone, every
    /// other list is empty, and all three cloud providers are tagged. See
    /// `KUBECOST_DEFAULT_IN_ZONE` in the source for where the lists come from.
    pub fn kubecost_default() -> Self {
        let mut lists = JointPrefixMap::new();
        for text in KUBECOST_DEFAULT_IN_ZONE {
            if let Ok(net) = parse_net(text) {
                lists.insert(net, TrafficClass::InZone);
            }
        }
        ClassificationConfig {
            amazon_web_services: true,
            google_cloud_services: true,
            azure_cloud_services: true,
            lists,
            ..ClassificationConfig::empty()
        }
    }

    /// A config with every list empty and every provider off: everything outside the cluster is
    /// internet.
    pub fn empty() -> Self {
        ClassificationConfig {
            amazon_web_services: false,
            google_cloud_services: false,
            azure_cloud_services: false,
            direct: JointPrefixMap::new(),
            internet: JointPrefixMap::new(),
            lists: JointPrefixMap::new(),
            services: JointPrefixMap::new(),
            nat_node_subnets: JointPrefixMap::new(),
            nat_bypass: JointPrefixMap::new(),
        }
    }

    /// Whether a node with address `ip` sends its internet traffic through a NAT gateway
    /// (`nat-gateway.node-subnets`).
    pub fn node_behind_nat(&self, ip: IpAddr) -> bool {
        self.nat_node_subnets
            .get_lpm(&IpNet::from(ip.to_canonical()))
            .is_some()
    }

    /// Whether a connection that a node behind a NAT gateway opens to `remote` goes through the
    /// gateway: `remote` is a public address (the gateway is the route to the public internet,
    /// not to private or special-purpose ranges) and not on `nat-gateway.bypass`.
    pub fn through_nat_gateway(&self, remote: IpAddr) -> bool {
        let remote = remote.to_canonical();
        is_public(remote) && self.nat_bypass.get_lpm(&IpNet::from(remote)).is_none()
    }

    /// The `direct-classification` target of `ip` (most specific prefix), if any.
    /// `ip` must already be canonical (IPv4-mapped IPv6 turned into IPv4).
    pub fn direct(&self, ip: IpAddr) -> Option<&DirectTarget> {
        self.direct.get_lpm(&IpNet::from(ip)).map(|(_, t)| t)
    }

    /// Whether `ip` is on the `internet` list.
    pub fn is_listed_internet(&self, ip: IpAddr) -> bool {
        self.internet.get_lpm(&IpNet::from(ip)).is_some()
    }

    /// The class the `in-zone`, `in-region` and `cross-region` lists give `ip` (most specific
    /// prefix across the three), if any.
    pub fn listed_class(&self, ip: IpAddr) -> Option<TrafficClass> {
        self.lists.get_lpm(&IpNet::from(ip)).map(|(_, c)| *c)
    }

    /// Whether the `services` switch of `provider` is on.
    pub fn provider_enabled(&self, provider: Provider) -> bool {
        match provider {
            Provider::Aws => self.amazon_web_services,
            Provider::Gcp => self.google_cloud_services,
            Provider::Azure => self.azure_cloud_services,
        }
    }

    /// The user-defined service `ip` belongs to (most specific prefix), if any.
    pub fn service(&self, ip: IpAddr) -> Option<&Arc<str>> {
        self.services.get_lpm(&IpNet::from(ip)).map(|(_, s)| s)
    }
}

impl Default for ClassificationConfig {
    /// Kubecost's default, so that an agent without `--config` behaves as Kubecost's would.
    fn default() -> Self {
        Self::kubecost_default()
    }
}

impl TryFrom<RawConfig> for ClassificationConfig {
    type Error = ConfigError;

    /// Validates a config that did not come from a file; errors name the file `<config>`.
    fn try_from(raw: RawConfig) -> Result<Self, ConfigError> {
        validate(raw, Path::new("<config>"))
    }
}

/// Parses `10.0.0.0/8`, or a bare IP as a host prefix. Host bits are cleared (`10.1.2.3/8` is
/// 10.0.0.0/8), as Go's `net.ParseCIDR` does for Kubecost. An IPv4-mapped IPv6 prefix becomes the
/// IPv4 prefix it covers, because lookups turn mapped addresses into IPv4.
fn parse_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    let net = if text.contains('/') {
        text.parse::<IpNet>().map_err(|e| e.to_string())?
    } else {
        IpNet::from(
            text.parse::<IpAddr>()
                .map_err(|_| "not an IP address or CIDR".to_owned())?,
        )
    };
    if let IpNet::V6(v6) = net
        && v6.prefix_len() >= 96
        && let Some(v4) = v6.addr().to_ipv4_mapped()
        && let Ok(mapped) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
    {
        return Ok(IpNet::V4(mapped.trunc()));
    }
    Ok(net.trunc())
}

/// Inserts every CIDR of `list` into `trie` with `value`. The same prefix given twice with
/// different values is an error, because which one Kubecost would pick is not documented and a
/// silent choice could misprice traffic; the same prefix with the same value is harmless.
fn insert_all<T: Clone + PartialEq>(
    trie: &mut JointPrefixMap<IpNet, T>,
    owners: &mut Vec<(IpNet, String)>,
    list: &[String],
    field: &str,
    value: &T,
    file: &Path,
) -> Result<(), ConfigError> {
    for (i, text) in list.iter().enumerate() {
        let here = format!("{field}[{i}]");
        let net = parse_net(text).map_err(|reason| ConfigError::Invalid {
            file: file.to_owned(),
            field: here.clone(),
            reason: format!("{text:?} is not a CIDR or IP address: {reason}"),
        })?;
        if let Some(old) = trie.get(&net) {
            if old != value {
                let earlier = owners
                    .iter()
                    .find(|(n, _)| *n == net)
                    .map_or("another entry", |(_, f)| f.as_str());
                return Err(ConfigError::Invalid {
                    file: file.to_owned(),
                    field: here,
                    reason: format!(
                        "{net} is already given at {earlier} with a different meaning; \
                         keep one of the two"
                    ),
                });
            }
            continue;
        }
        trie.insert(net, value.clone());
        owners.push((net, here));
    }
    Ok(())
}

fn required_text(value: Option<&str>, field: String, file: &Path) -> Result<Arc<str>, ConfigError> {
    match value.map(str::trim) {
        Some(text) if !text.is_empty() => Ok(Arc::from(text)),
        _ => Err(ConfigError::Invalid {
            file: file.to_owned(),
            field,
            reason: "is missing or empty, and is required".into(),
        }),
    }
}

fn validate(raw: RawConfig, file: &Path) -> Result<ClassificationConfig, ConfigError> {
    let mut config = ClassificationConfig::empty();
    let d = &raw.destinations;

    let mut owners = Vec::new();
    for (i, entry) in d.direct_classification.iter().enumerate() {
        let at = format!("destinations.direct-classification[{i}]");
        let target = DirectTarget {
            region: required_text(entry.region.as_deref(), format!("{at}.region"), file)?,
            zone: entry
                .zone
                .as_deref()
                .map(str::trim)
                .filter(|z| !z.is_empty())
                .map(Arc::from),
        };
        insert_all(
            &mut config.direct,
            &mut owners,
            &entry.ips,
            &format!("{at}.ips"),
            &target,
            file,
        )?;
    }

    let mut owners = Vec::new();
    insert_all(
        &mut config.internet,
        &mut owners,
        &d.internet,
        "destinations.internet",
        &(),
        file,
    )?;

    let mut owners = Vec::new();
    for (list, field, class) in [
        (&d.in_zone, "destinations.in-zone", TrafficClass::InZone),
        (
            &d.in_region,
            "destinations.in-region",
            TrafficClass::CrossZone,
        ),
        (
            &d.cross_region,
            "destinations.cross-region",
            TrafficClass::CrossRegion,
        ),
    ] {
        insert_all(&mut config.lists, &mut owners, list, field, &class, file)?;
    }

    let s = &raw.services;
    config.amazon_web_services = s.amazon_web_services;
    config.google_cloud_services = s.google_cloud_services;
    config.azure_cloud_services = s.azure_cloud_services;
    let mut owners = Vec::new();
    for (i, entry) in s.services.iter().enumerate() {
        let at = format!("services.services[{i}]");
        let name = required_text(entry.service.as_deref(), format!("{at}.service"), file)?;
        insert_all(
            &mut config.services,
            &mut owners,
            &entry.ips,
            &format!("{at}.ips"),
            &name,
            file,
        )?;
    }

    let n = &raw.nat_gateway;
    let mut owners = Vec::new();
    insert_all(
        &mut config.nat_node_subnets,
        &mut owners,
        &n.node_subnets,
        "nat-gateway.node-subnets",
        &(),
        file,
    )?;
    let mut owners = Vec::new();
    insert_all(
        &mut config.nat_bypass,
        &mut owners,
        &n.bypass,
        "nat-gateway.bypass",
        &(),
        file,
    )?;
    Ok(config)
}

/// True for an address a NAT gateway would carry: not private, shared (CGNAT), loopback,
/// link-local, unique-local, multicast or otherwise special-purpose and not forwardable (the
/// IANA IPv4 and IPv6 Special-Purpose Address Registries). The documentation and benchmarking
/// ranges count as public: tests and simulators stand them in for the internet.
fn is_public(ip: IpAddr) -> bool {
    static SPECIAL: std::sync::LazyLock<Vec<IpNet>> = std::sync::LazyLock::new(|| {
        [
            "0.0.0.0/8",
            "10.0.0.0/8",
            "100.64.0.0/10",
            "127.0.0.0/8",
            "169.254.0.0/16",
            "172.16.0.0/12",
            "192.0.0.0/24",
            "192.168.0.0/16",
            "224.0.0.0/3",
            "::/127",
            "::ffff:0:0/96",
            "64:ff9b:1::/48",
            "fc00::/7",
            "fe80::/10",
            "ff00::/8",
        ]
        .iter()
        .filter_map(|text| text.parse().ok())
        .collect()
    });
    !SPECIAL.iter().any(|net| net.contains(&ip))
}
